"""`kumoflow dev` without a stack: its settings, its flags, and which optional services a flow
needs (the stack end of it is in test_cli_dev_stack.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator import flow
from orchestrator.cli import main
from orchestrator.emulators import PORTS, Service, StackConfig, port_env
from orchestrator.local import DevStack, services_used
from orchestrator.testing import stack_env
from tests.flows import gcp

ROOT = Path(__file__).resolve().parents[2]
DEV_COMMANDS = ("up", "status", "down", "env")


def _read_settings() -> set[str]:
    """Every KUMOFLOW_* variable the stack's code reads from the environment."""
    read = re.compile(r"os\.environ(?:\.get\(|\[)\s*\"(KUMOFLOW_[A-Z_]+)\"")
    found = set()
    for path in (ROOT / "orchestrator" / "emulators").glob("*.py"):
        found |= set(read.findall(path.read_text()))
    # Read through a constant: the layout's port variables, the base and the state folder.
    return found | {p.env for p in PORTS} | {"KUMOFLOW_PORT_BASE", "KUMOFLOW_STATE_DIR"}


@pytest.mark.parametrize("command", DEV_COMMANDS)
def test_every_setting_of_the_stack_is_in_each_dev_commands_help(command: str) -> None:
    out = CliRunner().invoke(main, ["dev", command, "--help"]).output
    settings = _read_settings()
    assert "KUMOFLOW_GCLOUD_SDK_ROOT" in settings  # the scan finds direct reads too
    assert {s for s in settings if s not in out} == set()
    assert "--port-base" in out


def test_the_port_layout_is_one_for_the_cli_and_the_test_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in (*(p.env for p in PORTS), "KUMOFLOW_PORT_BASE", "KUMOFLOW_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    by_flag = StackConfig.from_env(19000)
    for name, value in stack_env(19000, "/tmp/elsewhere").items():
        monkeypatch.setenv(name, value)
    by_env = StackConfig.from_env()
    assert (by_flag.pubsub_port, by_flag.functions_port) == (19001, 19010)
    ports = [getattr(by_flag, p.attr) for p in PORTS]
    assert ports == [getattr(by_env, p.attr) for p in PORTS]
    assert str(by_env.state_dir) == "/tmp/elsewhere"
    assert by_flag.state_dir.name == "stack-19000"  # never the default stack's records


def test_one_port_variable_moves_one_port_and_env_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in port_env(19000):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUMOFLOW_GCS_PORT", "19999")
    monkeypatch.setenv("KUMOFLOW_STATE_DIR", "/tmp/s")
    stack = DevStack.from_env(19000)
    assert (stack.config.gcs_port, stack.config.pubsub_port) == (19999, 19001)
    printed = CliRunner().invoke(main, ["dev", "env", "--port-base", "19000"]).output
    assert "KUMOFLOW_PORT_BASE=19000 " in printed
    assert "KUMOFLOW_GCS_PORT=19999 " in printed
    assert "KUMOFLOW_PUBSUB_PORT" not in printed  # on the layout: the base says it
    assert "PUBSUB_EMULATOR_HOST=127.0.0.1:19001" in printed


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--with", "bigquery,firestore"], "'firestore' is not an optional service"),
        (["--with", "spanner"], "choose from bigquery, cloudrun"),
        (["--port-base", "65530"], "--port-base"),
    ],
)
def test_dev_up_refuses_what_it_cannot_start(args: list[str], error: str) -> None:
    result = CliRunner().invoke(main, ["dev", "up", *args])
    assert result.exit_code == 2
    assert error in result.output


@flow(name="calls-a-job-in-a-subflow")
def job_in_a_subflow() -> object:
    return gcp.job_ok()


def test_a_flow_needs_the_services_its_tasks_call() -> None:
    assert services_used([gcp.bq_names.spec]) == {Service.BIGQUERY}
    assert services_used([gcp.job_ok.spec]) == {Service.CLOUDRUN}
    assert services_used([job_in_a_subflow.spec]) == {Service.CLOUDRUN}
    assert services_used([gcp.bq_names.spec, gcp.job_exit_3.spec]) == {
        Service.BIGQUERY,
        Service.CLOUDRUN,
    }
    # Buckets and credentials alone are GCS and config: nothing optional.
    assert services_used([gcp.bucket_flow.spec, gcp.block_in_worker.spec]) == set()
