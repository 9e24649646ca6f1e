"""Where one kumoflow installation's cloud resources are: its name prefix (infra's
var.name_prefix: topics, secrets, buckets) and its Firestore database (var.firestore_database),
so two installations can share a project and kumoflow's state sits beside an app's `(default)`
database. Terraform sets both variables on every function and the dashboard."""

from __future__ import annotations

import os

NAME_PREFIX_ENV = "KUMOFLOW_NAME_PREFIX"
NAME_PREFIX = "kumoflow"  # infra's default; every name in wiring.json starts with it
DATABASE_ENV = "KUMOFLOW_FIRESTORE_DATABASE"
CLOUD_DATABASE = "kumoflow"  # infra's default var.firestore_database
EMULATOR_DATABASE = "(default)"  # the local stack's (its clear-data endpoint names it)


def name_prefix() -> str:
    return os.environ.get(NAME_PREFIX_ENV) or NAME_PREFIX


def firestore_database() -> str:
    """The database id kumoflow's state lives in: the environment's, else the local stack's
    `(default)` under the emulator, else the cloud's default (never an app's `(default)`)."""
    given = os.environ.get(DATABASE_ENV)
    if given:
        return given
    return EMULATOR_DATABASE if os.environ.get("FIRESTORE_EMULATOR_HOST") else CLOUD_DATABASE


def block_secret(kind: str, name: str, field: str) -> str:
    """A block field's Secret Manager secret id without the installation's prefix (Terraform
    declares `<name_prefix>-<this>` for the blocks a deploy knows of)."""
    return f"block-{kind}-{name}-{field}".replace(".", "-")


def block_secret_id(kind: str, name: str, field: str) -> str:
    return f"{name_prefix()}-{block_secret(kind, name, field)}"
