"""The files `kumoflow init` writes: a project its user owns, with one triggered flow, its tests,
a pyproject depending on kumoflow and a README with the three commands.

Templates are plain strings with `{slug}`, `{requirement}` and `{install}` fields (and doubled
braces where the file itself needs one), so the scaffold needs no template engine and no
package data.

The project depends on the kumoflow that made it, by a PEP 508 direct reference to its source
(`kumoflow @ file:///path/to/checkout`, or the wheel it was installed from): kumoflow is on no
package index yet, and `kumoflow>=0.1.0` could not install anywhere.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

FLOWS = '''"""{slug}'s flows: a text file uploaded to the inbox bucket is counted, word by word.

README.md has the three commands: run in-process, run on the local stack, deploy.
"""

from __future__ import annotations

from collections import Counter

from orchestrator import GcsObject, flow, on_gcs_finalize, task
from orchestrator.io import read_blob

# Bucket names are global on Google Cloud: pick one you own before deploying.
INBOX = "{slug}-inbox"


@task(name="read-text", retries=3, retry_delay_seconds=5)
def read_text(obj: GcsObject | None, text: str) -> str:
    """The uploaded object's text, or `text` when the run was started by hand."""
    return read_blob(obj.uri).decode() if obj is not None else text


@task(name="count-words")
def count_words(text: str) -> dict[str, int]:
    """The ten most frequent words, most frequent first."""
    return dict(Counter(text.lower().split()).most_common(10))


@flow(name="{slug}-word-count", triggers=[on_gcs_finalize(bucket=INBOX, suffix=".txt")])
def word_count(obj: GcsObject | None = None, text: str = "") -> dict[str, int]:
    return count_words(read_text(obj, text))
'''

TESTS = '''"""`pytest` runs these in memory and, where Java and Google's emulators are
installed, on the local stack too (`--backend memory|emulator|all`; the `backend` fixture
comes from kumoflow's pytest plugin, enabled in pyproject.toml)."""

from __future__ import annotations

from flows import INBOX, count_words, word_count
from orchestrator.testing import Backend


def test_a_task_outside_a_flow_is_its_function() -> None:
    assert count_words("b a b") == {{"b": 2, "a": 1}}


def test_word_count_runs_on_every_backend(backend: Backend) -> None:
    outcome = backend.run(word_count, {{"text": "to be or not to be"}})
    assert outcome.status == "SUCCEEDED"
    assert outcome.value == {{"to": 2, "be": 2, "or": 1, "not": 1}}


def test_word_count_starts_on_txt_uploads_to_the_inbox() -> None:
    (trigger,) = word_count.spec.triggers
    assert (trigger.kind, trigger.bucket, trigger.suffix) == ("gcs", INBOX, ".txt")
'''

PYPROJECT = """[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{slug}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = [{requirement}]

[project.optional-dependencies]
dev = ["pytest>=8"]

[tool.setuptools]
py-modules = ["flows"]

[tool.pytest.ini_options]
pythonpath = ["."]
addopts = "-p orchestrator.testing.plugin"
"""

README = """# {slug}

A kumoflow project: `flows.py` counts the words of every `.txt` file uploaded to the
`{slug}-inbox` bucket.

```
python -m venv .venv && . .venv/bin/activate    # Python 3.11+
pip install -e '.[dev]'     # kumoflow and pytest
pytest                      # the flow's tests, in memory and on the local stack
```

{install}

Run it in-process (no server, no cloud):

```
kumoflow run flows.py:word_count --param text='to be or not to be'
```

Run it on the local stack (Google's Pub/Sub and Firestore emulators, fake-gcs-server, the
functions), started by an upload as in the cloud:

```
kumoflow dev up
kumoflow deploy flows.py
kumoflow trigger upload notes.txt gs://{slug}-inbox/notes.txt
kumoflow runs list --flow {slug}-word-count
```

Deploy it to Google Cloud (Terraform; Application Default Credentials):

```
kumoflow deploy flows.py --target gcp --project YOUR_PROJECT --region us-central1 --apply
```
"""

GITIGNORE = """__pycache__/
.venv/
.pytest_cache/
.kumoflow/
*.egg-info/
"""

FILES = {
    "flows.py": FLOWS,
    "tests/test_flows.py": TESTS,
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    ".gitignore": GITIGNORE,
}


def slug_of(name: str) -> str:
    """A name usable as a flow name, a distribution name and a bucket prefix."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"kf-{slug}".rstrip("-")
    return slug[:40]  # room for "-inbox" inside GCS's 63 characters


@dataclass(frozen=True)
class Pin:
    """How the project depends on kumoflow: `requirement` (PEP 508), and what it points at:
    "checkout" (a source folder), "wheel" (a wheel or sdist file), "index", or "given" (by
    `kumoflow init --kumoflow`)."""

    requirement: str
    kind: str
    version: str


def pin() -> Pin:
    """The kumoflow running this command, as a requirement another venv can install from: the
    source folder it runs from (an editable install, or a checkout on the path), else the local
    file or folder pip installed it from (PEP 610's direct_url.json), else its version from an
    index (installed from one, so one serves it)."""
    version = _version()
    running = Path(__file__).resolve().parents[1]  # the orchestrator package running this
    checkout = running.parent
    if _is_kumoflow_source(checkout):
        return Pin(f"kumoflow @ {checkout.as_uri()}", "checkout", version)
    try:
        dist = metadata.distribution("kumoflow")
        raw = dist.read_text("direct_url.json")
        installed = Path(str(dist.locate_file("orchestrator"))).resolve()
    except metadata.PackageNotFoundError:
        raw, installed = None, None
    origin = json.loads(raw) if raw else {}
    url = origin.get("url", "")
    if installed == running and url.startswith("file://"):
        path = Path(unquote(urlparse(url).path))
        if path.is_file():
            return Pin(f"kumoflow @ {path.as_uri()}", "wheel", version)
        if _is_kumoflow_source(path):
            return Pin(f"kumoflow @ {path.as_uri()}", "checkout", version)
    return Pin(f"kumoflow=={version}", "index", version)


def _version() -> str:
    try:
        return metadata.version("kumoflow")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def _is_kumoflow_source(folder: Path) -> bool:
    try:
        project = tomllib.loads((folder / "pyproject.toml").read_text()).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return bool(project.get("name") == "kumoflow")


def install_note(p: Pin) -> str:
    """The README's word on where kumoflow comes from, and how to change it."""
    later = (
        f'Once kumoflow is on a package index you use, write `"kumoflow>={p.version}"` there '
        "instead and install again."
    )
    moved = (
        "If it moves, point the line at its new place: `kumoflow @ file:///path/to/kumoflow` "
        f"(a checkout) or `kumoflow @ file:///path/to/kumoflow-{p.version}-py3-none-any.whl` "
        "(a wheel)."
    )
    if p.kind == "given":
        return f"`pyproject.toml` depends on kumoflow as `{p.requirement}`. {later}"
    if p.kind == "index":
        return (
            f"`pyproject.toml` depends on `{p.requirement}` from a package index. To install "
            "kumoflow from a checkout or a wheel instead, write `kumoflow @ "
            "file:///path/to/kumoflow` (or the wheel's path) in its place."
        )
    what = "the kumoflow checkout" if p.kind == "checkout" else "the kumoflow wheel"
    return (
        f"`pyproject.toml` depends on {what} `kumoflow init` ran from, by a direct reference "
        f"(`{p.requirement}`), so it installs with no package index serving kumoflow. "
        f"{moved} {later}"
    )


def render(slug: str, requirement: str | None = None) -> dict[str, str]:
    """Each file of the scaffold, path -> text; `requirement`: how it depends on kumoflow
    (default: `pin()`, the kumoflow running this)."""
    p = pin()
    if requirement is not None and requirement != p.requirement:  # `kumoflow init --kumoflow`
        p = Pin(requirement, "given", p.version)
    install = install_note(p)
    fields = {"slug": slug, "requirement": json.dumps(p.requirement), "install": _wrap(install)}
    return {path: text.format(**fields) for path, text in FILES.items()}


def _wrap(text: str, width: int = 96) -> str:
    """`text` as Markdown lines of at most `width` characters (code spans kept whole)."""
    lines: list[str] = []
    line = ""
    for word in re.findall(r"`[^`]*`\S*|\S+", text):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line] if line else lines)
