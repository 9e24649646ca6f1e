"""Adapters: one module per service behind the ports, plus in-memory ones and the clocks.

Every adapter of a port passes the same contract suite (tests/adapters/).
"""

from typing import TYPE_CHECKING, Any

from orchestrator.adapters._blocks import BLOCKS_DIR_ENV, FileBlockStore, block_store_from_env
from orchestrator.adapters._certs import CertCache, CertsSource, certs_file, fetch_certs
from orchestrator.adapters._clock import SystemClock, VirtualClock
from orchestrator.adapters._codec import (
    PUBSUB_PUBLISHED,
    from_message,
    peek_context,
    to_message,
    unwrap_pubsub,
)
from orchestrator.adapters._files import BLOBS_DIR, FileBlobStore
from orchestrator.adapters._jobs import TASK_JOB_ENV, MemoryJobs
from orchestrator.adapters._memory import MemoryBlobStore, MemoryBus, MemoryStore
from orchestrator.adapters._names import (
    CLOUD_DATABASE,
    DATABASE_ENV,
    NAME_PREFIX,
    NAME_PREFIX_ENV,
    block_secret,
    block_secret_id,
    firestore_database,
    name_prefix,
)
from orchestrator.adapters._retention import RETENTION_ENV, TTL_FIELD
from orchestrator.adapters._sqlite import DB_FILE, HOME_ENV, SqliteStore, kumoflow_home

if TYPE_CHECKING:
    from orchestrator.adapters._cloudrun import (
        TRANSIENT,
        CloudRunJobs,
        execution_status,
        run_clients,
    )
    from orchestrator.adapters._firestore import FirestoreStore
    from orchestrator.adapters._firestore_blocks import FirestoreBlockStore, SecretManager
    from orchestrator.adapters._gcs import GcsBlobStore
    from orchestrator.adapters._pubsub import PubSubBus

# Google's client libraries take a second to import: load the cloud adapters on first use, so
# in-process runs and the CLI's help stay fast.
_LAZY = {
    "TRANSIENT": "orchestrator.adapters._cloudrun",
    "CloudRunJobs": "orchestrator.adapters._cloudrun",
    "execution_status": "orchestrator.adapters._cloudrun",
    "run_clients": "orchestrator.adapters._cloudrun",
    "FirestoreStore": "orchestrator.adapters._firestore",
    "FirestoreBlockStore": "orchestrator.adapters._firestore_blocks",
    "SecretManager": "orchestrator.adapters._firestore_blocks",
    "GcsBlobStore": "orchestrator.adapters._gcs",
    "PubSubBus": "orchestrator.adapters._pubsub",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BLOBS_DIR",
    "BLOCKS_DIR_ENV",
    "CLOUD_DATABASE",
    "DATABASE_ENV",
    "DB_FILE",
    "HOME_ENV",
    "NAME_PREFIX",
    "NAME_PREFIX_ENV",
    "PUBSUB_PUBLISHED",
    "RETENTION_ENV",
    "TASK_JOB_ENV",
    "TRANSIENT",
    "TTL_FIELD",
    "CertCache",
    "CertsSource",
    "CloudRunJobs",
    "FileBlobStore",
    "FileBlockStore",
    "FirestoreBlockStore",
    "FirestoreStore",
    "GcsBlobStore",
    "MemoryBlobStore",
    "MemoryBus",
    "MemoryJobs",
    "MemoryStore",
    "PubSubBus",
    "SecretManager",
    "SqliteStore",
    "SystemClock",
    "VirtualClock",
    "block_secret",
    "block_secret_id",
    "block_store_from_env",
    "certs_file",
    "execution_status",
    "fetch_certs",
    "firestore_database",
    "from_message",
    "kumoflow_home",
    "name_prefix",
    "peek_context",
    "run_clients",
    "to_message",
    "unwrap_pubsub",
]
