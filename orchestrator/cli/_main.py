"""The `kumoflow` command group: `run` and `schema` here, every other group in its own module."""

from __future__ import annotations

import contextlib
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli._block import block
from orchestrator.cli._check import check
from orchestrator.cli._deploy import deploy
from orchestrator.cli._dev import dev
from orchestrator.cli._dlq import dlq
from orchestrator.cli._events import events
from orchestrator.cli._examples import add_examples
from orchestrator.cli._init import init
from orchestrator.cli._limits import limits
from orchestrator.cli._logs import logs
from orchestrator.cli._output import emit_run, fail
from orchestrator.cli._runs import runs
from orchestrator.cli._schedules import schedules
from orchestrator.cli._trigger import trigger
from orchestrator.cli._ui import ui
from orchestrator.errors import KumoflowError

if TYPE_CHECKING:
    from orchestrator.cli._output import LiveProgress
    from orchestrator.runtime import InProcessRunner


def parse_params(pairs: tuple[str, ...], annotations: dict[str, str | None]) -> dict[str, Any]:
    """`key=value` pairs, each value read as `param_value` does (JSON when it parses, else
    text; always text for a `str` parameter). A value that opens as JSON does ([, { or ")
    must be JSON: a typo there is named here, not met later as a type that does not fit."""
    import json

    from orchestrator.engine import param_value
    from orchestrator.errors import ParameterError

    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} should be key=value", param_hint="--param")
        annotation = annotations.get(key)
        if annotation != "str" and raw.lstrip()[:1] in ("[", "{", '"'):
            try:
                json.loads(raw)
            except json.JSONDecodeError as e:
                raise ParameterError(
                    f"--param {key}: not valid JSON: {e.msg} at line {e.lineno} column "
                    f'{e.colno}. A value starting with [, {{ or " is read as JSON: complete '
                    f"it (a list: -p {key}='[1, 2, 3]', an object: -p {key}='{{\"k\": 1}}'), "
                    f"or quote it as a JSON string to pass the text: -p {key}='{json.dumps(raw)}'"
                ) from e
        params[key] = param_value(raw, annotation)
    return params


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kumoflow")
def main() -> None:
    """kumoflow: Prefect-style workflows on Google Cloud, without an always-on server."""


@main.command()
@click.argument("target")
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Flow parameter (repeatable); JSON when it parses, else a string (a value that "
    'starts with [, { or " must be JSON; always the text for a str parameter).',
)
@click.option(
    "--backend",
    type=click.Choice(["sqlite", "memory", "emulator"]),
    default="sqlite",
    show_default=True,
    help="sqlite: in-process, the run kept in the local history (KUMOFLOW_HOME, default "
    "~/.kumoflow; `kumoflow runs` reads it); memory: in-process, nothing kept; emulator: the "
    "local stack (`kumoflow dev up`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else.")
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No line per failed attempt, retry or lost lease above the progress table.",
)
@click.option("--no-wait", is_flag=True, help="Start the run and print its id (emulator backend).")
@click.option("--timeout", type=float, default=None, help="Stop following after this many seconds.")
@click.option(
    "--ui",
    is_flag=True,
    help="sqlite, memory: after the run, serve the dashboard over it (retry and cancel work) "
    "until Ctrl-C; the exit code is the run's status then.",
)
@click.option("--port", default=8080, show_default=True, help="--ui: the dashboard's port.")
@click.option(
    "--project",
    default=None,
    help="Start the flow named TARGET deployed in this Google Cloud project (Application "
    "Default Credentials): publishes dev.kumoflow.run.requested to its run-requests topic and "
    "prints the run id.",
)
@click.option("--wait", is_flag=True, help="--project: follow the run until it ends.")
@click.option(
    "--priority",
    type=int,
    default=0,
    show_default=True,
    help="The run's priority: higher starts first among runs waiting for a run slot "
    "(max_active_runs), and its tasks' tickets take it unless a task sets its own.",
)
def run(
    target: str,
    params: tuple[str, ...],
    backend: str,
    as_json: bool,
    quiet: bool,
    no_wait: bool,
    timeout: float | None,
    ui: bool,
    port: int,
    project: str | None,
    wait: bool,
    priority: int,
) -> None:
    """Run TARGET (path/to/file.py:flow or package.module:flow) and show its progress; with
    --project, start the deployed flow named TARGET."""
    from orchestrator.sdk import load_flow

    if wait and not project:
        raise click.UsageError("--wait follows a run started with --project")
    runner = None
    try:
        if project:
            out = _run_in_project(
                project,
                target,
                params,
                as_json=as_json,
                wait=wait,
                timeout=timeout,
                quiet=quiet,
                priority=priority,
            )
            emit_run(out, as_json)
            sys.exit(0 if out.get("status") in ("succeeded", "started") else 1)
        flow = load_flow(target)
        values = parse_params(params, {p.name: p.annotation for p in flow.spec.params})
        if backend in ("sqlite", "memory"):
            if no_wait:
                raise click.UsageError("--no-wait needs --backend emulator")
            out, runner = _run_in_process(
                flow,
                values,
                as_json,
                keep=ui,
                kept=backend == "sqlite",
                quiet=quiet,
                priority=priority,
            )
        else:
            if ui:
                raise click.UsageError(
                    "--ui serves an in-process run's history (--backend sqlite or memory); the "
                    "local stack keeps its runs: `kumoflow ui` shows them"
                )
            out = _run_on_stack(
                flow,
                values,
                as_json=as_json,
                no_wait=no_wait,
                timeout=timeout,
                quiet=quiet,
                priority=priority,
            )
    except KumoflowError as e:
        fail(str(e), as_json)
    emit_run(out, as_json)
    if backend == "sqlite" and not as_json:
        from orchestrator.adapters import kumoflow_home

        where = kumoflow_home()
        show = f"kumoflow runs show {out['run_id']}"
        click.secho(f"kept in {where} (`{show}`, `kumoflow runs list`)", dim=True, err=True)
    if runner is not None:
        from orchestrator.cli._ui import serve_history

        out["status"] = serve_history(runner, out["run_id"], port=port)
    sys.exit(0 if out.get("status") in ("succeeded", "started") else 1)


def _run_in_project(
    project: str,
    name: str,
    pairs: tuple[str, ...],
    *,
    as_json: bool,
    wait: bool,
    timeout: float | None,
    quiet: bool,
    priority: int = 0,
) -> dict[str, Any]:
    """Request a run of the deployed flow `name`; with `wait`, follow it in the project."""
    from orchestrator.cli._output import describe
    from orchestrator.cloud import project_runtime, registered, request_run
    from orchestrator.local import follow

    rt = project_runtime(project)
    found = registered(rt, name)
    if found.unchecked and not as_json:
        click.secho(found.unchecked, fg="yellow", err=True)
    spec = found.spec
    annotations = {p.name: p.annotation for p in spec.params} if spec else {}
    run_id = request_run(rt, name, parse_params(pairs, annotations), found, priority=priority)
    if not wait:
        out: dict[str, Any] = {"run_id": run_id, "flow": name, "status": "started"}
        out["result"] = None
        if as_json:
            out["params_checked"] = found.unchecked is None
        else:
            show = f"kumoflow runs show {run_id} --project {project}"
            click.secho(
                f"requested; follow it with `{show}` (or run with --wait)", dim=True, err=True
            )
        return out
    order = [n.key for n in spec.nodes] if spec else []
    if as_json or spec is None:
        snap = follow(rt, run_id, timeout=timeout)
    else:
        with _progress(spec, quiet) as progress:
            snap = follow(rt, run_id, timeout=timeout, progress=progress)
    return describe(rt, snap, order)


def _progress(spec: Any, quiet: bool) -> LiveProgress:
    """The live table on stderr, with a line above it per failed attempt unless `quiet`."""
    from rich.console import Console

    from orchestrator.cli._output import LiveProgress

    retry = {n.key: n.options.retry for n in spec.nodes}
    order = [n.key for n in spec.nodes]
    return LiveProgress(Console(stderr=True), spec.name, order, retry=retry, events=not quiet)


def _run_in_process(
    flow: Any,
    values: dict[str, Any],
    as_json: bool,
    *,
    keep: bool = False,
    kept: bool = True,
    quiet: bool = False,
    priority: int = 0,
) -> tuple[dict[str, Any], InProcessRunner | None]:
    """Run in this process, kept in the local history (`kept`) or in memory only; with
    `keep`, the runner stays open (its store is the history the dashboard shows)."""
    from orchestrator.cli._output import summary, task_order
    from orchestrator.local import driving, history_runner
    from orchestrator.runtime import InProcessRunner, bind_params

    spec = flow.spec
    bind_params(spec.params, values, flow=spec.name)  # a clear error before anything starts
    order = [n.key for n in spec.nodes]
    functions = flow.functions()
    runner = history_runner(functions) if kept else InProcessRunner(functions=functions)
    run_id = uuid.uuid4().hex[:16]
    try:
        # The driver lock marks the run as this process's: if the process dies, the next
        # command over the history ends the run CANCELLED (see orchestrator/local/_drivers).
        with driving(run_id) if kept else contextlib.nullcontext():
            try:
                if as_json:
                    outcome = runner.run(spec, values, run_id=run_id, priority=priority)
                else:
                    with _progress(flow.spec, quiet) as progress:
                        outcome = runner.run(
                            spec, values, run_id=run_id, progress=progress, priority=priority
                        )
            except KeyboardInterrupt:
                if kept:
                    _interrupted(runner, run_id, as_json)
                raise
    finally:
        if not keep:
            runner.close()
    keys = list(outcome.tasks)
    out = summary(outcome.run, outcome.tasks, outcome.value, task_order=task_order(order, keys))
    return out, runner if keep else None


def _interrupted(runner: InProcessRunner, run_id: str, as_json: bool) -> None:
    """Ctrl-C: the run ends CANCELLED in the history (what still runs here is abandoned), so
    `kumoflow runs retry` can resume it."""
    from orchestrator.engine import CancelRun
    from orchestrator.runtime import advance

    if runner.store.load(run_id, []) is None:
        return
    advance(runner.rt, run_id, CancelRun("interrupted (Ctrl-C in `kumoflow run`)"))
    if not as_json:
        click.secho(
            f"run {run_id} cancelled (interrupted); resume it with `kumoflow runs retry {run_id}`",
            fg="yellow",
            err=True,
        )


def _run_on_stack(
    flow: Any,
    values: dict[str, Any],
    *,
    as_json: bool,
    no_wait: bool,
    timeout: float | None,
    quiet: bool = False,
    priority: int = 0,
) -> dict[str, Any]:
    from orchestrator.cli._output import describe
    from orchestrator.local import follow, stack_runtime, submit

    rt = stack_runtime()
    run_id = submit(rt, flow, values, priority=priority)
    if no_wait:
        return {"run_id": run_id, "flow": flow.spec.name, "status": "started", "result": None}
    order = [n.key for n in flow.spec.nodes]
    if as_json:
        snap = follow(rt, run_id, timeout=timeout)
    else:
        with _progress(flow.spec, quiet) as progress:
            snap = follow(rt, run_id, timeout=timeout, progress=progress)
    return describe(rt, snap, order)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("schemas"), show_default=True)
def schema(out: Path) -> None:
    """Write the JSON Schemas of every contract (events, DAG, documents)."""
    from orchestrator.contracts import write_json_schemas

    for path in write_json_schemas(out):
        click.echo(str(path))


for _group in (dev, runs, events, logs, dlq, deploy, trigger, schedules, ui, block, limits):
    main.add_command(_group)
main.add_command(init)
main.add_command(check)
add_examples(main)  # last: every command registered above gets its examples
