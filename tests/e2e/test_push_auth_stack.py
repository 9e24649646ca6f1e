"""Push OIDC verification end to end on the local stack: a run_starter function process with
verification on (certificates from a file, tokens signed by a key made here), pushed to over
HTTP as Pub/Sub would, storing into the Firestore emulator. A missing or wrong token gets
401/403 and changes nothing; the right one starts the run."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.sample_flow import sample_flow
from orchestrator import emulators
from orchestrator.local import FUNCTIONS_SOURCE, stack_runtime
from orchestrator.runtime import TOPICS
from tests.functions.bad_input_events import RUN_REQUESTED, _ce, _run_requested
from tests.functions.push_tokens import ACCOUNT, AUDIENCE, KID, Keys, make_keys, token

NAME = "run-starter-oidc"
PORT_OFFSET = 40  # apart from the stack's own functions


@pytest.fixture
def guarded(dev: Any, tmp_path: Path) -> Iterator[tuple[str, Keys]]:
    keys = make_keys()
    certs = tmp_path / "certs.json"
    certs.write_text(json.dumps(keys.certs))
    port = dev.functions_port + PORT_OFFSET
    env = {
        **dev.function_env(),
        "KUMOFLOW_PUSH_AUTH": "oidc",
        "KUMOFLOW_PUSH_AUDIENCE": AUDIENCE,
        "KUMOFLOW_PUSH_SERVICE_ACCOUNT": ACCOUNT,
        "KUMOFLOW_PUSH_CERTS_FILE": str(certs),
    }
    emulators.start_function(
        dev.config, NAME, target="run_starter", source=FUNCTIONS_SOURCE, port=port, env=env
    )
    try:
        yield dev.push_url(port, TOPICS.runs), keys
    finally:
        emulators.stop_function(dev.config, NAME)


def _push(url: str, run_id: str, authorization: str | None) -> int:
    body = {
        "message": {
            "data": base64.b64encode(json.dumps(_run_requested(run_id)).encode()).decode(),
            "attributes": _ce(RUN_REQUESTED),
            "messageId": uuid.uuid4().hex,
        },
        "subscription": "projects/kumoflow-local/subscriptions/kumoflow-runs",
    }
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


@pytest.mark.emulator
def test_push_tokens_are_verified_by_the_function_process(guarded: tuple[str, Keys]) -> None:
    url, keys = guarded
    rt = stack_runtime()
    rt.flows.put_flow(sample_flow.spec)
    forged = token(keys.stranger, kid=KID)  # signed by a key nobody trusts
    refused = {
        "no token": (None, 401),
        "not a bearer": ("Basic abc", 401),
        "forged signature": (f"Bearer {forged}", 403),
        "wrong audience": (f"Bearer {token(keys.google, aud='https://other')}", 403),
        "wrong account": (f"Bearer {token(keys.google, email='x@evil.test')}", 403),
    }
    for why, (header, status) in refused.items():
        run_id = f"oidc-refused-{uuid.uuid4().hex[:8]}"
        assert _push(url, run_id, header) == status, why
        assert rt.state.load(run_id) is None, f"{why}: a refused push changed something"
    run_id = f"oidc-ok-{uuid.uuid4().hex[:8]}"
    assert _push(url, run_id, f"Bearer {token(keys.google)}") in (200, 204)
    assert rt.state.load(run_id) is not None
