"""Where the events `wait_for_event` takes are kept, and when they may go.

The mailbox is the results bucket's `kumoflow/events/<source>/<time>-<digest>.json` (one
write-once object per event, named by its time, so a folder lists in time order) beside a
marker per event id, `kumoflow/event-ids/<source>/<digest>`, that makes a duplicate delivery
one record (orchestrator/waits records and reads them).

A wait takes the events of its source from its `since` on: its own start, or its run's start
(`Since.RUN_START`). So an event older than every live run's start can be taken by no wait,
present or future, of a run that is going on; it is kept a while longer all the same
(RETENTION, for a run resumed after it failed, whose `RUN_START` waits look back to the run's
first start) and then deleted by the sweeper, a page at a time (`expire_events`). A run
resumed after RETENTION may miss events from before then: the docs say so.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import quote

from orchestrator.contracts import Run
from orchestrator.runtime._runtime import Runtime

EVENTS = "kumoflow/events/"
EVENT_IDS = "kumoflow/event-ids/"
RETENTION = timedelta(days=7)  # Pub/Sub's own longest message retention
EVENT_RETENTION_ENV = "KUMOFLOW_EVENT_RETENTION_DAYS"


class ExpiryPages(NamedTuple):
    """How much one look at the mailbox reads and deletes at most."""

    run_page: int = 200
    run_pages: int = 25  # old runs read per sweep at most: past them, nothing is deleted now
    delete_page: int = 200  # events deleted per sweep at most (with their markers)


PAGES = ExpiryPages()


def event_retention() -> timedelta:
    raw = os.environ.get(EVENT_RETENTION_ENV, "").strip()
    return timedelta(days=float(raw)) if raw else RETENTION


def stamp(at: datetime) -> str:
    """A time as the mailbox names it: sorts as the time does."""
    utc = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    return utc.strftime("%Y%m%dT%H%M%S.%fZ")


def mailbox_folder(bucket: str, source: str) -> str:
    return f"gs://{bucket}/{EVENTS}{quote(source, safe='/')}/"


def mailbox_marker(bucket: str, source: str, digest: str) -> str:
    return f"gs://{bucket}/{EVENT_IDS}{quote(source, safe='/')}/{digest}"


def event_name(bucket: str, source: str, at: datetime, digest: str) -> str:
    return f"{mailbox_folder(bucket, source)}{stamp(at)}-{digest}.json"


def run_start(run: Run) -> datetime:
    """The earliest `since` a wait of `run` may have: its creation, or its schedule's slot
    when that came first (what `flow_run.scheduled_start_time` says)."""
    slot = run.trigger.detail.get("scheduled_for")
    if isinstance(slot, str):
        return min(run.created_at, datetime.fromisoformat(slot))
    return run.created_at


def horizon(rt: Runtime, now: datetime, pages: ExpiryPages = PAGES) -> datetime | None:
    """Events before this time can be taken by no live run's wait and are past retention;
    None when the old runs could not all be read this time (nothing may go then). Only runs
    created before the retention window can start before it: those are read, newest first."""
    cutoff = now - event_retention()
    oldest, before = cutoff, cutoff
    for _ in range(pages.run_pages):
        runs = rt.state.list_runs(limit=pages.run_page, before=before)
        for run in runs:
            if not run.status.terminal:
                oldest = min(oldest, run_start(run))
        if len(runs) < pages.run_page:
            return oldest
        before = runs[-1].created_at
    return None


class Expired(NamedTuple):
    deleted: int
    more: bool  # a whole page went: there may be more to delete at once


def expire_events(rt: Runtime, now: datetime, pages: ExpiryPages = PAGES) -> Expired:
    """Delete up to `pages.delete_page` events older than `horizon`, oldest of each source first,
    each with its marker (after it: a marker left by a crash only refuses a duplicate of an
    event no wait can take any more)."""
    until = horizon(rt, now, pages)
    if until is None:
        return Expired(0, more=False)
    limit = stamp(until)
    bucket = rt.results_bucket
    root = f"gs://{bucket}/{EVENTS}"
    deleted = 0
    for uri in rt.blobs.list_uris(root):
        source, _, name = uri[len(root) :].rpartition("/")
        if name[: len(limit)] >= limit:
            continue  # this source's later events are later still (names sort by time)
        rt.blobs.delete(uri)
        digest = name.removesuffix(".json").rpartition("-")[2]
        rt.blobs.delete(f"gs://{bucket}/{EVENT_IDS}{source}/{digest}")
        deleted += 1
        if deleted >= pages.delete_page:
            return Expired(deleted, more=True)
    return Expired(deleted, more=False)
