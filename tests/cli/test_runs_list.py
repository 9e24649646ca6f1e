"""`kumoflow runs list`: a header, a duration per run, `--status` (repeatable or a comma list);
and `--param` naming a JSON error with what to write instead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.contracts import RunStatus
from orchestrator.local import duration_text, find_runs, history_runtime
from orchestrator.runtime import InProcessRunner

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUMOFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KUMOFLOW_STATE_DIR", str(tmp_path / "stack"))  # no stack: the history
    monkeypatch.chdir(ROOT)
    return tmp_path


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _last_json(output: str) -> Any:
    """The command's JSON object: its last line that is one (tasks print before it)."""
    return json.loads(next(line for line in reversed(output.splitlines()) if line[:1] == "{"))


@pytest.fixture
def history(home: Path) -> dict[str, str]:
    """A succeeded and a failed run in the history: their ids by status."""
    ok = _cli("run", "examples/map_reduce.py:map_reduce", "-p", "items=[1,2,3]", "--json")
    assert ok.exit_code == 0, ok.output
    bad = _cli(
        "run", "tests/flows/observed.py:observed", "-p", "n=1", "-p", f"counter={home / 'c'}",
        "-p", f"marker={home / 'none'}", "--json",
    )  # fmt: skip
    assert bad.exit_code == 1, bad.output
    last = _last_json(ok.output), _last_json(bad.output)
    return {r["status"]: r["run_id"] for r in last}


def test_the_list_has_a_header_a_duration_per_run_and_newest_first(
    history: dict[str, str],
) -> None:
    out = _cli("runs", "list")
    assert out.exit_code == 0, out.output
    header, *rows = out.output.splitlines()
    assert header.split() == ["RUN", "FLOW", "STATUS", "DURATION", "CREATED", "(UTC)", "TRIGGER"]
    assert [r.split()[0] for r in rows] == [history["failed"], history["succeeded"]]
    start = header.index("DURATION")
    rt = history_runtime()
    for row in rows:
        run = rt.state.load(row.split()[0], []).run  # type: ignore[union-attr]
        took = duration_text((run.ended_at - run.started_at).total_seconds())  # type: ignore[operator]
        assert row[start:].startswith(took)  # in its column, under its header


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--status", "failed"], ["failed"]),
        (["--status", "SUCCEEDED"], ["succeeded"]),
        (["--status", "failed,succeeded"], ["failed", "succeeded"]),
        (["--status", "succeeded", "--status", "failed"], ["failed", "succeeded"]),
        (["--status", "cancelled"], []),
        ([], ["failed", "succeeded"]),
    ],
)
def test_status_filters_by_any_of_the_statuses_given(
    history: dict[str, str], args: list[str], expected: list[str]
) -> None:
    out = _cli("runs", "list", *args, "--json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [r["run_id"] for r in rows] == [history[s] for s in expected]
    if not expected:
        assert _cli("runs", "list", *args).output.strip() == "no runs"


def test_json_rows_keep_their_fields_and_add_started_and_duration(
    history: dict[str, str],
) -> None:
    rows = json.loads(_cli("runs", "list", "--json").output)
    assert set(rows[0]) == {
        "run_id", "flow", "status", "created_at", "ended_at", "flow_version", "trigger",
        "result_uri", "started_at", "duration_s",
    }  # fmt: skip
    for row in rows:
        assert row["duration_s"] >= 0
        assert row["started_at"] is not None


def test_an_unknown_status_is_refused_with_the_statuses_there_are(home: Path) -> None:
    out = CliRunner().invoke(main, ["runs", "list", "--status", "failed,done"])
    assert out.exit_code == 2
    assert "'done' is not a run status; one of: pending, running, succeeded, failed" in out.output


def test_find_runs_reads_on_through_pages_to_fill_a_filtered_one() -> None:
    from orchestrator.testing import VirtualClock
    from tests.flows.observed import observed

    clock = VirtualClock()

    def run(marker: str) -> Any:
        clock.sleep(1)  # runs apart in time: the store pages by creation time
        params = {"n": 1, "counter": "/dev/null", "marker": marker}
        return runner.run(observed.spec, params).run

    with InProcessRunner(clock=clock, functions=observed.functions()) as runner:
        failed = [run("/no/such/marker") for _ in range(2)]
        ok = [run("/dev/null") for _ in range(5)]  # newer: two pages of 3 before the failed
        assert {r.status for r in failed} == {RunStatus.FAILED}
        assert {r.status for r in ok} == {RunStatus.SUCCEEDED}
        found, cursor = find_runs(runner.rt, statuses={RunStatus.FAILED}, limit=3)
        assert [r.run_id for r in found] == [r.run_id for r in reversed(failed)]
        assert cursor is None  # read to the end
        page, cursor = find_runs(runner.rt, statuses={RunStatus.SUCCEEDED}, limit=3)
        assert [r.run_id for r in page] == [r.run_id for r in reversed(ok)][:3]
        assert cursor == page[-1].created_at  # the next page starts after it
        rest, _ = find_runs(runner.rt, statuses={RunStatus.SUCCEEDED}, limit=3, before=cursor)
        assert [r.run_id for r in rest] == [r.run_id for r in reversed(ok)][3:]


def test_a_param_that_opens_as_json_and_is_not_names_the_error_and_what_to_write(
    home: Path,
) -> None:
    out = CliRunner().invoke(
        main, ["run", "examples/map_reduce.py:map_reduce", "-p", "items=[1,2,"]
    )
    assert out.exit_code == 2
    assert "--param items: not valid JSON: Expecting value at line 1 column 6." in out.output
    assert "-p items='[1, 2, 3]'" in out.output
    assert """-p items='"[1,2,"'""" in out.output  # the text itself, as a JSON string
    assert "valid list" not in out.output
    as_json = json.loads(
        CliRunner()
        .invoke(main, ["run", "examples/map_reduce.py:map_reduce", "-p", 'items={"a": 1', "--json"])
        .output
    )
    assert as_json["error"].startswith(
        "--param items: not valid JSON: Expecting ',' delimiter at line 1 column 8."
    )


ECHO = """
from orchestrator import flow, task


@task(name="echo")
def echo(values: list[object]) -> list[object]:
    return values


@flow(name="echo")
def echo_flow(text: str, value=None) -> list[object]:
    return echo([text, value])
"""


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("[draft", "[1, 2]", ["[draft", [1, 2]]),  # a str parameter always takes the text
        ("a b", "plain words", ["a b", "plain words"]),  # not JSON: the text
        ("x", '"[draft"', ["x", "[draft"]),  # opens as JSON: a JSON string is the text
        ("x", "42", ["x", 42]),
        ("x", '{"k": [1]}', ["x", {"k": [1]}]),
    ],
)
def test_param_values_are_json_when_they_parse_and_text_otherwise(
    home: Path, text: str, value: str, expected: list[object]
) -> None:
    path = home / "echo_flow.py"
    path.write_text(ECHO)
    out = _cli("run", f"{path}:echo_flow", "-p", f"text={text}", "-p", f"value={value}", "--json")
    assert out.exit_code == 0, out.output
    assert _last_json(out.output)["result"] == expected
