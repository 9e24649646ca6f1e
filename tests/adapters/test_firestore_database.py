"""kumoflow's state lives in its own Firestore database in the cloud (infra's
var.firestore_database, given to every function as KUMOFLOW_FIRESTORE_DATABASE): every adapter
that opens Firestore opens that one. No call is made: a client names its database when built."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.adapters import (
    CLOUD_DATABASE,
    DATABASE_ENV,
    FirestoreBlockStore,
    FirestoreStore,
    firestore_database,
)
from orchestrator.contracts import StoredBlock


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(DATABASE_ENV, raising=False)
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    return monkeypatch


def test_the_cloud_default_is_kumoflows_own_database_never_an_apps_default(
    env: pytest.MonkeyPatch,
) -> None:
    assert firestore_database() == CLOUD_DATABASE == "kumoflow"
    env.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")  # the local stack keeps (default)
    assert firestore_database() == "(default)"
    env.setenv(DATABASE_ENV, "kf2-state")  # what Terraform sets wins everywhere
    assert firestore_database() == "kf2-state"
    env.delenv("FIRESTORE_EMULATOR_HOST")
    assert firestore_database() == "kf2-state"


def test_the_state_and_block_stores_open_the_configured_database(
    env: pytest.MonkeyPatch,
) -> None:
    # The emulator variable spares credentials; nothing listens there and nothing is called.
    env.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    env.setenv(DATABASE_ENV, "kf2-state")
    store = FirestoreStore.from_env("p")
    assert store._db._database_string == "projects/p/databases/kf2-state"
    assert store._runs._client is store._db
    blocks = FirestoreBlockStore.from_env("p")
    assert blocks._blocks._client._database_string == "projects/p/databases/kf2-state"


@pytest.mark.emulator
def test_on_the_emulator_a_named_database_is_apart_from_default(
    stack_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator keeps databases apart as Firestore does: what kumoflow writes to its own
    database is not in `(default)`, and the other way round."""
    block = StoredBlock(
        kind="gcs-bucket",
        name=f"apart-{uuid.uuid4().hex[:8]}",
        data={"bucket": "b"},
        saved_at=datetime.now(UTC),
    )
    monkeypatch.setenv(DATABASE_ENV, "kumoflow-probe")
    named = FirestoreBlockStore.from_env("kumoflow-local")
    named.put_block(block)
    monkeypatch.setenv(DATABASE_ENV, "(default)")
    default = FirestoreBlockStore.from_env("kumoflow-local")
    assert default.get_block(block.kind, block.name) is None
    assert named.get_block(block.kind, block.name) == block
