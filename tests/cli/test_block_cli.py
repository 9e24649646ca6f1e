"""`kumoflow block`: what one command saved another lists; show masks secrets; rm removes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator import FlowDefinitionError, flow
from orchestrator.cli import main
from orchestrator.gcp import GcpCredentials, GcsBucket
from tests.flows.gcp import key_email


def test_ls_show_rm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUMOFLOW_BLOCKS_DIR", str(tmp_path))
    GcpCredentials(service_account_info={"private_key": "s3cr3t"}, project="p").save("prod")
    GcsBucket(
        bucket="b", bucket_folder="reports", gcp_credentials=GcpCredentials.load("prod")
    ).save("out")
    runner = CliRunner()
    listed = runner.invoke(main, ["block", "ls", "--json"])
    assert [(b["kind"], b["name"]) for b in json.loads(listed.output)] == [
        ("gcp-credentials", "prod"),
        ("gcs-bucket", "out"),
    ]
    shown = runner.invoke(main, ["block", "show", "gcp-credentials/prod", "--json"])
    assert json.loads(shown.output)["fields"] == {
        "project": "p",
        "service_account_info": "**********",
    }
    assert "s3cr3t" not in shown.output
    bucket = json.loads(runner.invoke(main, ["block", "show", "gcs-bucket/out", "--json"]).output)
    assert bucket["fields"]["gcp_credentials"] == {"$block": "gcp-credentials/prod"}
    assert GcsBucket.load("out").gcp_credentials == GcpCredentials.load("prod")
    assert runner.invoke(main, ["block", "rm", "gcs-bucket/out"]).exit_code == 0
    gone = runner.invoke(main, ["block", "show", "gcs-bucket/out"])
    assert gone.exit_code == 2
    assert "no block gcs-bucket/out" in gone.output


@flow(name="leaky")
def leaky() -> str:
    return key_email(GcpCredentials(service_account_info={"private_key": "s3cr3t"}))


def test_a_block_with_a_key_must_be_saved_to_enter_a_flow() -> None:
    with pytest.raises(FlowDefinitionError, match=r"save it \(.save\('name'\)\)") as caught:
        _ = leaky.spec
    assert "s3cr3t" not in str(caught.value)
