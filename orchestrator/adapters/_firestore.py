"""Firestore adapter: FlowStore, StateStore, TimerStore and DeadLetterStore.

Layout (no document that many tasks write at once):
  kumoflow_flows/{version}            one FlowSpec, content-addressed, written once
  kumoflow_flow_names/{flow}          the latest version registered under a name
  kumoflow_runs/{run_id}              the run; written at start and finish only
  kumoflow_runs/{run_id}/tasks/{key}  one task run each, created lazily when first queued
  kumoflow_runs/{run_id}/outbox/{id}  side effects committed with the change that caused them
  kumoflow_runs/{run_id}/counters/{n} fan-in and finish counters: blind `Increment`s whose
                                      values after each commit come back with the commit
  kumoflow_runs/{run_id}/marks/{n}    create-only markers of exactly-once steps (shard roll-ups)
  kumoflow_dead_letters/{id}          rejected input, keyed by event id so redelivery dedupes
  kumoflow_limits/{key}/...           concurrency limits: slots and tickets (_firestore_limits)
  kumoflow_rates/{key}                a rate key's recent starts (_firestore_rates)

Concurrency is optimistic: every write carries the `update_time` it read (or must-not-exist),
in one atomic batch; there are no read-write transactions to contend on. Counters take blind
increments (no precondition, so no contention); the commit's transform results say what value
each increment produced, so exactly one writer sees a counter reach its target.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore

from orchestrator.adapters._due import DueTasks
from orchestrator.adapters._firestore_limits import FirestoreLimits
from orchestrator.adapters._firestore_rates import FirestoreRates
from orchestrator.adapters._names import firestore_database
from orchestrator.adapters._retention import TTL_FIELD, expiry, retention_from_env
from orchestrator.contracts import DeadLetter, FlowSpec, OutboxEntry, Run, TaskRun, flow_version
from orchestrator.errors import BadInputError, ConflictError, TransientError
from orchestrator.ports import Commit, Counts, Etag, Snapshot

M = TypeVar("M", Run, TaskRun, OutboxEntry, DeadLetter)
# Fields holding arbitrary user JSON: Firestore cannot store arrays of arrays, so they travel
# as JSON strings.
_JSON_FIELDS: dict[type[Any], tuple[str, ...]] = {Run: ("params",), OutboxEntry: ("detail",)}
_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.RetryError,
)


def _to_doc(model: Run | TaskRun | OutboxEntry | DeadLetter) -> dict[str, Any]:
    doc = model.model_dump(mode="python")
    for name in _JSON_FIELDS.get(type(model), ()):
        doc[name] = json.dumps(doc[name])
    if isinstance(model, Run):
        doc["trigger"]["detail"] = json.dumps(doc["trigger"]["detail"])
    return doc


def _from_doc(cls: type[M], doc: dict[str, Any]) -> M:
    doc.pop(TTL_FIELD, None)  # Firestore's business (retention), not the model's
    for name in _JSON_FIELDS.get(cls, ()):
        if name in doc:  # entries written before the field existed have none
            doc[name] = json.loads(doc[name])
    if cls is Run:
        doc["trigger"]["detail"] = json.loads(doc["trigger"]["detail"])
    return cls.model_validate(doc)


@contextmanager
def _errors(what: str) -> Iterator[None]:
    try:
        yield
    except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.Aborted) as e:
        raise ConflictError(f"{what}: a concurrent write won ({e.message})") from e
    except _TRANSIENT as e:
        raise TransientError(f"{what}: Firestore unavailable ({e}); retry later") from e
    except (gexc.InvalidArgument, ValueError) as e:
        # An id or value Firestore refuses (reserved, too long, too big) came from the input.
        raise BadInputError(f"{what}: Firestore refused it ({e})") from e


def firestore_client(project: str | None) -> firestore.Client:
    """A client of kumoflow's own database (see _names.firestore_database)."""
    return firestore.Client(project=project, database=firestore_database())


class FirestoreStore(DueTasks, FirestoreLimits, FirestoreRates):
    def __init__(
        self,
        client: firestore.Client,
        prefix: str = "kumoflow",
        *,
        retention: timedelta | None = None,
    ) -> None:
        self._db = client
        self._retention = retention
        self._flows = client.collection(f"{prefix}_flows")
        self._names = client.collection(f"{prefix}_flow_names")
        self._runs = client.collection(f"{prefix}_runs")
        self._letters = client.collection(f"{prefix}_dead_letters")
        self._limit_docs = client.collection(f"{prefix}_limits")  # see _firestore_limits
        self._rate_docs = client.collection(f"{prefix}_rates")  # see _firestore_rates
        self._reads = ThreadPoolExecutor(max_workers=6, thread_name_prefix="firestore-read")

    @classmethod
    def from_env(cls, project: str | None = None) -> FirestoreStore:
        return cls(firestore_client(project), retention=retention_from_env())

    def _doc(self, model: Run | TaskRun | OutboxEntry | DeadLetter) -> dict[str, Any]:
        """The document of `model`, with its TTL field when a retention is set (see _retention)."""
        doc = _to_doc(model)
        if self._retention is not None and not isinstance(model, OutboxEntry):
            since = {
                Run: getattr(model, "ended_at", None),  # running runs never expire
                TaskRun: datetime.now(UTC),
                DeadLetter: getattr(model, "received_at", None),
            }[type(model)]
            doc[TTL_FIELD] = expiry(since, self._retention)
        return doc

    # FlowStore
    def put_flow(self, spec: FlowSpec, *, deploy: bool = False) -> str:
        version = flow_version(spec)
        with _errors("register flow"):
            with contextlib.suppress(gexc.AlreadyExists):  # content-addressed: already there
                self._flows.document(version).create(
                    {
                        "name": spec.name,
                        "spec": spec.model_dump_json(),
                        "created_at": firestore.SERVER_TIMESTAMP,
                    }
                )
            names: dict[str, Any] = {
                "name": spec.name,
                "latest": version,
                "updated_at": firestore.SERVER_TIMESTAMP,
            }
            if deploy:
                names["deployed"] = version
            self._names.document(_doc_id(spec.name)).set(names, merge=True)
        return version

    def get_flow(self, version: str) -> FlowSpec | None:
        with _errors("read flow"):
            snap = self._flows.document(version).get()
        return FlowSpec.model_validate_json(snap.get("spec")) if snap.exists else None

    def deployed(self) -> list[FlowSpec]:
        query = self._names.where(filter=firestore.FieldFilter("deployed", ">", ""))
        with _errors("list deployed flows"):
            versions = [str(s.get("deployed")) for s in query.stream()]
        return [spec for v in versions if (spec := self.get_flow(v)) is not None]

    def latest_version(self, flow: str) -> str | None:
        with _errors("read flow name"):
            snap = self._names.document(_doc_id(flow)).get()
        return str(snap.get("latest")) if snap.exists else None

    # StateStore
    def create_run(self, run: Run) -> bool:
        with _errors("create run"):
            try:
                self._runs.document(run.run_id).create(self._doc(run))
            except gexc.AlreadyExists:
                return False
        return True

    def load(self, run_id: str, keys: Sequence[str] | None = None) -> Snapshot | None:
        ref = self._runs.document(run_id)
        with _errors("load run"):
            if keys is not None:
                refs = [ref, *(ref.collection("tasks").document(_doc_id(k)) for k in keys)]
                found = list(self._db.get_all(refs))  # one round trip for the run and its tasks
                snap = next((s for s in found if s.reference.path == ref.path), None)
                tasks = [t for t in found if t.reference.path != ref.path and t.exists]
                outbox: list[Any] = []
            else:
                # Three independent reads: in parallel, one round trip instead of three.
                run_f = self._reads.submit(ref.get)
                tasks_f = self._reads.submit(lambda: list(ref.collection("tasks").stream()))
                outbox_f = self._reads.submit(lambda: list(ref.collection("outbox").stream()))
                snap, tasks, outbox = run_f.result(), tasks_f.result(), outbox_f.result()
            if snap is None or not snap.exists:
                return None
        records = [(_from_doc(TaskRun, t.to_dict() or {}), t.update_time) for t in tasks]
        return Snapshot(
            run=_from_doc(Run, snap.to_dict() or {}),
            run_etag=snap.update_time,
            tasks={r.key: r for r, _ in records},
            etags={r.key: etag for r, etag in records},
            outbox=tuple(_from_doc(OutboxEntry, o.to_dict() or {}) for o in outbox),
        )

    def tasks(self, run_id: str, keys: Sequence[str]) -> tuple[dict[str, TaskRun], dict[str, Etag]]:
        base = self._runs.document(run_id).collection("tasks")
        with _errors("load tasks"):
            found = [
                s for s in self._db.get_all([base.document(_doc_id(k)) for k in keys]) if s.exists
            ]
        records = [(_from_doc(TaskRun, s.to_dict() or {}), s.update_time) for s in found]
        return {r.key: r for r, _ in records}, {r.key: etag for r, etag in records}

    def counters(self, run_id: str, names: Sequence[str]) -> Counts:
        base = self._runs.document(run_id).collection("counters")
        refs = [base.document(_doc_id(n)) for n in names]
        name_of = {r.path: n for r, n in zip(refs, names, strict=True)}
        with _errors("read counters"):
            found = {
                name_of[s.reference.path]: s.to_dict() or {}
                for s in self._db.get_all(refs)
                if s.exists
            }
        return {n: {k: int(v) for k, v in found.get(n, {}).items()} for n in names}

    def commit(self, commit: Commit) -> Counts:
        run_ref = self._runs.document(commit.run_id)
        batch = self._db.batch()
        if commit.run is not None and commit.run_etag is None:
            raise ConflictError(f"run {commit.run_id}: an update needs the etag it read")
        if commit.run is not None:
            batch.update(
                run_ref,
                self._doc(commit.run),
                option=self._db.write_option(last_update_time=commit.run_etag),
            )
        for task, etag in commit.tasks:
            ref = run_ref.collection("tasks").document(_doc_id(task.key))
            if etag is None:
                batch.create(ref, self._doc(task))
            else:
                batch.update(
                    ref, self._doc(task), option=self._db.write_option(last_update_time=etag)
                )
        for entry in commit.outbox_add:
            batch.set(run_ref.collection("outbox").document(_doc_id(entry.id)), _to_doc(entry))
        for entry_id in commit.outbox_done:
            batch.delete(run_ref.collection("outbox").document(_doc_id(entry_id)))
        for marker in commit.markers:
            batch.create(run_ref.collection("marks").document(_doc_id(marker)), {"at": True})
        counters = run_ref.collection("counters")
        # Field transforms come back in field-path order: send them sorted, read them so.
        fields = {name: sorted(deltas) for name, deltas in commit.increments.items()}
        for name, deltas in commit.increments.items():
            ref = counters.document(_doc_id(name))
            batch.set(ref, {f: firestore.Increment(deltas[f]) for f in fields[name]}, merge=True)
        with _errors(f"commit run {commit.run_id}"):
            try:
                results = batch.commit() if len(batch) else []
            except gexc.NotFound as e:
                raise ConflictError(f"run {commit.run_id}: a document vanished") from e
        counted = results[len(results) - len(fields) :] if fields else []
        return {
            name: dict(
                zip(fields[name], (v.integer_value for v in r.transform_results), strict=True)
            )
            for name, r in zip(fields, counted, strict=True)
        }

    def list_runs(
        self, flow: str | None = None, limit: int = 50, before: datetime | None = None
    ) -> list[Run]:
        query: Any = self._runs
        if flow is not None:
            query = query.where(filter=firestore.FieldFilter("flow", "==", flow))
        if before is not None:  # a page cursor: the same (flow, created_at) index serves it
            query = query.where(filter=firestore.FieldFilter("created_at", "<", before))
        query = query.order_by("created_at", direction=firestore.Query.DESCENDING).limit(limit)
        with _errors("list runs"):
            return [_from_doc(Run, s.to_dict() or {}) for s in query.stream()]

    # TimerStore
    def due(
        self, now: datetime, limit: int = 100, after: OutboxEntry | None = None
    ) -> list[OutboxEntry]:
        query = (
            self._db.collection_group("outbox")
            .where(filter=firestore.FieldFilter("due_at", "<=", now))
            .order_by("due_at")
            .order_by("__name__")
        )
        if after is not None:
            outbox = self._runs.document(after.run_id).collection("outbox")
            query = query.start_after(
                {"due_at": after.due_at, "__name__": outbox.document(_doc_id(after.id))}
            )
        query = query.limit(limit)
        with _errors("query timers"):
            return [_from_doc(OutboxEntry, s.to_dict() or {}) for s in query.stream()]

    def entry(self, run_id: str, entry_id: str) -> OutboxEntry | None:
        ref = self._runs.document(run_id).collection("outbox").document(_doc_id(entry_id))
        with _errors("read timer"):
            found = ref.get()
        return _from_doc(OutboxEntry, found.to_dict() or {}) if found.exists else None

    def _tasks_due(
        self, field: str, now: datetime, limit: int, after: TaskRun | None
    ) -> list[TaskRun]:
        """Task runs whose `field` (a deadline) has passed, across runs: a collection-group
        query on one single-field index, paged as `due` is (by `field`, then document)."""
        query = (
            self._db.collection_group("tasks")
            .where(filter=firestore.FieldFilter(field, "<=", now))
            .order_by(field)
            .order_by("__name__")
        )
        if after is not None:
            tasks = self._runs.document(after.run_id).collection("tasks")
            query = query.start_after(
                {field: getattr(after, field), "__name__": tasks.document(_doc_id(after.key))}
            )
        query = query.limit(limit)
        with _errors(f"query tasks by {field}"):
            return [_from_doc(TaskRun, s.to_dict() or {}) for s in query.stream()]

    def next_due(self) -> datetime | None:
        query = self._db.collection_group("outbox").order_by("due_at").limit(1)
        with _errors("query timers"):
            found = [s.get("due_at") for s in query.stream()]
        return found[0] if found else None

    # DeadLetterStore
    def record(self, letter: DeadLetter) -> None:
        with _errors("record dead letter"):
            self._letters.document(_doc_id(letter.id)).set(self._doc(letter))

    def list(self, limit: int = 100) -> list[DeadLetter]:
        query = self._letters.order_by("received_at", direction=firestore.Query.DESCENDING)
        with _errors("list dead letters"):
            return [_from_doc(DeadLetter, s.to_dict() or {}) for s in query.limit(limit).stream()]

    def get(self, letter_id: str) -> DeadLetter | None:
        with _errors("read dead letter"):
            found = self._letters.document(_doc_id(letter_id)).get()
        return _from_doc(DeadLetter, found.to_dict() or {}) if found.exists else None


def _doc_id(value: str) -> str:
    """A valid document id: `/` is a path separator and `__x__` ids are reserved."""
    if (
        "/" not in value
        and not (value.startswith("__") and value.endswith("__"))
        and value not in (".", "..")
        and len(value.encode()) <= 1000
    ):
        return value
    return "h-" + hashlib.sha256(value.encode()).hexdigest()
