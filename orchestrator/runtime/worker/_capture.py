"""Task logs: what one attempt prints (stdout, stderr), logs (`logging` records) and raises (its
traceback), kept in order, bounded, and stored next to the task's result as JSON lines.

Capture is per attempt through a context variable, so the many attempts a function instance
serves at once on its threads stay apart (a thread the user starts is not followed). stdout and
stderr are wrapped once per process; a write outside an attempt passes straight through. In the
functions (JSON logging on), a printed line also becomes a Cloud Logging JSON line carrying the
attempt's ids; in-process it is printed as it was.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from orchestrator.contracts import clip
from orchestrator.runtime._context import OUTPUT_LOGGER, RunLogger, _ensure_output
from orchestrator.runtime._logging import LOGGER, json_logging

MAX_LOG_CHARS = 256_000  # per attempt: a chatty task cannot grow a blob without bound
MAX_LINE_CHARS = 16_000
LOG_TYPE = "application/x-ndjson"

_CURRENT: ContextVar[Capture | None] = ContextVar("kumoflow_capture", default=None)
_ECHOING: ContextVar[bool] = ContextVar("kumoflow_capture_echo", default=False)
_lock = threading.Lock()


class Capture:
    """The log of one attempt: entries in the order they happened, at most MAX_LOG_CHARS."""

    def __init__(self, fields: dict[str, object]) -> None:
        self.fields = fields
        self.entries: list[dict[str, Any]] = []
        self.dropped = 0
        self._chars = 0
        self._partial: dict[str, _Pending] = {}
        self._last: logging.LogRecord | None = None
        self._lock = threading.Lock()
        self._echo = RunLogger(fields, OUTPUT_LOGGER) if json_logging() else None

    def add(self, stream: str, level: str, message: str, *, logger: str | None = None,
            at: float | None = None) -> None:  # fmt: skip
        message = clip(message, MAX_LINE_CHARS)
        when = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
        with self._lock:
            if self._chars + len(message) > MAX_LOG_CHARS:
                self.dropped += 1
                return
            self._chars += len(message)
            entry = {"time": when.isoformat(), "stream": stream, "level": level, "message": message}
            if logger is not None:
                entry["logger"] = logger
            self.entries.append(entry)

    def record(self, record: logging.LogRecord) -> None:
        if record is self._last:  # one handler sits on two loggers of one chain
            return
        self._last = record
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        self.add("log", record.levelname, message, logger=record.name, at=record.created)

    def write(self, stream: str, text: str) -> None:
        """Text written to stdout/stderr: one entry per complete line. A write costs its own
        length: the unfinished line is appended to, never re-joined or re-scanned (a progress
        bar redrawn with \r writes tens of thousands of times without a newline)."""
        start = 0
        while (end := text.find("\n", start)) >= 0:
            pending = self._partial.pop(stream, None)
            if pending is None:
                self._line(stream, text[start:end])
            else:
                pending.add(text[start:end])
                self._line(stream, pending.line())
            start = end + 1
        if start < len(text):
            self._partial.setdefault(stream, _Pending()).add(text[start:] if start else text)

    def pending(self, stream: str) -> int:
        """How many characters of `stream`'s unfinished line are held (at most a line's
        worth: the rest is only counted, for the truncation mark)."""
        found = self._partial.get(stream)
        return found.held if found is not None else 0

    def _line(self, stream: str, line: str) -> None:
        self.add(stream, "ERROR" if stream == "stderr" else "INFO", line)
        if self._echo is not None:
            token = _ECHOING.set(True)
            try:
                level = logging.WARNING if stream == "stderr" else logging.INFO
                self._echo.log(level, line, extra={"stream": stream})
            finally:
                _ECHOING.reset(token)

    def failed(self, traceback: str) -> None:
        self.add("traceback", "ERROR", traceback)

    def dump(self) -> bytes:
        for stream in list(self._partial):
            self._line(stream, self._partial.pop(stream).line())
        entries = list(self.entries)
        if self.dropped:
            entries.append({
                "time": datetime.now(UTC).isoformat(), "stream": "kumoflow", "level": "WARNING",
                "message": f"[truncated: {self.dropped} more entries not kept; an attempt keeps "
                f"at most {MAX_LOG_CHARS} characters]",
            })  # fmt: skip
        return "".join(json.dumps(e) + "\n" for e in entries).encode()


class _Pending:
    """An unfinished line: its first MAX_LINE_CHARS characters and the count of the rest, so
    `line()` is the whole line clipped as `clip` would, at a cost linear in what was written."""

    __slots__ = ("_head", "held", "total")

    def __init__(self) -> None:
        self._head = io.StringIO()
        self.held = 0
        self.total = 0

    def add(self, text: str) -> None:
        self.total += len(text)
        room = MAX_LINE_CHARS - self.held
        if room > 0:
            kept = text if len(text) <= room else text[:room]
            self._head.write(kept)
            self.held += len(kept)

    def line(self) -> str:
        head = self._head.getvalue()
        if self.total <= MAX_LINE_CHARS:
            return head
        mark = f" ... [truncated {self.total - MAX_LINE_CHARS} chars]"
        return head[: max(0, MAX_LINE_CHARS - len(mark))] + mark


def parse(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


@contextmanager
def capturing(fields: dict[str, object]) -> Iterator[Capture]:
    """Capture what this context prints and logs while the block runs."""
    _install()
    cap = Capture(fields)
    token = _CURRENT.set(cap)
    try:
        yield cap
    finally:
        _CURRENT.reset(token)


class _Tee(io.TextIOBase):
    """Wraps sys.stdout / sys.stderr: the current attempt's writes are captured too."""

    def __init__(self, real: TextIO, name: str) -> None:
        self.real = real
        self.name_ = name

    def write(self, text: str) -> int:
        cap = _CURRENT.get()
        if cap is None or _ECHOING.get():
            return self.real.write(text)
        cap.write(self.name_, text)
        if cap._echo is None:
            self.real.write(text)
        return len(text)

    def flush(self) -> None:
        self.real.flush()

    def isatty(self) -> bool:
        return self.real.isatty()

    def fileno(self) -> int:
        return self.real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", "utf-8")

    @property
    def rich_proxied_file(self) -> TextIO:
        """While a rich live display (`kumoflow run`'s table, on a terminal) holds the streams,
        they are its proxies, which print through its console, and the console writes to the
        stream this name leads to. Wrapped in a tee it would find the tee, then the proxy, and
        write to itself forever (the first line hung the run). AttributeError otherwise."""
        proxied: TextIO = self.real.rich_proxied_file  # type: ignore[attr-defined]
        return proxied


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        cap = _CURRENT.get()
        if cap is not None and not _ECHOING.get():
            cap.record(record)


_HANDLER = _Handler()


def _install() -> None:
    """Wrap the current streams (again, if someone replaced them) and hook logging, once."""
    _ensure_output()  # before our handler counts as one: run logs still reach the console
    with _lock:
        if not isinstance(sys.stdout, _Tee):
            sys.stdout = _Tee(sys.stdout, "stdout")
        if not isinstance(sys.stderr, _Tee):
            sys.stderr = _Tee(sys.stderr, "stderr")
        # `kumoflow` stops propagating once JSON logging is on: hook it and the root alike.
        for logger in (logging.getLogger(), LOGGER):
            if _HANDLER not in logger.handlers:
                logger.addHandler(_HANDLER)
