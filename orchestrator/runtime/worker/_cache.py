"""Result caching (Prefect's cache_key_fn / cache_expiration): a task whose key has a fresh
entry reuses that result instead of running. Entries are small JSON objects in the blob store
pointing at the (write-once) result they reuse."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestrator.contracts import TaskOptions
from orchestrator.errors import NotFoundError
from orchestrator.runtime._runtime import Runtime


@dataclass(frozen=True)
class TaskRunContext:
    """What a cache_key_fn sees besides the arguments."""

    run_id: str
    task_key: str
    task_name: str
    task_ref: str
    receiver: str | None = None  # a method's object, as the DAG carries it
    task_source: str = ""  # digest of the task function's source (runtime `source_digest`)


def task_input_hash(context: TaskRunContext, arguments: dict[str, Any]) -> str:
    """The usual cache key: the task, its source and its inputs (Prefect's INPUTS +
    TASK_SOURCE; not its RUN_ID, since this key exists to reuse results across runs, and
    within a run a finished task never runs again); for a method, its object too. A fixed
    task no longer serves the results its earlier code cached."""
    keyed: dict[str, Any] = {"task": context.task_ref, "source": context.task_source}
    keyed["args"] = arguments
    if context.receiver is not None:  # absent otherwise: earlier entries keep their keys
        keyed["receiver"] = context.receiver
    body = json.dumps(keyed, sort_keys=True, default=repr)
    return hashlib.sha256(body.encode()).hexdigest()


def _entry_uri(rt: Runtime, options: TaskOptions, key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    bucket = (options.result_storage or rt.results_bucket).removeprefix("gs://").rstrip("/")
    return f"gs://{bucket}/cache/{options.name}/{digest}.json"


def lookup(rt: Runtime, options: TaskOptions, key: str | None, now: datetime) -> bytes | None:
    """The cached result's bytes for `key`, if a fresh entry exists."""
    if key is None:
        return None
    try:
        entry = json.loads(rt.cache_blobs.get(_entry_uri(rt, options, key)))
        expires = entry.get("expires_at")
        if expires is not None and datetime.fromisoformat(expires) <= now:
            return None
        return rt.cache_blobs.get(str(entry["result_uri"]))
    except NotFoundError:
        return None


def store(
    rt: Runtime,
    options: TaskOptions,
    key: str | None,
    data: bytes,
    content_type: str,
    ext: str,
    now: datetime,
) -> None:
    if key is None:
        return
    ttl = options.cache_expiration_seconds
    entry_uri = _entry_uri(rt, options, key)
    result_uri = entry_uri.removesuffix(".json") + f".result.{ext}"
    entry = {
        "result_uri": result_uri,
        "created_at": now.isoformat(),
        "expires_at": (now + timedelta(seconds=ttl)).isoformat() if ttl else None,
    }
    # Overwritten on purpose: an expired entry is replaced by the next run's result.
    rt.cache_blobs.put(result_uri, data, content_type, overwrite=True)
    rt.cache_blobs.put(entry_uri, json.dumps(entry).encode(), "application/json", overwrite=True)


def cache_key(
    key_fn: Callable[..., Any], context: TaskRunContext, args: dict[str, Any]
) -> str | None:
    key = key_fn(context, args)
    return None if key is None else str(key)
