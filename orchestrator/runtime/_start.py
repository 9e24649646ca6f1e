"""Starting a run: bind and check its parameters, create it once per run id, dispatch its roots."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from orchestrator.contracts import BLOCK_REF, FlowSpec, ParentRef, Run, RunRequested, RunStatus
from orchestrator.engine import check_json, started
from orchestrator.errors import BadInputError, ConflictError, NotFoundError, ParameterError
from orchestrator.ports import Commit
from orchestrator.runtime._outbox import entry, execute, request
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime._settle import CHUNK, MAX_CONFLICTS, Ctx, finish

MAX_PARAMS_BYTES = 256 * 1024  # well under Firestore's 1 MiB document limit
# Parameters annotated with these types are secrets: their values never appear in errors, logs,
# dead letters or `runs show` (the run document keeps them: tasks need them).
SECRET_TYPES = frozenset({"SecretStr", "SecretBytes"})
MASK = "**********"


def secret_params(spec: FlowSpec) -> frozenset[str]:
    return frozenset(p.name for p in spec.params if p.annotation in SECRET_TYPES)


def masked(params: Mapping[str, Any], secret: frozenset[str]) -> dict[str, Any]:
    """`params` fit to show: secret values replaced by a mask."""
    return {k: MASK if k in secret else v for k, v in params.items()}


def start_run(
    rt: Runtime, req: RunRequested, *, run_id: str, parent: ParentRef | None = None
) -> tuple[Run, bool]:
    """Create the run (once per run id) and dispatch its roots. Returns (run, created). A
    subflow's run names its `parent` node attempt (set by the parent's worker, never off the
    wire)."""
    version, spec = requested_spec(rt, req)
    params = bind_params(spec.params, req.params, flow=spec.name)
    check_types(rt.flow_function(spec), params, flow=spec.name, secret=secret_params(spec))
    rt.plan(version, params)  # expanding validates mapped parameters before anything is stored
    run = Run(
        run_id=run_id,
        flow=spec.name,
        flow_version=version,
        params=params,
        created_at=rt.clock.now(),
        trigger=req.trigger,
        parent=parent,
    )
    created = rt.state.create_run(run)
    if not created:
        snap = rt.state.load(run_id, [])
        if snap is None:
            raise NotFoundError(f"run {run_id!r} vanished while starting")
        run = snap.run
    # Also on a duplicate: finishes a start that crashed after create_run.
    begin(rt, run_id)
    return run, created


def requested_spec(rt: Runtime, req: RunRequested) -> tuple[str, FlowSpec]:
    """The version and spec a run request names (its flow's latest when it names none)."""
    version = req.flow_version or rt.flows.latest_version(req.flow)
    if version is None:
        raise NotFoundError(f"flow {req.flow!r} is not registered; deploy it first")
    spec = rt.spec(version)
    if spec.name != req.flow:
        raise ParameterError(f"version {version} is flow {spec.name!r}, not {req.flow!r}")
    return version, spec


def refuse_blocks(spec: FlowSpec, given: Mapping[str, Any]) -> None:
    """A message never chooses credentials. Parameters typed as blocks take the flow's own
    declaration (their default); and no value a message gives holds a block reference,
    which a task typed with that block would load. (Called where messages become run
    requests; a subflow's arguments and an in-process call come from the user's own code.)"""
    blocks = {p.name: p.block for p in spec.params if p.block}
    for name, value in given.items():
        if name in blocks:
            raise BadInputError(
                f"parameter {name!r} of flow {spec.name!r} is a {blocks[name]} block: it comes "
                "from the flow's declaration (its default), never from a message; to run with "
                "another block, deploy a flow that declares it"
            )
        if _holds_ref(value):
            raise BadInputError(
                f"parameter {name!r} of flow {spec.name!r} holds a block reference "
                f"({BLOCK_REF!r}): blocks come from the flow's declaration, never from a message"
            )


def _holds_ref(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if BLOCK_REF in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def begin(rt: Runtime, run_id: str) -> None:
    """Move the run to RUNNING, then dispatch its roots chunk by chunk (their claims create
    their records). Repeating this (a duplicate trigger after a crash midway) sends them again;
    nothing runs twice."""
    for _ in range(MAX_CONFLICTS):
        snap = rt.state.load(run_id, [])
        if snap is None:
            raise NotFoundError(f"no run {run_id!r}")
        plan = rt.plan_of(snap.run)
        now = rt.clock.now()
        run, commands = started(plan, snap.run, now)
        if run is snap.run:
            break
        entries = [entry(run_id, c, now) for c in commands]
        try:
            rt.state.commit(
                Commit(run_id=run_id, run=run, run_etag=snap.run_etag, outbox_add=entries)
            )
        except ConflictError:
            continue
        if rt.fault is not None:
            rt.fault("after-commit")
        execute(rt, plan, run, entries, now)
    else:
        raise ConflictError(f"run {run_id}: gave up starting")
    snap = rt.state.load(run_id, [])
    if snap is None or snap.run.status is not RunStatus.RUNNING or snap.run.attempt != 1:
        return  # finished, cancelled, or a flow retry (which queued its own roots)
    if not plan.tasks:
        finish(Ctx(rt, plan, snap.run, snap.run_etag), failed=0)
        return
    # Roots are dispatched without records: each one's claim creates it (one write per root
    # instead of two). Repeating this re-sends them all; a duplicate claim finds the record.
    # A dispatch lost for good is re-queued by the hourly whole-run recheck.
    for i in range(0, len(plan.roots), CHUNK):
        request(rt, snap.run, [(key, 1) for key in plan.roots[i : i + CHUNK]])


def bind_params(spec_params: Any, given: dict[str, Any], *, flow: str) -> dict[str, Any]:
    known = {p.name: p for p in spec_params}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ParameterError(
            f"flow {flow!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(known) or 'no parameters'}"
        )
    size = len(json.dumps(given, default=str))
    if size > MAX_PARAMS_BYTES:
        raise ParameterError(
            f"flow {flow!r}: run params are {size} bytes of JSON, over {MAX_PARAMS_BYTES}; they "
            "are stored with the run, so pass large inputs as gs:// URIs instead"
        )
    params = {}
    for name, p in known.items():
        if name in given:
            params[name] = check_json(given[name], what=f"parameter {name!r} of flow {flow!r}")
        elif p.required:
            raise ParameterError(f"flow {flow!r} needs parameter {name!r} (none was given)")
        else:
            params[name] = p.default
    return params


def check_types(
    fn: Callable[..., Any] | None,
    params: dict[str, Any],
    *,
    flow: str,
    secret: frozenset[str] = frozenset(),
) -> None:
    """Validate params against the flow's annotations (lax, as pydantic does: "5" fits int)."""
    if fn is None:
        return  # the flow body is not importable here (defined in a function): names only
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return  # annotations that do not resolve cannot be checked
    problems = []
    for name, value in params.items():
        if name in hints:
            try:
                TypeAdapter(hints[name]).validate_python(value)
            except ValidationError as e:
                shown = MASK if name in secret else f"{value!r:.60}"
                problems.append(f"{name!r}: {e.errors()[0]['msg']} (got {shown})")
    if problems:
        raise ParameterError(
            f"flow {flow!r}: parameters do not fit its signature: " + "; ".join(problems)
        )
