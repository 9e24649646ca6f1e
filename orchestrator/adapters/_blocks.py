"""Block stores that need no cloud: a folder of JSON files (in-process runs, so one command
sees what another saved), and the choice of store from the environment."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from orchestrator.contracts import StoredBlock
from orchestrator.errors import ConflictError
from orchestrator.ports import BlockStore

BLOCKS_DIR_ENV = "KUMOFLOW_BLOCKS_DIR"


class FileBlockStore:
    """`DIR/{kind}/{name}.json`, written with owner-only permissions (secrets are inline)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def _path(self, kind: str, name: str) -> Path:
        return self.root / kind / f"{name}.json"

    def put_block(self, block: StoredBlock, *, overwrite: bool = False) -> None:
        path = self._path(block.kind, block.name)
        with self._lock:
            if path.exists() and not overwrite:
                raise ConflictError(
                    f"block {block.kind}/{block.name} exists; save(..., overwrite=True) replaces it"
                )
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(block.model_dump_json())
            tmp.replace(path)  # atomic: a reader sees the old block or the new one

    def get_block(self, kind: str, name: str) -> StoredBlock | None:
        path = self._path(kind, name)
        if not path.is_file():
            return None
        return StoredBlock.model_validate_json(path.read_text())

    def list_blocks(self, kind: str | None = None) -> list[StoredBlock]:
        pattern = f"{kind}/*.json" if kind else "*/*.json"
        return [
            StoredBlock.model_validate_json(p.read_text()) for p in sorted(self.root.glob(pattern))
        ]

    def delete_block(self, kind: str, name: str) -> bool:
        path = self._path(kind, name)
        with self._lock:
            if not path.exists():
                return False
            path.unlink()
            return True


def block_store_from_env() -> BlockStore:
    """KUMOFLOW_BLOCKS_DIR names a folder: that one. Else, with the Firestore emulator or a
    project named (KUMOFLOW_GCP_PROJECT), Firestore: the stack's or the cloud's, where its
    functions read them. Else ~/.kumoflow/blocks."""
    folder = os.environ.get(BLOCKS_DIR_ENV)
    if folder:
        return FileBlockStore(Path(folder).expanduser())
    project = os.environ.get("KUMOFLOW_GCP_PROJECT")
    if os.environ.get("FIRESTORE_EMULATOR_HOST") or project:
        from orchestrator.adapters._firestore_blocks import FirestoreBlockStore

        return FirestoreBlockStore.from_env(
            project or os.environ.get("GOOGLE_CLOUD_PROJECT") or "kumoflow-local"
        )
    return FileBlockStore(Path.home() / ".kumoflow" / "blocks")
