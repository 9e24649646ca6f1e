"""The docs' example on the stack: a batch of files in fake-gcs-server loaded into bqemulator
under a limit of 5 loads (50 files here, 1,000 in the docs): every row lands, and never more
than 5 loads ran at once (from the attempts' own start and end times)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from examples import bigquery_batch as example
from orchestrator.contracts import RunStatus
from orchestrator.gcp import GcpCredentials
from orchestrator.runtime import set_limit
from orchestrator.testing import StackBackend
from tests.flows.limited import most_at_once

pytestmark = pytest.mark.emulator
FILES, LIMIT = 50, 5


def test_a_gcs_batch_loads_into_bigquery_never_more_than_the_limit_at_once(
    stack_env: dict[str, str],
) -> None:
    suffix = uuid.uuid4().hex[:8]
    bucket, table = f"batch-{suffix}", f"batch_{suffix}.events"
    example.setup(FILES, bucket=bucket, table=table)
    backend = StackBackend()
    set_limit(backend.rt, example.KEY, LIMIT)
    try:
        params: dict[str, Any] = {
            "bucket": bucket,
            "prefix": "batch/",
            "table": f"{example.PROJECT}.{table}",
        }
        out = backend.run(example.load_batch, params, timeout=600)
        assert out.status is RunStatus.SUCCEEDED, out.run.error
        assert out.value == 3 * FILES
        client = GcpCredentials(project=example.PROJECT).get_bigquery_client()
        [row] = client.query(f"SELECT COUNT(*) AS n FROM `{example.PROJECT}.{table}`").result()
        assert row["n"] == 3 * FILES
        loads = [t for k, t in out.tasks.items() if k.startswith("load-file[")]
        assert len(loads) == FILES
        peak = most_at_once(loads)
        print(f"{FILES} files under a limit of {LIMIT}: at most {peak} loads at once")
        assert 1 <= peak <= LIMIT
        assert backend.rt.limits is not None
        [state] = backend.rt.limits.limit_states(example.KEY)
        assert (state.in_use, state.waiters) == (0, 0)
    finally:
        set_limit(backend.rt, example.KEY, None)
