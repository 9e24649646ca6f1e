"""`kumoflow deploy --target gcp --dashboard-*`: the dashboard's tfvars, and what is refused
before anything is written (Terraform's validations, checked by the command itself)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from tests._offline import seed_lock

ROOT = Path(__file__).resolve().parents[2]
INGEST = str(ROOT / "examples" / "ingest.py")
IMAGE = "us-central1-docker.pkg.dev/p-1/images/kumoflow-ui:1"


def _deploy(out: Path, *extra: str) -> tuple[int, str]:
    args = ["deploy", INGEST, "--target", "gcp", "--project", "p-1", "--out", str(out), *extra]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


def test_the_dashboard_is_off_unless_an_image_is_given(tmp_path: Path) -> None:
    seed_lock([INGEST], tmp_path)
    code, output = _deploy(tmp_path)
    assert code == 0, output
    tfvars = json.loads((tmp_path / "terraform.tfvars.json").read_text())
    assert tfvars["dashboard_enabled"] is False
    assert (tmp_path / "dashboard.tf").exists()  # the module is there, count-gated off


def test_dashboard_flags_become_tfvars(tmp_path: Path) -> None:
    seed_lock([INGEST], tmp_path)
    code, output = _deploy(
        tmp_path,
        "--dashboard-image",
        IMAGE,
        "--dashboard-operator",
        "Me@Example.com",
        "--dashboard-viewer",
        "group:team@example.com",
        "--dashboard-viewer",
        "user:auditor@example.com",
    )
    assert code == 0, output
    got = json.loads((tmp_path / "terraform.tfvars.json").read_text())
    assert {k: v for k, v in got.items() if k.startswith("dashboard_")} == {
        "dashboard_enabled": True,
        "dashboard_image": IMAGE,
        "dashboard_operators": ["me@example.com"],
        "dashboard_viewers": ["group:team@example.com", "user:auditor@example.com"],
    }


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--dashboard-viewer", "allUsers"], "not user:EMAIL, group:EMAIL or domain:DOMAIN"),
        (["--dashboard-viewer", "allAuthenticatedUsers"], "allUsers and allAuthenticatedUsers"),
        (["--dashboard-viewer", "serviceAccount:x@p.iam.gserviceaccount.com"], "not user:EMAIL"),
        (["--dashboard-operator", "user:me@example.com"], "is not a plain email"),
    ],
)
def test_principals_terraform_would_refuse_are_refused_first(
    tmp_path: Path, flags: list[str], says: str
) -> None:
    code, output = _deploy(tmp_path / "out", "--dashboard-image", IMAGE, *flags)
    assert code == 2, output
    assert says in output
    assert not (tmp_path / "out").exists()  # nothing written


def test_principals_without_an_image_and_dashboard_flags_locally_are_usage_errors(
    tmp_path: Path,
) -> None:
    code, output = _deploy(tmp_path, "--dashboard-operator", "me@example.com")
    assert code == 2
    assert "need --dashboard-image" in output
    local = CliRunner().invoke(main, ["deploy", INGEST, "--dashboard-image", IMAGE])
    assert local.exit_code == 2
    assert "go with --target gcp" in local.output
