"""`kumoflow block`: the saved blocks (orchestrator.gcp): list, show with secrets masked, remove."""

from __future__ import annotations

from typing import Any

import click

from orchestrator.cli._output import echo, fail, guard
from orchestrator.cli._target import project_option


def _store(project: str | None) -> Any:
    from orchestrator.adapters import FirestoreBlockStore, block_store_from_env

    return FirestoreBlockStore.from_env(project) if project else block_store_from_env()


def _kind_name(ref: str) -> tuple[str, str]:
    kind, _, name = ref.partition("/")
    if not name:
        raise click.BadParameter(f"{ref!r}: give KIND/NAME, e.g. gcp-credentials/prod")
    return kind, name


@click.group()
def block() -> None:
    """Blocks: named configuration saved with Block.save(name) (credentials, buckets).

    Where: KUMOFLOW_BLOCKS_DIR, else the stack's Firestore when `kumoflow dev env` is applied,
    else ~/.kumoflow/blocks; --project P for a deployed project's."""


@block.command("ls")
@click.option("--kind", default=None, help="Only this kind (gcp-credentials, gcs-bucket).")
@project_option
@click.option("--json", "as_json", is_flag=True)
def block_ls(kind: str | None, project: str | None, as_json: bool) -> None:
    """List saved blocks."""
    with guard(as_json):
        found = [
            {"kind": b.kind, "name": b.name, "saved_at": b.saved_at.isoformat()}
            for b in _store(project).list_blocks(kind)
        ]
    human = "\n".join(f"{b['kind']}/{b['name']}  {b['saved_at']}" for b in found)
    echo(found, as_json, human or "no blocks")


@block.command("show")
@click.argument("ref")
@project_option
@click.option("--json", "as_json", is_flag=True)
def block_show(ref: str, project: str | None, as_json: bool) -> None:
    """Show one block (KIND/NAME); secrets are masked and never read."""
    from orchestrator.gcp import MASK

    kind, name = _kind_name(ref)
    with guard(as_json):
        found = _store(project).get_block(kind, name)
    if found is None:
        fail(f"no block {ref}; list them with `kumoflow block ls`", as_json)
        return
    fields = {**found.data, **dict.fromkeys(found.secrets, MASK)}
    shown = {"kind": kind, "name": name, "saved_at": found.saved_at.isoformat(), "fields": fields}
    human = "\n".join(
        [f"{kind}/{name}  saved {shown['saved_at']}"]
        + [f"  {k}: {v}" for k, v in sorted(fields.items())]
    )
    echo(shown, as_json, human)


@block.command("rm")
@click.argument("ref")
@project_option
@click.option("--json", "as_json", is_flag=True)
def block_rm(ref: str, project: str | None, as_json: bool) -> None:
    """Remove a block (KIND/NAME)."""
    kind, name = _kind_name(ref)
    with guard(as_json):
        removed = _store(project).delete_block(kind, name)
    if not removed:
        fail(f"no block {ref}; list them with `kumoflow block ls`", as_json)
    echo({"removed": ref}, as_json, f"removed {ref}")
