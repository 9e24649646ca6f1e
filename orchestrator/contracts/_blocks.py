"""Blocks: named, saved configuration (credentials, buckets), one document each."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, JsonValue, StringConstraints

from ._options import Frozen

# How a block travels in a DAG, a handle or another block: {"$block": "kind/name"}.
BLOCK_REF = "$block"
# Kinds and names end up in document ids and file names: a safe alphabet.
BlockName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")]


class StoredBlock(Frozen):
    kind: BlockName  # "gcp-credentials", "gcs-bucket"
    name: BlockName
    data: dict[str, JsonValue]  # the fields without their secrets
    # Secret field -> where its value is: "secretmanager:projects/P/secrets/S/versions/N" in
    # the cloud, or "inline:<json>" in a local store. Never shown, logged or put in a run.
    secrets: dict[str, str] = Field(default_factory=dict)
    saved_at: datetime
