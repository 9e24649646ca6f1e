"""Count the billable operations a process makes through Google's client libraries.

Patched on import of each library (a meta-path hook, so nothing is imported early), at the
layer every high-level call goes through in the installed versions (google-cloud-firestore
2.34, google-cloud-pubsub 2.44, google-cloud-storage 3.17, functions-framework 3.10):

- Firestore, the GAPIC `FirestoreClient` that `Client._firestore_api` is:
  `batch_get_documents` (DocumentReference.get, Client.get_all, transactional gets): one read
  per document asked for, found or missing; `run_query` (Query/CollectionReference
  stream/get): one read per document returned, at least one per query; `run_aggregation_query`
  (count()): one read per 1,000 index entries counted, at least one; `commit` (WriteBatch,
  Transaction, DocumentReference.create/set/update/delete) and `batch_write` (BulkWriter): one
  write per Write (a write carrying transforms such as Increment is still one), one delete per
  delete; a commit that raises is counted apart and not billed.
- Pub/Sub: `PublisherClient.publish`, one message and its data + attribute bytes.
- Cloud Storage: class A = `Blob._do_upload` and `Client._list_resource` / `_post_resource`
  (bucket create, compose, copy) / `_put_resource` / `_patch_resource`; class B =
  `Blob._do_download` and `Client._get_resource` (metadata reads); `_delete_resource` is free.
- functions-framework: the target returned by `get_user_function` is wrapped, counting
  invocations, errors and wall seconds (also rounded up to 100 ms each, as billed at
  concurrency 1).

Each process keeps running totals and writes them, replacing the previous copy, to
`$KUMOFLOW_BENCH_COUNTS/<role>.<pid>.json` every FLUSH_S seconds and at exit (SIGTERM may skip
atexit; the timer bounds what is lost). A gunicorn worker forked after install starts again
from zero under its own pid. The role is the functions-framework `--target`, or the name given
to `install`.
"""

from __future__ import annotations

import atexit
import functools
import importlib.machinery
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any

ENV = "KUMOFLOW_BENCH_COUNTS"
FLUSH_S = 0.5
FLUSH_EVERY = 500  # operations: wake the flusher early under load

_lock = threading.Lock()
_wake = threading.Event()
_counts: dict[str, float] = {}
_state: dict[str, Any] = {"dir": "", "role": "", "pending": 0, "installed": False}


def add(**amounts: float) -> None:
    with _lock:
        for key, value in amounts.items():
            if value:
                _counts[key] = _counts.get(key, 0) + value
        _state["pending"] += 1
        if _state["pending"] >= FLUSH_EVERY:
            _wake.set()


def snapshot() -> dict[str, float]:
    with _lock:
        return dict(_counts)


def flush() -> None:
    with _lock:
        if not _state["dir"]:
            return
        data = {"role": _state["role"], "pid": os.getpid(), "counts": dict(_counts)}
        _state["pending"] = 0
    path = os.path.join(_state["dir"], f"{data['role']}.{data['pid']}.json")
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        pass  # the folder went away: the harness is done with us


def _flusher() -> None:
    while True:
        _wake.wait(FLUSH_S)
        _wake.clear()
        flush()


def _start_flusher() -> None:
    threading.Thread(target=_flusher, name="bench-counts", daemon=True).start()


def _after_fork() -> None:
    if _lock.locked():  # held by a parent's thread at fork: that thread does not exist here
        _lock.release()
    _counts.clear()
    _start_flusher()


# -- Firestore -------------------------------------------------------------------------------


def _field(request: Any, name: str, kwargs: dict[str, Any]) -> Any:
    if request is None:
        return kwargs.get(name)
    if isinstance(request, dict):
        return request.get(name)
    return getattr(request, name, None)


def _writes(writes: Iterable[Any] | None) -> tuple[int, int]:
    written = deleted = 0
    for write in writes or ():
        if getattr(write, "_pb", write).WhichOneof("operation") == "delete":
            deleted += 1
        else:
            written += 1
    return written, deleted


def _counted(stream: Iterable[Any], reads: Callable[[Any], int], minimum: int) -> Iterator[Any]:
    total = 0
    try:
        for response in stream:
            n = reads(response)
            if n:
                total += n
                add(fs_read=n)
            yield response
    finally:
        if total < minimum:
            add(fs_read=minimum - total, fs_read_minimum=minimum - total)


def _got(response: Any) -> int:
    which = response._pb.WhichOneof("result")
    if which == "missing":
        add(fs_read_missing=1)
    return 1 if which else 0


def _queried(response: Any) -> int:
    return 1 if response._pb.HasField("document") else 0


def _aggregated(response: Any) -> int:
    if not response._pb.HasField("result"):
        return 0
    counts = [
        v.integer_value
        for v in response._pb.result.aggregate_fields.values()
        if v.WhichOneof("value_type") == "integer_value"
    ]
    return max(1, math.ceil(max(counts, default=0) / 1000))


def _patch_firestore(module: ModuleType) -> None:
    cls = module.FirestoreClient

    def reader(name: str, reads: Callable[[Any], int], minimum: int) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            add(fs_queries=1)
            return _counted(original(self, *args, **kwargs), reads, minimum)

        setattr(cls, name, call)

    def writer(name: str) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def call(self: Any, request: Any = None, *args: Any, **kwargs: Any) -> Any:
            written, deleted = _writes(_field(request, "writes", kwargs))
            try:
                result = original(self, request, *args, **kwargs)
            except BaseException:
                add(fs_commit_failed=1, fs_write_failed=written + deleted)
                raise
            add(fs_commit=1, fs_write=written, fs_delete=deleted)
            return result

        setattr(cls, name, call)

    reader("batch_get_documents", _got, 0)
    reader("run_query", _queried, 1)
    reader("run_aggregation_query", _aggregated, 1)
    writer("commit")
    writer("batch_write")


# -- Pub/Sub, Cloud Storage, functions-framework ---------------------------------------------


def _patch_pubsub(module: ModuleType) -> None:
    cls = module.Client
    original = cls.publish

    @functools.wraps(original)
    def publish(self: Any, topic: str, data: bytes, *args: Any, **kwargs: Any) -> Any:
        attrs = {k: v for k, v in kwargs.items() if k not in ("ordering_key", "retry", "timeout")}
        size = len(data) + sum(len(k) + len(v) for k, v in attrs.items())
        add(ps_publish=1, ps_bytes=size, ps_billed_bytes=max(1000, size))
        return original(self, topic, data, *args, **kwargs)

    cls.publish = publish


def _count_calls(cls: Any, name: str, key: str) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        add(**{key: 1})
        return original(*args, **kwargs)

    setattr(cls, name, call)


def _patch_blob(module: ModuleType) -> None:
    _count_calls(module.Blob, "_do_upload", "gcs_a")
    _count_calls(module.Blob, "_do_download", "gcs_b")


def _patch_storage_client(module: ModuleType) -> None:
    for name in ("_list_resource", "_post_resource", "_put_resource", "_patch_resource"):
        _count_calls(module.Client, name, "gcs_a")
    _count_calls(module.Client, "_get_resource", "gcs_b")
    _count_calls(module.Client, "_delete_resource", "gcs_free")


class _Busy:
    """This process is one function instance serving up to THREADS requests at once. Cloud Run
    bills an instance while at least one request is in flight, rounded up to 100 ms: a busy
    period starts when the first request arrives and ends when the last one returns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._since = 0.0

    def enter(self) -> None:
        with self._lock:
            if self._in_flight == 0:
                self._since = time.perf_counter()
            self._in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                add(fn_billed_s=math.ceil((time.perf_counter() - self._since) * 10) / 10)


_busy = _Busy()


def _timed(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def invoke(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        failed = 1
        _busy.enter()
        try:
            result = function(*args, **kwargs)
            failed = 0
            return result
        finally:
            _busy.leave()
            add(fn_calls=1, fn_errors=failed, fn_s=time.perf_counter() - start)

    return invoke


def _patch_functions_framework(module: ModuleType) -> None:
    original = module.get_user_function

    @functools.wraps(original)
    def get_user_function(*args: Any, **kwargs: Any) -> Any:
        return _timed(original(*args, **kwargs))

    setattr(module, "get_user_function", get_user_function)  # noqa: B010


PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "google.cloud.firestore_v1.services.firestore.client": _patch_firestore,
    "google.cloud.pubsub_v1.publisher.client": _patch_pubsub,
    "google.cloud.storage.blob": _patch_blob,
    "google.cloud.storage.client": _patch_storage_client,
    "functions_framework._function_registry": _patch_functions_framework,
}


def _apply(patch: Callable[[ModuleType], None], module: ModuleType) -> None:
    """A library that moved its internals must not break the process: count the miss instead."""
    try:
        patch(module)
    except Exception as e:
        add(patch_failed=1)
        print(f"kumoflow_bench_counts: cannot patch {module.__name__}: {e!r}", file=sys.stderr)


class _PatchOnImport:
    """A meta-path finder that lets the normal finder load a module, then patches it."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        patch = PATCHES.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            _apply(patch, module)

        spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def _role() -> str:
    argv: list[str] = list(sys.orig_argv)
    if "--target" in argv[:-1]:
        return argv[argv.index("--target") + 1]
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1].replace(".", "-")
    return os.path.basename(argv[0]) if argv else "python"


def install(role: str | None = None, directory: str | None = None) -> None:
    """Count from now on; modules already imported are patched at once."""
    with _lock:
        if _state["installed"]:
            return
        _state.update(installed=True, dir=directory or os.environ[ENV], role=role or _role())
    os.makedirs(_state["dir"], exist_ok=True)
    for name, patch in PATCHES.items():
        if name in sys.modules:
            _apply(patch, sys.modules[name])
    sys.meta_path.insert(0, _PatchOnImport())
    os.register_at_fork(after_in_child=_after_fork)
    atexit.register(flush)
    _start_flusher()
