"""`kumoflow deploy --target gcp`: deterministic output, the bundle's contents, --apply's order
(terraform, then registration), and the dead-letter sink the Terraform wires."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from cloudevents.http import CloudEvent

from orchestrator.adapters import MemoryStore
from orchestrator.cli import main
from orchestrator.cloud import deploy_gcp
from orchestrator.errors import KumoflowError
from tests._offline import offline_resolve

ROOT = Path(__file__).resolve().parents[2]
INGEST = str(ROOT / "examples" / "ingest.py")


def test_cli_writes_a_root_module_and_prints_the_commands(tmp_path: Path) -> None:
    out = tmp_path / "gcp"
    # Resolved once without the index: the CLI finds the pins in the lock beside the bundle.
    rendered = deploy_gcp([INGEST], project="p-1", region="r", out=out, resolve=offline_resolve)
    before = (out / "requirements.lock.json").read_bytes()
    args = ["deploy", INGEST, "--target", "gcp", "--project", "p-1", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    done = json.loads(result.output)
    assert done["commands"][0] == f"terraform -chdir={out} init -input=false"
    assert done["applied"] is False
    assert set(done["flows"]) == {"ingest"}
    size = (out / "function-source.zip").stat().st_size
    assert done["bundle"] == {"bytes": size, "dependencies": rendered.dependencies}
    assert rendered.dependencies == len(rendered_pins(out))
    assert (out / "requirements.lock.json").read_bytes() == before
    human = CliRunner().invoke(main, args)
    assert f"function bundle: {size / 1e6:.1f} MB, {rendered.dependencies} dependencies" in (
        human.output
    )
    assert {"main.tf", "wiring.json", "terraform.tfvars.json", "function-source.zip"} <= {
        p.name for p in out.iterdir()
    }
    needs = CliRunner().invoke(main, ["deploy", INGEST, "--target", "gcp"])
    assert needs.exit_code == 2
    assert "--project" in needs.output


def test_an_unchanged_deploy_rewrites_nothing(tmp_path: Path) -> None:
    first = deploy_gcp([INGEST], project="p", region="r", out=tmp_path, resolve=offline_resolve)
    files = lambda: {  # noqa: E731
        p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()
    }
    before = files()
    again = deploy_gcp([INGEST], project="p", region="r", out=tmp_path, resolve=offline_resolve)
    after = files()
    assert before == after
    assert first.flows == again.flows


def test_bundle_holds_kumoflow_the_flow_code_and_pinned_requirements(tmp_path: Path) -> None:
    deploy_gcp([INGEST], project="p", region="r", out=tmp_path, resolve=offline_resolve)
    archive = zipfile.ZipFile(io.BytesIO((tmp_path / "function-source.zip").read_bytes()))
    names = set(archive.namelist())
    assert {
        "main.py",
        "orchestrator/functions/main.py",
        "orchestrator/contracts/__init__.py",
        "orchestrator/runtime/__init__.py",
        "ingest.py",
    } <= names
    # One top-level name of kumoflow's, and not the local stack.
    assert not any(n.split("/")[0] in ("contracts", "functions", "emulators") for n in names)
    # Nor the CLI, the dashboard, the pytest plugin or the deploy code: no function imports them.
    for package in ("emulators", "cli", "ui", "testing", "local", "cloud", "infra"):
        assert not any(n.startswith(f"orchestrator/{package}/") for n in names), package
    assert "sample_flow.py" in names  # siblings import each other, as under `python file.py`
    assert not any("__pycache__" in n for n in names)
    reqs = archive.read("requirements.txt").decode().splitlines()
    pins = [r for r in reqs if r and not r.startswith("#")]
    assert pins
    assert all("==" in r for r in pins)
    assert any(r.startswith("functions-framework==") for r in pins)
    for cli_or_dashboard in ("fake-gcs-server", "rich", "starlette", "uvicorn", "jinja2", "click"):
        assert not any(r.startswith(f"{cli_or_dashboard}") for r in pins), cli_or_dashboard
    assert "task_worker" in archive.read("main.py").decode()
    # The buildpack imports main.py from the unzipped bundle: it needs nothing else of ours.
    archive.extractall(tmp_path / "source")
    probe = "import main, orchestrator; print(main.task_worker.__name__, orchestrator.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path / "source",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["task_worker", str(tmp_path / "source/orchestrator/__init__.py")]


def test_apply_runs_terraform_then_registers_and_a_change_is_a_new_version(
    tmp_path: Path,
) -> None:
    ran: list[Sequence[str]] = []
    store = MemoryStore()
    done = deploy_gcp(
        [INGEST], project="p", region="r", out=tmp_path / "o", apply=True,
        runner=lambda c: ran.append(c) or 0, store=store, resolve=offline_resolve,
    )  # fmt: skip
    assert [c[2] for c in ran] == ["init", "plan", "apply"]
    assert done.registered
    assert store.deployed()[0].name == "ingest"
    first = done.flows["ingest"]
    # A changed flow file: a new version is deployed, the old one stays for runs pinned to it.
    changed = tmp_path / "changed" / "ingest_changed.py"  # a fresh module name
    changed.parent.mkdir()
    changed.write_text(Path(INGEST).read_text().replace("retries=2", "retries=3"))
    again = deploy_gcp(
        [str(changed)], project="p", region="r", out=tmp_path / "o", apply=True,
        runner=lambda c: 0, store=store, resolve=offline_resolve,
    )  # fmt: skip
    assert again.flows["ingest"] != first
    assert store.get_flow(first) is not None
    assert [s.name for s in store.deployed()] == ["ingest"]


def test_a_failed_terraform_step_registers_nothing(tmp_path: Path) -> None:
    store = MemoryStore()
    with pytest.raises(KumoflowError, match="plan"):
        deploy_gcp(
            [INGEST], project="p", region="r", out=tmp_path, apply=True,
            runner=lambda c: 1 if c[2] == "plan" else 0, store=store, resolve=offline_resolve,
        )  # fmt: skip
    assert store.deployed() == []


def test_dead_letter_sink_records_what_pubsub_gave_up_on() -> None:
    from orchestrator import functions
    from orchestrator.functions import main as fmain
    from orchestrator.runtime import memory_runtime

    rt = memory_runtime()
    functions.use_runtime(rt)
    try:
        message = {
            "data": base64.b64encode(b'{"x": 1}').decode(),
            "attributes": {
                "CloudPubSubDeadLetterSourceSubscription": "projects/p/subscriptions/kumoflow-x",
                "CloudPubSubDeadLetterSourceDeliveryCount": "100",
            },
            "messageId": "m-1",
        }
        event = CloudEvent(
            {
                "type": "google.cloud.pubsub.topic.v1.messagePublished",
                "source": "//pubsub.googleapis.com/projects/p/topics/kumoflow-dead-letter",
                "id": "outer-1",
            },
            {"message": message, "subscription": "s"},
        )
        fmain.dead_letter_sink(event)
        fmain.dead_letter_sink(event)  # redelivered: one record
        letters = rt.letters.list(10)
    finally:
        functions.use_runtime(None)
    assert len(letters) == 1
    assert letters[0].source == "dead_letter_sink"
    assert "after 100 delivery attempts on kumoflow-x" in letters[0].reason
    assert letters[0].payload == '{"x": 1}'


def rendered_pins(out: Path) -> list[str]:
    archive = zipfile.ZipFile(io.BytesIO((out / "function-source.zip").read_bytes()))
    lines = archive.read("requirements.txt").decode().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


LONG_TASKS = """
from orchestrator import flow, task
from orchestrator.runtime import Deferred, deferrable


@task(timeout_seconds=3600)
def crunch() -> int:
    return 1


@task(timeout_seconds=540)
def at_the_limit() -> int:
    return 2


def _check(handle: dict) -> int:
    return 3


@task(timeout_seconds=7200)  # a deferred task's timeout covers the work elsewhere
@deferrable(_check)
def elsewhere() -> object:
    return Deferred({"id": "x"})


@flow(name="child")
def child() -> int:
    return crunch()


@task(runtime="job", timeout_seconds=6 * 3600)  # runs in the task job's execution
def in_a_job() -> int:
    return 4


@task(runtime="job", timeout_seconds=2 * 24 * 3600)
def past_the_job() -> int:
    return 5


@flow(name="long")
def long() -> list:
    return [at_the_limit(), elsewhere(), child(), in_a_job(), past_the_job()]
"""


def test_a_task_longer_than_the_task_worker_function_is_refused(tmp_path: Path) -> None:
    flows = tmp_path / "project" / "long_tasks.py"
    flows.parent.mkdir()
    flows.write_text(LONG_TASKS)
    out = tmp_path / "out"
    with pytest.raises(KumoflowError) as refused:
        deploy_gcp([str(flows)], project="p", region="r", out=out, resolve=offline_resolve)
    message = str(refused.value)
    # The subflow's task (deployed as `child` and run inside `long`), once, and nothing else.
    assert message.startswith(
        "child/crunch (timeout_seconds=3600): longer than the task worker function may run on "
        "Google Cloud (540 s"
    )
    assert "Lower the task's timeout_seconds to at most 540" in message
    assert '`@task(runtime="job")` (up to 86400 s)' in message
    assert "CloudRunJob" in message
    # A job-run task may take up to the task job's limit, not past it.
    past = '; long/past_the_job (timeout_seconds=172800): runtime="job", longer than the task'
    assert past in message
    assert "in_a_job" not in message
    assert not out.exists()  # nothing written
    args = ["deploy", str(flows), "--target", "gcp", "--project", "p", "--out", str(out)]
    cli = CliRunner().invoke(main, args)
    assert cli.exit_code != 0
    assert "child/crunch (timeout_seconds=3600)" in cli.output
    # Lowered to the limit, it deploys (a fresh module name: the first one stays imported).
    fixed = flows.with_name("long_tasks_fixed.py")
    fixed.write_text(
        LONG_TASKS.replace("timeout_seconds=3600", "timeout_seconds=540").replace(
            "2 * 24 * 3600", "24 * 3600"
        )
    )
    done = deploy_gcp([str(fixed)], project="p", region="r", out=out, resolve=offline_resolve)
    assert set(done.flows) == {"child", "long"}


def test_a_code_change_keeps_a_worker_for_the_earlier_bundle_while_runs_use_it(
    tmp_path: Path,
) -> None:
    from orchestrator.contracts import FlowSpec, Run, RunStatus
    from orchestrator.local import live_bundles
    from orchestrator.ports import Commit

    folder = tmp_path / "flows"
    folder.mkdir()
    flow = folder / "ingest.py"
    flow.write_text(Path(INGEST).read_text())
    out = tmp_path / "out"
    store = MemoryStore()
    first = deploy_gcp([str(flow)], project="p", region="r", out=out, resolve=offline_resolve)
    assert first.kept == []
    assert (out / "code" / f"{first.code}.zip").read_bytes() == (
        out / "function-source.zip"
    ).read_bytes()
    # A run starts on the first bundle (the run starter registers it from the manifest).
    manifest = zipfile.ZipFile(out / "function-source.zip").read("orchestrator/deployed-flows.json")
    specs = [FlowSpec.model_validate(s) for s in json.loads(manifest)]
    assert {s.bundle for s in specs} == {first.code}
    version = store.put_flow(specs[0], deploy=True)
    store.create_run(
        Run(
            run_id="0123456789abcdef",
            flow=specs[0].name,
            flow_version=version,
            params={},
            status=RunStatus.RUNNING,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    assert live_bundles(store, store, [specs[0].name]) == {first.code}

    flow.write_text(flow.read_text() + "\n# a fix\n")
    unchecked = deploy_gcp([str(flow)], project="p", region="r", out=out, resolve=offline_resolve)
    assert unchecked.code != first.code
    assert (unchecked.kept, unchecked.checked) == ([first.code], False)  # none dropped on a guess

    checked = deploy_gcp(
        [str(flow)], project="p", region="r", out=out, resolve=offline_resolve, store=store,
        apply=True, runner=lambda command: 0,
    )  # fmt: skip
    assert (checked.kept, checked.checked) == ([first.code], True)
    tfvars = json.loads((out / "terraform.tfvars.json").read_text())
    assert tfvars["retained_code"] == {first.code: f"code/{first.code}.zip"}

    snap = store.load("0123456789abcdef")
    assert snap is not None
    ended = snap.run.model_copy(update={"status": RunStatus.SUCCEEDED})
    store.commit(Commit(run_id=ended.run_id, run=ended, run_etag=snap.run_etag))
    done = deploy_gcp(
        [str(flow)], project="p", region="r", out=out, resolve=offline_resolve, store=store,
        apply=True, runner=lambda command: 0,
    )  # fmt: skip
    assert done.kept == []  # its runs ended: the next apply deletes its worker
    assert json.loads((out / "terraform.tfvars.json").read_text())["retained_code"] == {}


LIMITED = """
from orchestrator import Limits, flow, task

limits = Limits({"bigquery": 3, "api-eu": 1})


@task(concurrency="bigquery")
def load(x: int) -> int:
    return x


@flow(name="limited-load")
def limited_load(x: int) -> int:
    return load(x)
"""


def test_limits_declared_with_the_flows_go_into_tfvars_and_are_set_on_apply(
    tmp_path: Path,
) -> None:
    path = tmp_path / "limited_load_flows.py"
    path.write_text(LIMITED)
    store = MemoryStore()
    done = deploy_gcp(
        [str(path)], project="p", region="r", out=tmp_path / "o", apply=True,
        runner=lambda c: 0, store=store, resolve=offline_resolve,
    )  # fmt: skip
    tfvars = json.loads((tmp_path / "o" / "terraform.tfvars.json").read_text())
    assert tfvars["concurrency_limits"] == {"api-eu": 1, "bigquery": 3}
    assert done.limits == {"api-eu": 1, "bigquery": 3}
    assert {s.key: s.limit for s in store.limit_states()} == {"api-eu": 1, "bigquery": 3}
    # Without a declaration the tfvars say nothing of limits (infra's default: none).
    plain = deploy_gcp(
        [INGEST], project="p", region="r", out=tmp_path / "p", resolve=offline_resolve
    )
    assert plain.limits == {}
    assert "concurrency_limits" not in json.loads(
        (tmp_path / "p" / "terraform.tfvars.json").read_text()
    )


def test_a_key_declared_twice_with_two_limits_is_refused(tmp_path: Path) -> None:
    first, second = tmp_path / "limits_one.py", tmp_path / "limits_two.py"
    first.write_text('from orchestrator import Limits\nlimits = Limits({"bigquery": 3})\n')
    second.write_text('from orchestrator import Limits\nlimits = Limits({"bigquery": 4})\n')
    from orchestrator.local import limits_in

    with pytest.raises(KumoflowError, match="'bigquery' is declared with 3 and with 4"):
        limits_in([str(first), str(second)])
    zero = tmp_path / "limits_zero.py"
    zero.write_text('from orchestrator import Limits\nlimits = Limits({"x": 0})\n')
    with pytest.raises(KumoflowError, match="must be a whole number >= 1, not 0"):
        limits_in([str(zero)])
