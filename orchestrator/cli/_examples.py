"""An example (or two) per command, shown at the end of its `--help`.

Kept in one table rather than in each command's module so that every command gets one (a test
fails on a command without) and the examples read as a set."""

from __future__ import annotations

import click

EXAMPLES: dict[str, list[str]] = {
    "init": ["kumoflow init my-project && cd my-project && pytest"],
    "check": ["kumoflow check prefect_flows.py", "kumoflow check prefect_flows.py --strict --json"],
    "run": [
        "kumoflow run flows.py:word_count --param text='to be or not to be'",
        "kumoflow run examples/map_reduce.py:map_reduce -p items='[1,2,3]' --backend emulator",
        "kumoflow run flows.py:word_count -p text='a b a' --ui   # then the dashboard over it",
        "kumoflow run ingest --project my-project -p mode=manual --wait   # a deployed flow",
    ],
    "schedules": ["kumoflow schedules ls --project my-project"],
    "schedules ls": ["kumoflow schedules ls --project my-project --region asia-northeast1 --json"],
    "schedules pause": [
        "kumoflow schedules pause nightly --project my-project   # every job of flow nightly",
        "kumoflow schedules pause --all --project my-project",
    ],
    "schedules resume": ["kumoflow schedules resume kumoflow-nightly-0 --project my-project"],
    "schema": ["kumoflow schema --out schemas/"],
    "deploy": [
        "kumoflow deploy flows.py                      # the local stack",
        "kumoflow deploy flows.py --target gcp --project my-project --region us-central1",
        "kumoflow deploy flows.py --target gcp --project my-project "
        "--dashboard-image IMAGE --dashboard-operator me@example.com "
        "--dashboard-viewer group:team@example.com",
    ],
    "dev": ['kumoflow dev up && eval "$(kumoflow dev env)"'],
    "dev up": [
        "kumoflow dev up --json",
        "kumoflow dev up --with bigquery,cloudrun",
        "kumoflow dev up --port-base 9680          # a second stack beside the first",
    ],
    "dev status": ["kumoflow dev status", "kumoflow dev status --port-base 9680 --json"],
    "dev down": ["kumoflow dev down", "kumoflow dev down --port-base 9680"],
    "dev env": [
        'eval "$(kumoflow dev env)"     # point Google\'s client libraries at the stack',
        'eval "$(kumoflow dev env --port-base 9680)"',
    ],
    "runs": ["kumoflow runs list --flow word-count"],
    "runs list": [
        "kumoflow runs list --flow word-count --limit 10 --json",
        "kumoflow runs list --status failed,cancelled",
        "kumoflow runs list --in-process",
    ],
    "runs show": ["kumoflow runs show RUN_ID", "kumoflow runs show RUN_ID --project my-project"],
    "runs cancel": ["kumoflow runs cancel RUN_ID --reason 'wrong input'"],
    "runs retry": ["kumoflow runs retry RUN_ID --wait"],
    "events": ["kumoflow events send invoice-paid --data '{\"invoice\": 42}'"],
    "events send": [
        "kumoflow events send invoice-paid --data '{\"invoice\": 42}' --id inv-42",
        "kumoflow events send nightly-ready --project my-project --json",
    ],
    "runs resume": [
        """kumoflow runs resume RUN_ID --input '{"approved": true, "approver": "ana"}'""",
        "kumoflow runs resume RUN_ID --key pause-2 --input '{\"n\": 3}' --json",
    ],
    "runs prune": ["kumoflow runs prune --days 7", "kumoflow runs prune --days 0 --json"],
    "logs": ["kumoflow logs RUN_ID", "kumoflow logs RUN_ID --task count-words --follow"],
    "block": ["kumoflow block ls"],
    "block ls": ["kumoflow block ls --kind gcp-credentials --json"],
    "block show": ["kumoflow block show gcp-credentials/prod"],
    "block rm": ["kumoflow block rm gcs-bucket/old-results"],
    "limits": ["kumoflow limits set bigquery 20 && kumoflow limits ls"],
    "limits set": [
        "kumoflow limits set bigquery 20",
        "kumoflow limits set openai 4 --project my-project",
    ],
    "limits rm": ["kumoflow limits rm bigquery"],
    "limits ls": ["kumoflow limits ls --json"],
    "dlq": ["kumoflow dlq list"],
    "dlq list": ["kumoflow dlq list --limit 20 --json"],
    "dlq redrive": ["kumoflow dlq redrive LETTER_ID"],
    "trigger": ['kumoflow trigger publish ingest-requests --data \'{"mode": "manual"}\''],
    "trigger publish": [
        'kumoflow trigger publish ingest-requests --data \'{"mode": "manual"}\'',
        "kumoflow trigger publish ingest-requests --attr mode=manual --project my-project",
    ],
    "trigger upload": ["kumoflow trigger upload notes.txt gs://my-inbox/notes.txt"],
    "ui": ["kumoflow ui --port 8080"],
}
COMPLETION = """\b
Shell completion (add the line to your shell's startup file):
  bash: eval "$(_KUMOFLOW_COMPLETE=bash_source kumoflow)"
  zsh:  eval "$(_KUMOFLOW_COMPLETE=zsh_source kumoflow)"
  fish: _KUMOFLOW_COMPLETE=fish_source kumoflow | source"""


def commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    """Every command under `group` by its path without the program name (`runs list`)."""
    found: dict[str, click.Command] = {}
    for name, cmd in group.commands.items():
        path = f"{prefix}{name}"
        found[path] = cmd
        if isinstance(cmd, click.Group):
            found.update(commands(cmd, f"{path} "))
    return found


def add_examples(main: click.Group) -> None:
    """Append each command's examples to its help (`\\b` keeps click from rewrapping them)."""
    main.epilog = COMPLETION
    for path, cmd in commands(main).items():
        lines = EXAMPLES.get(path)
        if lines:
            examples = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
            # After what the command says of itself (`kumoflow dev`'s settings).
            cmd.epilog = f"{cmd.epilog}\n\n{examples}" if cmd.epilog else examples
