"""Helpers for task code: read and write objects through whatever blob store runs the task, and
the block store that `Block.load(name)` reads.

In-process that is memory (blocks: a local file store); on the emulator stack and in the cloud
it is GCS (blocks: Firestore). Task code stays the same everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from orchestrator.ports import BlobStore, BlockStore, Clock

CURRENT_BLOBS: ContextVar[BlobStore | None] = ContextVar("kumoflow_blobs", default=None)
CURRENT_BLOCKS: ContextVar[BlockStore | None] = ContextVar("kumoflow_blocks", default=None)
# The runtime's clock and results bucket, for kumoflow's own waits (orchestrator.waits): a
# sleep's end is read from the clock the runtime skips in tests, never from the wall.
CURRENT_PLACE: ContextVar[tuple[Clock, str] | None] = ContextVar("kumoflow_place", default=None)


@contextlib.contextmanager
def services(
    blobs: BlobStore,
    blocks: BlockStore | None,
    place: tuple[Clock, str] | None = None,
) -> Iterator[None]:
    """The stores of the runtime running a task, for its code (None: the default block store),
    and its (clock, results bucket) when given."""
    blob_token, block_token = CURRENT_BLOBS.set(blobs), CURRENT_BLOCKS.set(blocks)
    place_token = CURRENT_PLACE.set(place)
    try:
        yield
    finally:
        CURRENT_PLACE.reset(place_token)
        CURRENT_BLOCKS.reset(block_token)
        CURRENT_BLOBS.reset(blob_token)


def current_place() -> tuple[Clock, str]:
    """The running task's (clock, results bucket); outside a run: the system clock and the
    default bucket."""
    place = CURRENT_PLACE.get()
    if place is not None:
        return place
    from orchestrator.adapters import SystemClock

    return SystemClock(), "kumoflow-results"


def _blobs() -> BlobStore:
    store = CURRENT_BLOBS.get()
    if store is None:
        from orchestrator.adapters import MemoryBlobStore

        store = MemoryBlobStore()  # a task called outside any run: keep it self-contained
        CURRENT_BLOBS.set(store)
    return store


def current_blobs() -> BlobStore:
    """The running task's blob store (outside a run: a memory one of its own)."""
    return _blobs()


def running_blobs() -> bool:
    """True inside a task run: write_blob/read_blob reach the run's own blob store."""
    return CURRENT_BLOBS.get() is not None


def local_blobs() -> bool:
    """True inside a task run whose blob store is on this machine (memory, the local folder of
    `kumoflow run`): such a run never reaches Google's storage."""
    from orchestrator.adapters import FileBlobStore, MemoryBlobStore

    return isinstance(CURRENT_BLOBS.get(), MemoryBlobStore | FileBlobStore)


def list_blobs(prefix: str) -> list[str]:
    """The URIs under `prefix` (gs://BUCKET/PREFIX) in the running task's blob store."""
    return _blobs().list_uris(prefix)


def current_blocks() -> BlockStore:
    """The block store of the running task, else the one the environment names (see
    `orchestrator.adapters.block_store_from_env`)."""
    store = CURRENT_BLOCKS.get()
    if store is not None:
        return store
    from orchestrator.adapters import block_store_from_env

    return block_store_from_env()


def write_blob(uri: str, data: bytes, content_type: str = "application/octet-stream") -> str:
    """Write `data` to `gs://bucket/name` (overwriting, so task retries stay idempotent)."""
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise ValueError(f"expected gs://BUCKET/OBJECT, got {uri!r}")
    _blobs().put(uri, data, content_type, overwrite=True)
    return uri


def read_blob(uri: str) -> bytes:
    return _blobs().get(uri)


__all__ = [
    "current_blocks",
    "list_blobs",
    "local_blobs",
    "read_blob",
    "running_blobs",
    "services",
    "write_blob",
]
