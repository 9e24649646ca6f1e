"""What the dashboard and the CLI show of a run: parameters with secrets masked, and
tracebacks from the user's first frame (runtime `shown_params`, `user_traceback`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator import flow, task
from orchestrator.contracts import BLOCK_REF
from orchestrator.runtime import MASK, looks_secret, shown_params, user_traceback

KUMOFLOW = Path(__file__).resolve().parents[2] / "orchestrator"


@task(name="use")
def use(x: object) -> int:
    return 1


@flow(name="secretive")
def secretive(
    password: SecretStr, db: dict[str, object], apiKey: str, token_count: int, note: str
) -> int:
    return use(note)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True), ("db_password", True), ("apiKey", True), ("GITHUB_TOKEN", True),
        ("client-secret", True), ("aws_access_key_id", True), ("authToken", True),
        ("credentials", True), ("private_key_pem", True),
        ("items", False), ("author", False), ("secretary", False), ("passport", False),
        ("bucket_name", False), ("max_tokens", False),
    ],
)  # fmt: skip
def test_a_name_looks_secret_by_its_words(name: str, secret: bool) -> None:
    assert looks_secret(name) is secret


def test_shown_params_mask_secret_types_secret_names_and_secret_keys_at_any_depth() -> None:
    ref = {BLOCK_REF: "gcp-credentials/prod"}
    params = {
        "password": "hunter2",  # SecretStr
        "apiKey": "k-123",  # by its name
        "token_count": 7,  # by its name (the rule masks on the safe side)
        "note": "hello",
        "db": {"host": "db", "user": {"name": "me", "Password": "pw"}, "creds": ref},
    }
    shown = shown_params(secretive.spec, params)
    assert shown == {
        "password": MASK,
        "apiKey": MASK,
        "token_count": MASK,
        "note": "hello",
        "db": {"host": "db", "user": {"name": "me", "Password": MASK}, "creds": ref},
    }
    assert params["db"]["user"]["Password"] == "pw"  # type: ignore[index]  # not mutated


def _frame(path: str, fn: str = "f") -> str:
    return f'  File "{path}", line 1, in {fn}\n    call()\n    ^^^^^^\n'


OURS = [
    f"{KUMOFLOW}/runtime/worker/_worker.py",  # this checkout
    "/workspace/.venv/lib/python3.12/site-packages/orchestrator/runtime/worker/_invoke.py",
    "/layers/google.python.runtime/python/lib/python3.12/concurrent/futures/_base.py",
    "<frozen runpy>",
]
USERS = [
    "/home/me/flows/etl.py",
    "/home/me/orchestrator/flows.py",  # a folder of that name, no module of kumoflow's
    "/usr/lib/python3/dist-packages/yaml/__init__.py",
    "/venv/lib/python3.12/site-packages/pandas/core/frame.py",
]


def test_leading_frames_of_kumoflow_and_python_are_hidden_up_to_the_users_first() -> None:
    text = "Traceback (most recent call last):\n"
    text += "".join(_frame(p) for p in OURS)
    text += _frame(USERS[0], "extract") + _frame(f"{KUMOFLOW}/io.py", "read_blob")
    text += "FileNotFoundError: gone\n"
    shown = user_traceback(text)
    assert shown.hidden == len(OURS)
    assert shown.text == (
        "Traceback (most recent call last):\n"
        f"  [{len(OURS)} frames of kumoflow and Python hidden]\n"
        + _frame(USERS[0], "extract")
        + _frame(f"{KUMOFLOW}/io.py", "read_blob")  # below the user's: kept
        + "FileNotFoundError: gone\n"
    )


@pytest.mark.parametrize("user", USERS)
def test_any_other_file_is_the_users(user: str) -> None:
    text = "Traceback (most recent call last):\n" + _frame(OURS[0]) + _frame(user) + "E: x\n"
    shown = user_traceback(text)
    assert shown.hidden == 1
    assert f'File "{user}"' in shown.text.splitlines()[2]


def test_a_traceback_of_kumoflow_alone_and_text_that_is_no_traceback_are_kept_whole() -> None:
    alone = "Traceback (most recent call last):\n" + _frame(OURS[0]) + _frame(OURS[1]) + "E: x\n"
    assert user_traceback(alone).text == alone
    assert user_traceback(alone).hidden == 0
    assert user_traceback("ValueError: plain").text == "ValueError: plain"


def test_each_block_of_a_chained_traceback_is_trimmed_on_its_own() -> None:
    first = "Traceback (most recent call last):\n" + _frame(OURS[0]) + _frame(USERS[0])
    first += "KeyError: 'a'\n\nThe above exception was the direct cause of the following "
    first += "exception:\n\n"
    second = "Traceback (most recent call last):\n" + _frame(OURS[0]) + _frame(OURS[1])
    second += _frame(USERS[0], "g") + "ValueError: b\n"
    shown = user_traceback(first + second)
    assert shown.hidden == 3
    assert shown.text.count("frames of kumoflow and Python hidden]") == 1
    assert shown.text.count("[1 frame of kumoflow and Python hidden]") == 1
    assert shown.text.endswith(_frame(USERS[0], "g") + "ValueError: b\n")


def test_a_real_failed_attempt_starts_at_the_task_function(backend: object) -> None:
    from orchestrator.contracts import RunStatus
    from tests.flows.observed import observed

    out = backend.run(  # type: ignore[attr-defined]
        observed, {"n": 1, "counter": "/dev/null", "marker": "/no/such/marker"}
    )
    assert out.status is RunStatus.FAILED
    error = out.tasks["picky"].attempts[-1].error
    shown = user_traceback(error.traceback)
    assert shown.hidden >= 1
    frames = [line for line in shown.text.splitlines() if line.startswith('  File "')]
    assert "tests/flows/observed.py" in frames[0]
    assert frames[0].endswith("in picky")
    assert "ValueError: no marker at /no/such/marker" in shown.text
