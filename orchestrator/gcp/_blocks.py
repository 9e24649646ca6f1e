"""Blocks, as in prefect_gcp: named configuration saved once and loaded by name.

`Block.load(name)` reads the block store of the code that runs it (a task's runtime, else the
one the environment names: see `orchestrator.adapters.block_store_from_env`). In a flow body
the loaded block travels in the DAG as a reference (`{"$block": "kind/name"}`), which the task
worker loads again: a changed block applies to the next run without redeploying, and no secret
is ever part of a DAG, a run document or a result.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    JsonValue,
    PrivateAttr,
    Secret,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from orchestrator.contracts import BLOCK_REF, StoredBlock
from orchestrator.errors import FlowDefinitionError, NotFoundError
from orchestrator.io import current_blocks
from orchestrator.runtime import in_flow_body

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

REF = BLOCK_REF
MASK = "**********"


class Block(BaseModel):
    """A saved, named piece of configuration. Subclasses set `kind` and `secret_fields`."""

    model_config = ConfigDict(extra="forbid")
    kind: ClassVar[str]
    secret_fields: ClassVar[tuple[str, ...]] = ()
    _name: str | None = PrivateAttr(default=None)

    @property
    def block_name(self) -> str | None:
        """The name it was saved or loaded under; None for a block made in code."""
        return self._name

    @model_validator(mode="wrap")
    @classmethod
    def _from_ref(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        """`{"$block": "kind/name"}` (how a loaded block travels in a DAG) loads the block."""
        if isinstance(value, dict) and set(value) == {REF}:
            kind, _, name = str(value[REF]).partition("/")
            if kind != cls.kind:
                raise ValueError(f"{value[REF]!r} is not a {cls.kind} block")
            return cls.load(name)
        return handler(value)

    def save(self, name: str, overwrite: bool = False) -> str:
        """Store under `name` (ConflictError if taken, unless `overwrite`); returns the name."""
        data: dict[str, JsonValue] = {}
        secrets: dict[str, str] = {}
        for field, value in self:
            if value is None:
                continue
            if field in self.secret_fields:
                secrets[field] = "inline:" + json.dumps(value.get_secret_value())
            elif isinstance(value, Block):
                data[field] = value.reference(what=f"{self.kind}.{field}")
            else:
                data[field] = json.loads(json.dumps(value, default=_plain))
        current_blocks().put_block(
            StoredBlock(kind=self.kind, name=name, data=data, secrets=secrets, saved_at=_now()),
            overwrite=overwrite,
        )
        self._name = name
        return name

    @classmethod
    def load(cls, name: str) -> Self:
        """The saved block. In a flow body: a reference only, read by the task that gets it
        (the store is not read there, so `kumoflow deploy` needs no blocks; a changed block
        applies to the next run)."""
        if in_flow_body():
            lazy = cast(Self, cls.model_construct())  # fields unread: a body only passes it on
            lazy._name = name
            return lazy
        stored = current_blocks().get_block(cls.kind, name)
        if stored is None:
            raise NotFoundError(
                f"no {cls.kind} block named {name!r}: save one with "
                f"{cls.__name__}(...).save({name!r}) (list them: kumoflow block ls)"
            )
        values: dict[str, Any] = dict(stored.data)
        for field, where in stored.secrets.items():
            values[field] = json.loads(where.removeprefix("inline:"))
        block = cls.model_validate(values)
        block._name = name
        return block

    def reference(self, *, what: str = "a block") -> JsonValue:
        """How this block travels in a DAG, a handle or another block: by name when it has
        one; a block with no name and no secrets as its fields; never its secrets."""
        if self._name is not None:
            return {REF: f"{self.kind}/{self._name}"}
        if any(getattr(self, f) is not None for f in self.secret_fields):
            raise FlowDefinitionError(
                f"{what}: a {type(self).__name__} holding a secret cannot travel into a DAG; "
                f"save it (.save('name')) and pass {type(self).__name__}.load('name')"
            )
        dumped: JsonValue = self.model_dump(mode="json", exclude_none=True)
        return dumped

    def __kumoflow_ref__(self) -> JsonValue:
        """What a flow body's literal becomes (see sdk `to_expr`)."""
        return self.reference(what=f"a {type(self).__name__} passed in a flow body")

    def shown(self) -> dict[str, JsonValue]:
        """Fields for display: secrets masked."""
        out: dict[str, JsonValue] = {}
        for field, value in self:
            if field in self.secret_fields and value is not None:
                out[field] = MASK
            elif isinstance(value, Block):
                out[field] = value.reference()
            else:
                out[field] = json.loads(json.dumps(value, default=_plain))
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON")


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def emulator(name: str) -> str | None:
    """The local stack's endpoint for a service the client libraries do not redirect themselves
    (`kumoflow dev env` sets BIGQUERY_EMULATOR_HOST and CLOUD_RUN_EMULATOR_HOST)."""
    return os.environ.get(name) or None


class GcpCredentials(Block):
    """Credentials for Google's clients: a service account's key (info or file), else
    Application Default Credentials. On the local stack the emulators take no credentials, so
    its clients get anonymous ones (a key is still parsed, so a bad one fails here too)."""

    kind: ClassVar[str] = "gcp-credentials"
    secret_fields: ClassVar[tuple[str, ...]] = ("service_account_info",)

    service_account_info: Secret[dict[str, Any]] | None = None
    service_account_file: str | None = None
    project: str | None = None

    def get_credentials_from_service_account(self) -> Credentials | None:
        from google.oauth2 import service_account

        scopes = ["https://www.googleapis.com/auth/cloud-platform"]
        if self.service_account_info is not None:
            info = self.service_account_info.get_secret_value()
            return service_account.Credentials.from_service_account_info(info, scopes=scopes)  # type: ignore[no-any-return,no-untyped-call]
        if self.service_account_file is not None:
            path = os.path.expanduser(self.service_account_file)
            return service_account.Credentials.from_service_account_file(path, scopes=scopes)  # type: ignore[no-any-return,no-untyped-call]
        return None

    def credentials(self, *, emulated: bool = False) -> Credentials:
        explicit = self.get_credentials_from_service_account()
        if emulated:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()  # type: ignore[no-untyped-call]
        if explicit is not None:
            return explicit
        import google.auth

        found, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        return found

    def project_id(self) -> str:
        """The project: the block's, the key's, the environment's, or ADC's."""
        if self.project:
            return self.project
        if self.service_account_info is not None:
            found = self.service_account_info.get_secret_value().get("project_id")
            if found:
                return str(found)
        env = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
        if env:
            return env
        import google.auth

        _, project = google.auth.default()
        if not project:
            raise NotFoundError(
                "no project: set GcpCredentials(project=...) or GOOGLE_CLOUD_PROJECT"
            )
        return str(project)

    def get_bigquery_client(self, project: str | None = None, location: str | None = None) -> Any:
        """As prefect_gcp's: `project` overrides the credentials' project."""
        from google.api_core.client_options import ClientOptions
        from google.cloud import bigquery

        endpoint = emulator("BIGQUERY_EMULATOR_HOST")
        return bigquery.Client(
            project=project or self.project_id(),
            credentials=self.credentials(emulated=endpoint is not None),
            location=location,
            client_options=ClientOptions(api_endpoint=endpoint) if endpoint else None,
        )

    def get_cloud_storage_client(self, project: str | None = None) -> Any:
        """As prefect_gcp's: `project` overrides the credentials' project."""
        from google.cloud import storage  # type: ignore[attr-defined]

        emulated = bool(os.environ.get("STORAGE_EMULATOR_HOST"))
        return storage.Client(
            project=project or self.project_id(), credentials=self.credentials(emulated=emulated)
        )

    def get_run_clients(self) -> tuple[Any, Any]:
        """Cloud Run Admin API v2 (jobs, executions) over REST, as these credentials (the
        stack's fake Admin API takes none)."""
        from orchestrator.adapters import run_clients

        emulated = emulator("CLOUD_RUN_EMULATOR_HOST") is not None
        return run_clients(self.credentials(emulated=emulated))
