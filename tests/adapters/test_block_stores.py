"""Block stores: the folder one (in-process runs) and Firestore (stack, cloud) keep the same
promises: create-only unless overwriting, list by kind, delete once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.adapters import FileBlockStore
from orchestrator.contracts import StoredBlock
from orchestrator.errors import ConflictError


def _block(kind: str, name: str, **data: Any) -> StoredBlock:
    return StoredBlock(
        kind=kind,
        name=name,
        data=data,
        secrets={"service_account_info": 'inline:{"k": 1}'} if kind == "gcp-credentials" else {},
        saved_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.fixture(params=["file", pytest.param("firestore", marks=pytest.mark.emulator)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "file":
        return FileBlockStore(tmp_path / "blocks")
    request.getfixturevalue("stack_env")

    from orchestrator.adapters import FirestoreBlockStore

    store = FirestoreBlockStore.from_env("kumoflow-local")
    return store


def test_save_load_list_delete(store: Any) -> None:
    creds = _block("gcp-credentials", "prod", project="p")
    bucket = _block("gcs-bucket", "reports", bucket="b", bucket_folder="f")
    store.put_block(creds)
    store.put_block(bucket)
    assert store.get_block("gcp-credentials", "prod") == creds
    assert store.get_block("gcp-credentials", "nope") is None
    assert [b.name for b in store.list_blocks("gcs-bucket")] == ["reports"]
    assert {(b.kind, b.name) for b in store.list_blocks()} >= {
        ("gcp-credentials", "prod"),
        ("gcs-bucket", "reports"),
    }
    assert store.delete_block("gcs-bucket", "reports") is True
    assert store.delete_block("gcs-bucket", "reports") is False
    assert store.get_block("gcs-bucket", "reports") is None


def test_a_name_is_taken_until_overwritten(store: Any) -> None:
    store.put_block(_block("gcs-bucket", "dup", bucket="one"))
    with pytest.raises(ConflictError, match="overwrite=True"):
        store.put_block(_block("gcs-bucket", "dup", bucket="two"))
    store.put_block(_block("gcs-bucket", "dup", bucket="two"), overwrite=True)
    found = store.get_block("gcs-bucket", "dup")
    assert found is not None
    assert found.data == {"bucket": "two"}


def test_the_folder_store_keeps_its_files_to_the_owner(tmp_path: Path) -> None:
    store = FileBlockStore(tmp_path / "blocks")
    store.put_block(_block("gcp-credentials", "prod"))
    path = tmp_path / "blocks" / "gcp-credentials" / "prod.json"
    assert path.stat().st_mode & 0o077 == 0
