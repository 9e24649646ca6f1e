"""`pause(input=Model, timeout=...)`: a node that waits for a person's input, validated by a
pydantic model, and the ways to give it (`kumoflow runs resume`, the dashboard's form, a
signed callback URL), which all end in `resume`.

The node's attempt parks (a deferred task). Its handle names the model and where the input
goes: `kumoflow/resume/<run>/<node>/<flow attempt>-<attempt>.json` in the results bucket, so
an input given for one attempt is never read by another. `resume` validates the input with the
model (refused with the model's errors: nothing written), writes it once (the same input again
is a no-op; other input after it is refused) and fires the node's check itself: the check reads
the input and ends the node through the one completion path, fenced by the parked attempt's
token. So two resumes at once end it once, and a resume after its run was cancelled writes an
input nobody reads and says the node is no longer waiting. A timeout is written in the input's
place the same create-only way, so a resume and the timeout racing at the deadline agree: the
first written is how the node ends.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from pydantic import BaseModel, JsonValue, SecretStr, ValidationError

from orchestrator.context import flow_run, task_run
from orchestrator.contracts import OutboxEntry
from orchestrator.errors import ConflictError, KumoflowError, NotFoundError
from orchestrator.gcp import Block
from orchestrator.io import current_blobs, current_place
from orchestrator.runtime import Deferred, Runtime, deferrable
from orchestrator.runtime.worker import check
from orchestrator.sdk import task
from orchestrator.waits._nodes import MAX_POLL_S, WaitKind, handle_of, later, left, node, now

PAUSE_REF = "orchestrator.waits._pause:pause_node"
FIRST_POLL_S = 1.0
RESUME_KEY_BLOCK = "kumoflow-resume"  # the default name of the ResumeKey block
# Written where the input goes when the pause times out first (an input is always a JSON
# object: a model's dump, so never this string).
TIMED_OUT = b'"kumoflow: timed out"'


class PauseTimedOut(KumoflowError):
    """Nobody gave a paused node its input before its timeout: the node fails."""


class NotWaiting(KumoflowError, LookupError):
    """The run has no node waiting for input (it ended, timed out, was never paused)."""


class InputRefused(KumoflowError, ValueError):
    """The input does not fit the pause's model (`errors`: the model's), or another input
    was given first. Nothing changed."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class ResumeKey(Block):
    """The secret that signs callback URLs (`resume_url`); saved once per project, e.g.
    `ResumeKey(key=secrets.token_urlsafe(32)).save("kumoflow-resume")`."""

    kind: ClassVar[str] = "resume-key"
    secret_fields: ClassVar[tuple[str, ...]] = ("key",)
    key: SecretStr


def input_uri(bucket: str, run_id: str, key: str, flow_attempt: int, attempt: int) -> str:
    node = quote(key, safe="")
    return f"gs://{bucket}/kumoflow/resume/{run_id}/{node}/{flow_attempt}-{attempt}.json"


def _given(uri: str) -> bytes | None:
    try:
        return current_blobs().get(uri)
    except NotFoundError:
        return None


def _check(handle: dict[str, JsonValue]) -> Deferred | JsonValue:
    uri = str(handle["input_uri"])
    given = _given(uri)
    if given is None and left(handle) == 0:
        # The timeout takes the input's place, create-only: an input written first stands
        # (and is taken), one written after is refused, so a check and a resume racing at the
        # deadline agree on how the node ends.
        try:
            current_blobs().put(uri, TIMED_OUT, "application/json")
        except ConflictError:
            given = _given(uri)
    if given == TIMED_OUT:
        raise PauseTimedOut(f"no input was given before {handle['deadline']}")
    if given is not None:
        value: JsonValue = json.loads(given)
        return value
    poll = handle.get("poll")
    every = min(float(poll) * 2, MAX_POLL_S) if isinstance(poll, int | float) else FIRST_POLL_S
    return later({**handle, "poll": every}, every)


@task(name="pause")
@deferrable(_check)
def pause_node(model: str, schema: dict[str, JsonValue], timeout: float | None) -> Any:
    """The node behind `pause` (`model`: "module:qualname" of the form's pydantic model)."""
    _, bucket = current_place()
    handle: dict[str, JsonValue] = {
        "wait": WaitKind.PAUSE.value,
        "model": model,
        "schema": schema,
        "input_uri": input_uri(
            bucket,
            str(flow_run.id),
            str(task_run.task_key),
            flow_run.run_count,
            task_run.run_count,
        ),
        "deadline": None if timeout is None else (now() + timedelta(seconds=timeout)).isoformat(),
    }
    return _check(handle)


def pause(*, input: type[BaseModel], timeout: float | None = None, wait_for: Any = None) -> Any:
    """In a flow body: a node that waits for a person's input, an instance of `input` (a
    pydantic model defined at a module's top level), and returns it as its JSON (a dict:
    `Model.model_validate(result)` in the task that reads it). The run shows it as waiting;
    `kumoflow runs resume`, the dashboard's form or a signed URL (`resume_url`) give the input.
    After `timeout` seconds without input the node fails with PauseTimedOut."""
    ref = f"{input.__module__}:{input.__qualname__}"
    args = {"model": ref, "schema": input.model_json_schema(), "timeout": timeout}
    return node(pause_node, "pause", {**args, "wait_for": wait_for})


@dataclass(frozen=True)
class Resumed:
    run_id: str
    key: str
    value: JsonValue  # the input the node ended with


def waiting_pauses(rt: Runtime, run_id: str) -> dict[str, OutboxEntry]:
    """The run's parked pause nodes, by key, with their check timers."""
    snap = rt.state.load(run_id)
    if snap is None:
        raise NotFoundError(f"no run {run_id!r}")
    return {
        e.key: e
        for e in snap.outbox
        if e.key is not None and handle_of(e).get("wait") == WaitKind.PAUSE.value
    }


def _parse(data: JsonValue | str) -> JsonValue:
    if not isinstance(data, str):
        return data
    try:
        parsed: JsonValue = json.loads(data)
    except ValueError as e:
        raise InputRefused(f"the input is not JSON: {e}") from None
    return parsed


def resume(rt: Runtime, run_id: str, data: JsonValue | str, *, key: str | None = None) -> Resumed:
    """Give a paused node of `run_id` its input (a JSON value or text); `key` names the node
    when several wait. InputRefused (the model's errors) or NotWaiting change nothing."""
    parked = waiting_pauses(rt, run_id)
    if key is None:
        if len(parked) != 1:
            names = ", ".join(sorted(parked)) or "none"
            raise NotWaiting(f"run {run_id} has {len(parked)} nodes waiting for input ({names})")
        key = next(iter(parked))
    entry = parked.get(key)
    if entry is None:
        raise NotWaiting(f"node {key!r} of run {run_id} is not waiting for input")
    handle: dict[str, Any] = entry.detail["handle"]  # type: ignore[assignment]
    snap = rt.state.load(run_id, [key])
    assert snap is not None
    model = rt.resolver.resolve(str(handle["model"]), rt.plan_of(snap.run).spec.source)
    try:
        value = model.model_validate(_parse(data))  # type: ignore[attr-defined]
    except ValidationError as e:
        errors = json.loads(e.json(include_url=False))
        raise InputRefused(f"the input does not fit {model.__name__}: {e}", errors) from None
    stored = value.model_dump_json().encode()
    try:
        rt.blobs.put(str(handle["input_uri"]), stored, "application/json")
    except ConflictError:
        if rt.blobs.get(str(handle["input_uri"])) == TIMED_OUT:
            raise NotWaiting(
                f"node {key!r} of run {run_id} timed out before the input came"
            ) from None
        raise InputRefused(f"node {key!r} of run {run_id} was given other input first") from None
    check(rt, entry)  # the node's own check ends it, on the one completion path
    plan = rt.plan_of(snap.run)
    try:
        ended = json.loads(rt.blobs.get(rt.task_result_uri(plan, run_id, key)))
    except NotFoundError:
        ended = None
    given = json.loads(stored)
    if ended != given:  # its attempt was no longer parked: timed out, cancelled, taken over
        raise NotWaiting(f"node {key!r} of run {run_id} ended before the input came")
    return Resumed(run_id, key, given)


def sign(secret: str, run_id: str, key: str, expires: datetime) -> str:
    message = f"{run_id}\n{key}\n{int(expires.timestamp())}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def resume_url(
    base_url: str,
    run_id: str,
    key: str,
    *,
    valid_for: timedelta = timedelta(days=7),
    block: str = RESUME_KEY_BLOCK,
) -> str:
    """A URL (for a chat message or an email) that opens the pause's form on the dashboard
    at `base_url` and resumes it, without an operator's login, until it expires. Signed with
    HMAC-SHA256 by the ResumeKey block `block`."""
    expires = now() + valid_for
    secret = ResumeKey.load(block).key.get_secret_value()
    query = urlencode(
        {"expires": int(expires.timestamp()), "sig": sign(secret, run_id, key, expires)}
    )
    return f"{base_url.rstrip('/')}/callback/{quote(run_id, safe='')}/{quote(key, safe='')}?{query}"


def verify(run_id: str, key: str, expires: int, sig: str, *, block: str = RESUME_KEY_BLOCK) -> None:
    """InputRefused unless `sig` signs (run, key, expires) and `expires` is still ahead."""
    when = datetime.fromtimestamp(expires, tz=now().tzinfo)
    secret = ResumeKey.load(block).key.get_secret_value()
    if not hmac.compare_digest(sign(secret, run_id, key, when), sig):
        raise InputRefused("the link's signature is not valid")
    if when <= now():
        raise InputRefused("the link has expired")
