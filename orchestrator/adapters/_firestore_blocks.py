"""Blocks in Firestore (`kumoflow_blocks/{kind}.{name}`); in the cloud their secrets live in
Secret Manager and the document keeps a reference to the version it wrote."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from orchestrator.adapters._firestore import firestore_client
from orchestrator.adapters._names import block_secret_id
from orchestrator.contracts import StoredBlock
from orchestrator.errors import ConflictError, TransientError

COLLECTION = "kumoflow_blocks"
SECRET_MANAGER = "https://secretmanager.googleapis.com/v1"


class SecretManager:
    """Secret Manager's REST API through google-auth's session (no client library needed).
    Each save adds a version; the block keeps the version's name."""

    def __init__(self, project: str, session: Any = None) -> None:
        self.project = project
        self._given = session

    @property
    def _session(self) -> Any:
        """Made on first use: a function that never touches a secret never asks ADC."""
        if self._given is None:
            import google.auth
            from google.auth.transport.requests import AuthorizedSession

            credentials, _ = google.auth.default(
                scopes=["https://www.googleapis.com/auth/cloud-platform"]
            )
            self._given = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        return self._given

    def put(self, secret_id: str, value: str) -> str:
        # A version first: the secret is usually Terraform's (a deploy that knows the block),
        # and adding a version needs no right to create secrets.
        added = self._add_version(secret_id, value)
        if added.status_code == 404:  # a block no deploy named yet: make its secret
            created = self._session.post(
                self._base, params={"secretId": secret_id}, json={"replication": {"automatic": {}}}
            )
            if created.status_code not in (200, 409):  # 409: made meanwhile
                raise TransientError(
                    f"Secret Manager: creating {secret_id}: HTTP {created.status_code}"
                )
            added = self._add_version(secret_id, value)
        if added.status_code != 200:
            raise TransientError(
                f"Secret Manager: adding a version of {secret_id}: HTTP {added.status_code}"
            )
        return f"secretmanager:{added.json()['name']}"

    @property
    def _base(self) -> str:
        return f"{SECRET_MANAGER}/projects/{self.project}/secrets"

    def _add_version(self, secret_id: str, value: str) -> Any:
        payload = base64.b64encode(value.encode()).decode()
        return self._session.post(
            f"{self._base}/{secret_id}:addVersion", json={"payload": {"data": payload}}
        )

    def get(self, ref: str) -> str:
        name = ref.removeprefix("secretmanager:")
        got = self._session.get(f"{SECRET_MANAGER}/{name}:access")
        if got.status_code != 200:
            raise TransientError(f"Secret Manager: reading {name}: HTTP {got.status_code}")
        return base64.b64decode(got.json()["payload"]["data"]).decode()


class FirestoreBlockStore:
    def __init__(self, db: firestore.Client, secrets: SecretManager | None) -> None:
        self._blocks = db.collection(COLLECTION)
        self._secrets = secrets  # None: secrets inline (the emulator, where nothing is real)

    @classmethod
    def from_env(cls, project: str) -> FirestoreBlockStore:
        emulated = bool(os.environ.get("FIRESTORE_EMULATOR_HOST"))
        return cls(firestore_client(project), None if emulated else SecretManager(project))

    def put_block(self, block: StoredBlock, *, overwrite: bool = False) -> None:
        if self._secrets is not None:
            secrets = {
                field: self._secrets.put(
                    block_secret_id(block.kind, block.name, field),
                    ref.removeprefix("inline:"),
                )
                for field, ref in block.secrets.items()
            }
            block = block.model_copy(update={"secrets": secrets})
        doc = self._blocks.document(f"{block.kind}.{block.name}")
        data = {**block.model_dump(mode="python"), "data": json.dumps(block.data)}
        try:
            doc.set(data) if overwrite else doc.create(data)
        except gexc.AlreadyExists as e:
            raise ConflictError(
                f"block {block.kind}/{block.name} exists; save(..., overwrite=True) replaces it"
            ) from e

    def _decode(self, raw: dict[str, Any]) -> StoredBlock:
        raw["data"] = json.loads(raw["data"])
        block = StoredBlock.model_validate(raw)
        if self._secrets is None or not block.secrets:
            return block
        resolved = {
            f: "inline:" + self._secrets.get(ref) if ref.startswith("secretmanager:") else ref
            for f, ref in block.secrets.items()
        }
        return block.model_copy(update={"secrets": resolved})

    def get_block(self, kind: str, name: str) -> StoredBlock | None:
        snap = self._blocks.document(f"{kind}.{name}").get()
        return self._decode(snap.to_dict() or {}) if snap.exists else None

    def list_blocks(self, kind: str | None = None) -> list[StoredBlock]:
        query = (
            self._blocks.where(filter=firestore.FieldFilter("kind", "==", kind))
            if kind
            else self._blocks
        )
        found = []
        for snap in query.stream():
            raw = snap.to_dict() or {}
            raw["data"] = json.loads(raw["data"])
            found.append(StoredBlock.model_validate(raw))  # secrets stay references: not read
        return sorted(found, key=lambda b: (b.kind, b.name))

    def delete_block(self, kind: str, name: str) -> bool:
        doc = self._blocks.document(f"{kind}.{name}")
        if not doc.get().exists:
            return False
        doc.delete()
        return True
