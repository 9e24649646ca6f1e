"""SQLite adapter: FlowStore, StateStore, TimerStore and DeadLetterStore in one local file, the
history of in-process runs (`kumoflow run`), shared by every process on the machine.

Layout (one table per Firestore collection of _firestore.py, JSON documents in `doc`):
  flows(version, name, spec)                     content-addressed, written once
  flow_names(name, latest, deployed)             the latest (and deployed) version of a name
  runs(run_id, flow, created_at, etag, doc)
  tasks(run_id, key, etag, lease_until, redispatch_at, doc)
  outbox(run_id, id, due_at, doc)                side effects, and the timers (`due`)
  counters(run_id, name, field, value)           blind increments
  markers(run_id, name)                          create-only markers of exactly-once steps
  letters(id, seq, doc)                          dead letters, newest recording last
  limits(key, doc)                               a concurrency key's book (engine.limits)
  rates(key, doc)                                a rate key's recent starts (engine.rates)

Etags are version counters per record (1 when created, +1 per write). A commit checks every
precondition and applies every write inside one `BEGIN IMMEDIATE` transaction: SQLite's write
lock makes it atomic across threads and processes alike (WAL mode, so readers never wait for
it). Times are stored as fixed-width UTC text, so text order is time order, as the cursors of
`due`, `expired_leases` and `stale_dispatches` need. Within a process one connection serves
every thread, behind a lock; other processes wait for the write lock up to BUSY_TIMEOUT_S and
then get a TransientError (retry later).

Durability: WAL with `synchronous=NORMAL` survives a crash or kill of any process; a power cut
may lose the last commits (never corrupt the file).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.adapters._due import DueTasks
from orchestrator.adapters._limits import BookLimits
from orchestrator.adapters._rates import BookRates
from orchestrator.contracts import (
    DeadLetter,
    FlowSpec,
    LimitBook,
    OutboxEntry,
    RateBook,
    Run,
    TaskRun,
    flow_version,
)
from orchestrator.errors import ConflictError, KumoflowError, NotFoundError, TransientError
from orchestrator.ports import Commit, Counts, Etag, Snapshot

HOME_ENV = "KUMOFLOW_HOME"
DB_FILE = "runs.db"
BUSY_TIMEOUT_S = 30.0
SCHEMA_VERSION = 1
T = TypeVar("T")
_CHUNK = 500  # keys per `IN (...)`: well under SQLite's limit of bound variables

_SCHEMA = """
CREATE TABLE IF NOT EXISTS flows (
    version TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS flow_names (
    name TEXT PRIMARY KEY, latest TEXT NOT NULL, deployed TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, flow TEXT NOT NULL, created_at TEXT NOT NULL,
    ended_at TEXT, etag INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at);
CREATE INDEX IF NOT EXISTS runs_by_flow ON runs (flow, created_at);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL, key TEXT NOT NULL, etag INTEGER NOT NULL,
    lease_until TEXT, redispatch_at TEXT, doc TEXT NOT NULL, PRIMARY KEY (run_id, key));
CREATE INDEX IF NOT EXISTS tasks_by_lease ON tasks (lease_until, run_id, key)
    WHERE lease_until IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_by_redispatch ON tasks (redispatch_at, run_id, key)
    WHERE redispatch_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS outbox (
    run_id TEXT NOT NULL, id TEXT NOT NULL, due_at TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (run_id, id));
CREATE INDEX IF NOT EXISTS outbox_by_due ON outbox (due_at, run_id, id);
CREATE TABLE IF NOT EXISTS counters (
    run_id TEXT NOT NULL, name TEXT NOT NULL, field TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (run_id, name, field));
CREATE TABLE IF NOT EXISTS markers (
    run_id TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (run_id, name));
CREATE TABLE IF NOT EXISTS letters (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS letters_by_seq ON letters (seq);
CREATE TABLE IF NOT EXISTS limits (key TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rates (key TEXT PRIMARY KEY, doc TEXT NOT NULL);
"""

# What a run owns, table by table (deleted with it by `prune`).
_RUN_TABLES = ("tasks", "outbox", "counters", "markers", "runs")


def kumoflow_home() -> Path:
    """The folder of local history: KUMOFLOW_HOME, else ~/.kumoflow."""
    raw = os.environ.get(HOME_ENV, "").strip()
    return Path(raw).expanduser() if raw else Path.home() / ".kumoflow"


def _key(at: datetime) -> str:
    """A time as text whose order is time order: UTC, fixed width, microseconds."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _opt_key(at: datetime | None) -> str | None:
    return None if at is None else _key(at)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class SqliteStore(DueTasks, BookLimits, BookRates):
    """FlowStore, StateStore, TimerStore, DeadLetterStore, LimitStore and RateStore over one
    SQLite file."""

    def __init__(self, path: Path | str, *, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            with self._errors("open the local store"):
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                with self._write() as db:
                    version = db.execute("PRAGMA user_version").fetchone()[0]
                    if version > SCHEMA_VERSION:
                        raise KumoflowError(
                            f"{self.path} was written by a newer kumoflow (schema {version}); "
                            f"upgrade kumoflow, or move it aside ({HOME_ENV} moves the history)"
                        )
                    for statement in _SCHEMA.split(";"):  # not executescript: it commits
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def at_home(cls) -> SqliteStore:
        """The store of local history: KUMOFLOW_HOME/runs.db (see kumoflow_home)."""
        return cls(kumoflow_home() / DB_FILE)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # Transactions -------------------------------------------------------------------------

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise TransientError(
                    f"{what}: {self.path} stayed locked by another process ({e}); retry later"
                ) from e
            raise KumoflowError(f"{what}: {self.path}: {e}") from e
        except sqlite3.DatabaseError as e:
            raise KumoflowError(f"{what}: {self.path} is not a usable SQLite file ({e})") from e

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: it holds SQLite's write lock from its first statement, so
        what it reads cannot change before it commits (in this or any other process)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """Several reads from one snapshot of the file."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    # LimitStore (the rules: BookLimits) -----------------------------------------------------

    def _edit_book(self, key: str, edit: Callable[[LimitBook], tuple[LimitBook, T]]) -> T:
        with self._errors(f"limit {key}"), self._write() as db:
            row = db.execute("SELECT doc FROM limits WHERE key = ?", (key,)).fetchone()
            book = LimitBook.model_validate_json(row[0]) if row else LimitBook(key=key)
            book, out = edit(book)
            db.execute(
                "INSERT INTO limits (key, doc) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET doc = excluded.doc",
                (key, book.model_dump_json()),
            )
            return out

    def _books(self) -> list[LimitBook]:
        with self._errors("read limits"), self._read() as db:
            rows = db.execute("SELECT doc FROM limits ORDER BY key").fetchall()
        return [LimitBook.model_validate_json(r[0]) for r in rows]

    # RateStore (the rules: BookRates) -------------------------------------------------------

    def _edit_rates(self, key: str, edit: Callable[[RateBook], tuple[RateBook, T]]) -> T:
        with self._errors(f"rate {key}"), self._write() as db:
            row = db.execute("SELECT doc FROM rates WHERE key = ?", (key,)).fetchone()
            book = RateBook.model_validate_json(row[0]) if row else RateBook(key=key)
            book, out = edit(book)
            db.execute(
                "INSERT INTO rates (key, doc) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET doc = excluded.doc",
                (key, book.model_dump_json()),
            )
            return out

    def _rate_books(self) -> list[RateBook]:
        with self._errors("read rates"), self._read() as db:
            rows = db.execute("SELECT doc FROM rates ORDER BY key").fetchall()
        return [RateBook.model_validate_json(r[0]) for r in rows]

    # FlowStore ----------------------------------------------------------------------------

    def put_flow(self, spec: FlowSpec, *, deploy: bool = False) -> str:
        version = flow_version(spec)
        with self._errors("register flow"), self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO flows (version, name, spec) VALUES (?, ?, ?)",
                (version, spec.name, spec.model_dump_json()),
            )
            db.execute(
                "INSERT INTO flow_names (name, latest, deployed) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET latest = excluded.latest, "
                "deployed = COALESCE(excluded.deployed, deployed)",
                (spec.name, version, version if deploy else None),
            )
        return version

    def get_flow(self, version: str) -> FlowSpec | None:
        with self._errors("read flow"), self._lock:
            row = self._db.execute("SELECT spec FROM flows WHERE version = ?", (version,))
            found = row.fetchone()
        return FlowSpec.model_validate_json(found[0]) if found else None

    def latest_version(self, flow: str) -> str | None:
        with self._errors("read flow name"), self._lock:
            found = self._db.execute(
                "SELECT latest FROM flow_names WHERE name = ?", (flow,)
            ).fetchone()
        return str(found[0]) if found else None

    def deployed(self) -> list[FlowSpec]:
        with self._errors("list deployed flows"), self._lock:
            rows = self._db.execute(
                "SELECT f.spec FROM flow_names n JOIN flows f ON f.version = n.deployed "
                "ORDER BY n.rowid"
            ).fetchall()
        return [FlowSpec.model_validate_json(spec) for (spec,) in rows]

    # StateStore ---------------------------------------------------------------------------

    def create_run(self, run: Run) -> bool:
        with self._errors("create run"), self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO runs (run_id, flow, created_at, ended_at, etag, doc) "
                "VALUES (?, ?, ?, ?, 1, ?)",
                (
                    run.run_id,
                    run.flow,
                    _key(run.created_at),
                    _opt_key(run.ended_at),
                    run.model_dump_json(),
                ),
            )
            return cursor.rowcount == 1

    def load(self, run_id: str, keys: Sequence[str] | None = None) -> Snapshot | None:
        with self._errors("load run"), self._read() as db:
            head = db.execute("SELECT etag, doc FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if head is None:
                return None
            if keys is None:
                rows = db.execute(
                    "SELECT key, etag, doc FROM tasks WHERE run_id = ? ORDER BY rowid", (run_id,)
                ).fetchall()
                outbox = db.execute(
                    "SELECT doc FROM outbox WHERE run_id = ? ORDER BY rowid", (run_id,)
                ).fetchall()
            else:
                rows = self._task_rows(db, run_id, keys)
                outbox = []
        return Snapshot(
            run=Run.model_validate_json(head[1]),
            run_etag=head[0],
            tasks={key: TaskRun.model_validate_json(doc) for key, _, doc in rows},
            etags={key: etag for key, etag, _ in rows},
            outbox=tuple(OutboxEntry.model_validate_json(doc) for (doc,) in outbox),
        )

    def tasks(self, run_id: str, keys: Sequence[str]) -> tuple[dict[str, TaskRun], dict[str, Etag]]:
        with self._errors("load tasks"), self._read() as db:
            rows = self._task_rows(db, run_id, keys)
        return (
            {key: TaskRun.model_validate_json(doc) for key, _, doc in rows},
            {key: etag for key, etag, _ in rows},
        )

    @staticmethod
    def _task_rows(
        db: sqlite3.Connection, run_id: str, keys: Sequence[str]
    ) -> list[tuple[str, int, str]]:
        """The records of `keys` that exist, in the order of `keys`."""
        found: dict[str, tuple[str, int, str]] = {}
        for chunk in _chunks(list(dict.fromkeys(keys))):
            for key, etag, doc in db.execute(
                "SELECT key, etag, doc FROM tasks "
                f"WHERE run_id = ? AND key IN ({_marks(len(chunk))})",
                (run_id, *chunk),
            ):
                found[key] = (key, etag, doc)
        return [found[k] for k in keys if k in found]

    def counters(self, run_id: str, names: Sequence[str]) -> Counts:
        out: dict[str, dict[str, int]] = {n: {} for n in names}
        with self._errors("read counters"), self._read() as db:
            for chunk in _chunks(list(dict.fromkeys(names))):
                for name, field, value in db.execute(
                    "SELECT name, field, value FROM counters "
                    f"WHERE run_id = ? AND name IN ({_marks(len(chunk))})",
                    (run_id, *chunk),
                ):
                    out[name][field] = value
        return out

    def commit(self, commit: Commit) -> Counts:
        run_id = commit.run_id
        with self._errors(f"commit run {run_id}"), self._write() as db:
            head = db.execute("SELECT etag FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if head is None:
                raise NotFoundError(f"no run {run_id!r}")
            if commit.run is not None and head[0] != commit.run_etag:
                raise ConflictError(f"run {run_id} changed since read")
            current = {
                key: etag
                for key, etag, _ in self._task_rows(db, run_id, [t.key for t, _ in commit.tasks])
            }
            for task, etag in commit.tasks:
                if current.get(task.key) != etag:
                    raise ConflictError(f"task {task.key} of run {run_id} changed since read")
            markers = list(dict.fromkeys(commit.markers))
            for chunk in _chunks(markers):
                if db.execute(
                    f"SELECT 1 FROM markers WHERE run_id = ? AND name IN ({_marks(len(chunk))})",
                    (run_id, *chunk),
                ).fetchone():
                    raise ConflictError(f"run {run_id}: a marker exists already")
            db.executemany(
                "INSERT INTO markers (run_id, name) VALUES (?, ?)", [(run_id, m) for m in markers]
            )
            if commit.run is not None:
                run = commit.run
                db.execute(
                    "UPDATE runs SET flow = ?, created_at = ?, ended_at = ?, etag = etag + 1, "
                    "doc = ? WHERE run_id = ?",
                    (
                        run.flow,
                        _key(run.created_at),
                        _opt_key(run.ended_at),
                        run.model_dump_json(),
                        run_id,
                    ),
                )
            db.executemany(
                "INSERT INTO tasks (run_id, key, etag, lease_until, redispatch_at, doc) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO UPDATE SET "
                "etag = excluded.etag, lease_until = excluded.lease_until, "
                "redispatch_at = excluded.redispatch_at, doc = excluded.doc",
                [
                    (
                        run_id,
                        task.key,
                        (etag if isinstance(etag, int) else 0) + 1,
                        _opt_key(task.lease_until),
                        _opt_key(task.redispatch_at),
                        task.model_dump_json(),
                    )
                    for task, etag in commit.tasks
                ],
            )
            db.executemany(
                "INSERT INTO outbox (run_id, id, due_at, doc) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run_id, id) DO UPDATE SET due_at = excluded.due_at, "
                "doc = excluded.doc",
                [(run_id, e.id, _key(e.due_at), e.model_dump_json()) for e in commit.outbox_add],
            )
            db.executemany(
                "DELETE FROM outbox WHERE run_id = ? AND id = ?",
                [(run_id, entry_id) for entry_id in commit.outbox_done],
            )
            out: dict[str, dict[str, int]] = {}
            for name, deltas in commit.increments.items():
                db.executemany(
                    "INSERT INTO counters (run_id, name, field, value) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (run_id, name, field) DO UPDATE "
                    "SET value = value + excluded.value",
                    [(run_id, name, f, delta) for f, delta in deltas.items()],
                )
                out[name] = dict(
                    db.execute(
                        "SELECT field, value FROM counters WHERE run_id = ? AND name = ? "
                        "ORDER BY rowid",
                        (run_id, name),
                    ).fetchall()
                )
            return out

    def list_runs(
        self, flow: str | None = None, limit: int = 50, before: datetime | None = None
    ) -> list[Run]:
        where, args = ["1"], []
        if flow is not None:
            where.append("flow = ?")
            args.append(flow)
        if before is not None:
            where.append("created_at < ?")
            args.append(_key(before))
        with self._errors("list runs"), self._lock:
            rows = self._db.execute(
                f"SELECT doc FROM runs WHERE {' AND '.join(where)} "
                "ORDER BY created_at DESC, rowid LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [Run.model_validate_json(doc) for (doc,) in rows]

    def prune(self, ended_before: datetime) -> list[str]:
        """Delete the runs that ended before `ended_before`, with everything they own (task
        records, outbox, counters, markers); returns their ids. Runs not ended stay."""
        with self._errors("prune runs"), self._write() as db:
            ended = db.execute(
                "SELECT run_id, doc FROM runs WHERE ended_at IS NOT NULL AND ended_at < ?",
                (_key(ended_before),),
            ).fetchall()
            ids = [i for i, doc in ended if Run.model_validate_json(doc).status.terminal]
            for chunk in _chunks(ids):
                for table in _RUN_TABLES:
                    db.execute(f"DELETE FROM {table} WHERE run_id IN ({_marks(len(chunk))})", chunk)
        return ids

    # TimerStore ---------------------------------------------------------------------------

    def due(
        self, now: datetime, limit: int = 100, after: OutboxEntry | None = None
    ) -> list[OutboxEntry]:
        query = "SELECT doc FROM outbox WHERE due_at <= ?"
        args: list[Any] = [_key(now)]
        if after is not None:
            query += " AND (due_at, run_id, id) > (?, ?, ?)"
            args += [_key(after.due_at), after.run_id, after.id]
        with self._errors("query timers"), self._lock:
            rows = self._db.execute(
                f"{query} ORDER BY due_at, run_id, id LIMIT ?", (*args, limit)
            ).fetchall()
        return [OutboxEntry.model_validate_json(doc) for (doc,) in rows]

    def next_due(self) -> datetime | None:
        with self._errors("query timers"), self._lock:
            found = self._db.execute(
                "SELECT doc FROM outbox ORDER BY due_at, run_id, id LIMIT 1"
            ).fetchone()
        return OutboxEntry.model_validate_json(found[0]).due_at if found else None

    def entry(self, run_id: str, entry_id: str) -> OutboxEntry | None:
        with self._errors("read timer"), self._lock:
            found = self._db.execute(
                "SELECT doc FROM outbox WHERE run_id = ? AND id = ?", (run_id, entry_id)
            ).fetchone()
        return OutboxEntry.model_validate_json(found[0]) if found else None

    def _tasks_due(
        self, field: str, now: datetime, limit: int, after: TaskRun | None
    ) -> list[TaskRun]:
        """Task records whose `field` (a deadline) has passed, by `field`, then (run, key),
        after the cursor: Firestore's query, on the partial index of that column."""
        assert field in ("lease_until", "redispatch_at")
        query = f"SELECT doc FROM tasks WHERE {field} IS NOT NULL AND {field} <= ?"
        args: list[Any] = [_key(now)]
        if after is not None:
            cursor = getattr(after, field)
            if cursor is not None:
                query += f" AND ({field}, run_id, key) > (?, ?, ?)"
                args += [_key(cursor), after.run_id, after.key]
        with self._errors(f"query tasks by {field}"), self._lock:
            rows = self._db.execute(
                f"{query} ORDER BY {field}, run_id, key LIMIT ?", (*args, limit)
            ).fetchall()
        return [TaskRun.model_validate_json(doc) for (doc,) in rows]

    # DeadLetterStore ----------------------------------------------------------------------

    def record(self, letter: DeadLetter) -> None:
        with self._errors("record dead letter"), self._write() as db:
            # Keyed by id (a redelivery keeps one record), listed by when it was last recorded.
            db.execute(
                "INSERT INTO letters (id, seq, doc) "
                "VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM letters), ?) "
                "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, doc = excluded.doc",
                (letter.id, letter.model_dump_json()),
            )

    def list(self, limit: int = 100) -> list[DeadLetter]:
        with self._errors("list dead letters"), self._lock:
            rows = self._db.execute(
                "SELECT doc FROM letters ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return [DeadLetter.model_validate_json(doc) for (doc,) in rows]

    def get(self, letter_id: str) -> DeadLetter | None:
        with self._errors("read dead letter"), self._lock:
            found = self._db.execute(
                "SELECT doc FROM letters WHERE id = ?", (letter_id,)
            ).fetchone()
        return DeadLetter.model_validate_json(found[0]) if found else None
