"""Reading and steering runs from outside the functions (the CLI, the dashboard): task records
page by page, attempt logs, resuming a run, redriving a dead letter. The same calls serve the
local stack, a deployed project and in-memory runtimes.

Nothing here reads a whole run in one go: task records come in pages of the plan's keys (one
batch get each), so a 10,000-task run costs a page per view, not the run.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.contracts import DeadLetter, Run, RunStatus, TaskRun, TriggerKind
from orchestrator.engine import Plan, ResumeRun
from orchestrator.errors import KumoflowError, NotFoundError
from orchestrator.runtime import FLOW_ATTRIBUTE, Runtime, advance, parse_logs

PAGE = 500  # task records per batch read


def run_head(rt: Runtime, run_id: str) -> Run:
    """The run document alone (no task records)."""
    snap = rt.state.load(run_id, [])
    if snap is None:
        raise NotFoundError(f"no run {run_id!r}; list runs with `kumoflow runs list`")
    return snap.run


def run_plan(rt: Runtime, run: Run) -> Plan:
    """The run's plan, with the children its run-time maps have by now."""
    plan = rt.plan_of(run)
    return rt.grown(plan, run.run_id, plan.dynamic) if plan.dynamic else plan


def task_keys(plan: Plan) -> list[str]:
    """Every task key of the plan, in DAG order (a map's children after it, by index)."""
    return list(plan.tasks)


def records(rt: Runtime, run: Run, keys: Sequence[str]) -> dict[str, TaskRun]:
    """The records of `keys`, absent ones as PENDING, read PAGE keys at a time."""
    plan = run_plan(rt, run)
    found: dict[str, TaskRun] = {}
    for i in range(0, len(keys), PAGE):
        page, _ = rt.state.tasks(run.run_id, list(keys[i : i + PAGE]))
        found.update(page)
    out = {}
    for key in keys:
        planned = plan.tasks[key]
        out[key] = found.get(key) or TaskRun(
            run_id=run.run_id,
            key=key,
            node=planned.node.key,
            name=planned.node.options.name,
            map_index=planned.map_index,
        )
    return out


def pages(rt: Runtime, run: Run) -> Iterator[dict[str, TaskRun]]:
    """Every task record of the run, one page at a time."""
    keys = task_keys(run_plan(rt, run))
    for i in range(0, len(keys), PAGE):
        yield records(rt, run, keys[i : i + PAGE])


def find_runs(
    rt: Runtime,
    *,
    flow: str | None = None,
    statuses: Collection[RunStatus] = (),
    trigger: TriggerKind | None = None,
    before: datetime | None = None,
    limit: int = 50,
) -> tuple[list[Run], datetime | None]:
    """Runs newest first, of any of `statuses` (none: every status) and of `trigger`'s kind;
    and the cursor of the next page (None: no more). The store lists by flow and time only,
    so the filters read on through at most five pages of `limit` runs per call."""
    found: list[Run] = []
    cursor = before
    for _ in range(5):
        batch = rt.state.list_runs(flow or None, limit, cursor)
        found += [
            r
            for r in batch
            if (not statuses or r.status in statuses)
            and (trigger is None or r.trigger.kind == trigger)
        ]
        if len(batch) < limit:
            return found[:limit], None
        cursor = batch[-1].created_at
        if len(found) >= limit:
            break
    found = found[:limit]
    return found, (found[-1].created_at if len(found) == limit else cursor)


def elapsed(start: datetime | None, end: datetime | None, now: datetime) -> float | None:
    """Seconds from `start` to `end`, or to `now` while not ended; None before it started."""
    if start is None:
        return None
    return max(0.0, ((end or now) - start).total_seconds())


def duration_text(seconds: float | None) -> str:
    """ "0.012 s", "3.4 s", "2 m 05 s", "1 h 02 m"; "" for None."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds:.3f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} m {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} m"


def attempt_log(rt: Runtime, run: Run, key: str, attempt: int) -> list[dict[str, Any]] | None:
    """What attempt `attempt` of task `key` printed and logged; None when nothing was stored
    (it printed and logged nothing, still runs, never reached its code, or its worker died)."""
    uri = rt.task_logs_uri(run_plan(rt, run), run.run_id, key, attempt)
    try:
        return parse_logs(rt.blobs.get(uri))
    except NotFoundError:
        return None


@dataclass(frozen=True)
class LogLine:
    key: str
    attempt: int
    entry: dict[str, Any]

    def json(self) -> dict[str, Any]:
        return {"task": self.key, "attempt": self.attempt, **self.entry}


def run_logs(
    rt: Runtime,
    run: Run,
    *,
    task: str | None = None,
    attempt: int | None = None,
    skip: set[tuple[str, int]] | None = None,
) -> list[LogLine]:
    """The stored logs of the run's attempts (of one task, one attempt), oldest first.
    Attempts in `skip` are left out, and those read are added to it (--follow)."""
    plan = run_plan(rt, run)
    if task is not None and task not in plan.tasks:
        raise NotFoundError(f"run {run.run_id!r} has no task {task!r}")
    skip = set() if skip is None else skip
    lines: list[LogLine] = []
    chunks = [records(rt, run, [task])] if task is not None else pages(rt, run)
    for chunk in chunks:
        for key, record in chunk.items():
            for a in record.attempts:
                if (attempt is not None and a.number != attempt) or (key, a.number) in skip:
                    continue
                if a.started_at is None:
                    continue
                entries = attempt_log(rt, run, key, a.number)
                if entries is None:
                    continue
                skip.add((key, a.number))
                lines.extend(LogLine(key, a.number, e) for e in entries)
    lines.sort(key=lambda line: str(line.entry.get("time", "")))
    return lines


def retry_run(rt: Runtime, run_id: str) -> Run:
    """Resume a failed or cancelled run in place (same run id, next flow attempt): what
    failed, was skipped or cancelled runs again; succeeded tasks keep their results."""
    run = retryable(rt, run_id)
    if not advance(rt, run_id, ResumeRun(run.attempt)) and run_head(rt, run_id) == run:
        limit = rt.spec(run.flow_version).options.max_active_runs
        if limit is not None:
            raise KumoflowError(
                f"run {run_id} was not retried: flow {run.flow!r} runs {limit} runs at once"
                " (max_active_runs), all its run slots are taken; retry it later"
            )
    return run_head(rt, run_id)


def retryable(rt: Runtime, run_id: str) -> Run:
    """The run, if it can be resumed (FAILED or CANCELLED); else a clear error."""
    run = run_head(rt, run_id)
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        raise KumoflowError(
            f"run {run_id} is {run.status.value}: only a FAILED or CANCELLED run can be retried"
        )
    return run


Publish = Callable[[str, bytes, dict[str, str]], str]  # (topic, data, attributes) -> message id


def redrive(
    rt: Runtime, letter_id: str, publish: Publish, data: bytes | None = None
) -> tuple[DeadLetter, str]:
    """Publish a dead letter's input again, where it first arrived (after its cause was
    fixed: a flow deployed, a bucket created), or `data` in its place (the input, fixed).
    A letter one flow of a topic wrote reaches that flow only (the others took the input).
    Returns the letter as now recorded (marked redriven) and the new message's id."""
    letter = rt.letters.get(letter_id)
    if letter is None:
        raise NotFoundError(f"no dead letter {letter_id!r}; see `kumoflow dlq list`")
    if letter.topic is None:
        raise KumoflowError(
            f"dead letter {letter_id} did not arrive on a Pub/Sub topic ({letter.source}): "
            "there is nowhere to publish it again"
        )
    if data is None:
        if not letter.exact or letter.payload is None:
            raise KumoflowError(
                f"dead letter {letter_id} keeps its input truncated or with secrets masked: "
                "pass the input to publish with --data"
            )
        data = letter.payload.encode()
    attributes = dict(letter.attributes)
    if letter.flow is not None:  # the flows of its topic that took it do not run again
        attributes[FLOW_ATTRIBUTE] = letter.flow
    message_id = publish(letter.topic, data, attributes)
    marked = letter.model_copy(update={"redriven_at": rt.clock.now()})
    rt.letters.record(marked)
    return marked, message_id
