"""In the cloud a block's key goes to Secret Manager and the document keeps the version's name.
No Secret Manager runs here: a session that answers as its REST API documents stands in."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from orchestrator.adapters import SecretManager


@dataclass
class Answer:
    status_code: int
    body: dict[str, Any] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return self.body


@dataclass
class FakeSecretManager:
    """secrets/{id} and their versions, kept as Secret Manager's REST API would."""

    versions: dict[str, list[str]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def post(self, url: str, params: Any = None, json: Any = None) -> Answer:
        self.calls.append(url)
        if url.endswith("/secrets"):
            secret = params["secretId"]
            if secret in self.versions:
                return Answer(409)
            self.versions[secret] = []
            return Answer(200)
        secret = url.rsplit("/", 1)[1].removesuffix(":addVersion")
        if secret not in self.versions:
            return Answer(404)
        self.versions[secret].append(json["payload"]["data"])
        n = len(self.versions[secret])
        return Answer(200, {"name": f"projects/p/secrets/{secret}/versions/{n}"})

    def get(self, url: str) -> Answer:
        self.calls.append(url)
        name = url.split("/v1/", 1)[1].removesuffix(":access")
        secret, version = name.split("/secrets/")[1].split("/versions/")
        return Answer(200, {"payload": {"data": self.versions[secret][int(version) - 1]}})


def test_keys_are_stored_in_secret_manager_and_read_back() -> None:
    fake = FakeSecretManager()
    manager = SecretManager("p", session=fake)
    ref = manager.put("kumoflow-block-gcp-credentials-prod-key", '{"k": 1}')
    assert (
        ref == "secretmanager:projects/p/secrets/kumoflow-block-gcp-credentials-prod-key/versions/1"
    )
    assert (
        base64.b64decode(fake.versions["kumoflow-block-gcp-credentials-prod-key"][0]) == b'{"k": 1}'
    )
    again = manager.put("kumoflow-block-gcp-credentials-prod-key", '{"k": 2}')  # a new version
    assert again.endswith("/versions/2")
    assert manager.get(ref) == '{"k": 1}'
    assert manager.get(again) == '{"k": 2}'


def test_a_secret_terraform_made_gets_a_version_without_being_created() -> None:
    """infra/secrets.tf declares a secret per block key a deploy knows of: saving the block
    then only adds a version (no right to create secrets needed)."""
    fake = FakeSecretManager(versions={"kumoflow-block-gcp-credentials-prod-key": []})
    manager = SecretManager("p", session=fake)
    ref = manager.put("kumoflow-block-gcp-credentials-prod-key", '{"k": 1}')
    assert ref.endswith("/secrets/kumoflow-block-gcp-credentials-prod-key/versions/1")
    assert [c.rsplit("/", 1)[1] for c in fake.calls] == [
        "kumoflow-block-gcp-credentials-prod-key:addVersion"
    ]
    # A block no deploy named: its secret is made, then versioned.
    manager.put("kumoflow-block-gcp-credentials-other-key", '{"k": 2}')
    assert [c.rsplit("/", 1)[1] for c in fake.calls[1:]] == [
        "kumoflow-block-gcp-credentials-other-key:addVersion",
        "secrets",
        "kumoflow-block-gcp-credentials-other-key:addVersion",
    ]
    assert len(fake.versions["kumoflow-block-gcp-credentials-other-key"]) == 1
