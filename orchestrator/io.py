"""Helpers for task code: read and write objects through whatever blob store runs the task.

In-process that is memory; on the emulator stack and in the cloud it is GCS. Task code stays the
same everywhere.
"""

from __future__ import annotations

from contextvars import ContextVar

from orchestrator.ports import BlobStore

CURRENT_BLOBS: ContextVar[BlobStore | None] = ContextVar("kumoflow_blobs", default=None)


def _blobs() -> BlobStore:
    store = CURRENT_BLOBS.get()
    if store is None:
        from orchestrator.adapters import MemoryBlobStore

        store = MemoryBlobStore()  # a task called outside any run: keep it self-contained
        CURRENT_BLOBS.set(store)
    return store


def write_blob(uri: str, data: bytes, content_type: str = "application/octet-stream") -> str:
    """Write `data` to `gs://bucket/name` (overwriting, so task retries stay idempotent)."""
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise ValueError(f"expected gs://BUCKET/OBJECT, got {uri!r}")
    _blobs().put(uri, data, content_type, overwrite=True)
    return uri


def read_blob(uri: str) -> bytes:
    return _blobs().get(uri)


__all__ = ["read_blob", "write_blob"]
