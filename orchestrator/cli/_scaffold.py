"""The files `kumoflow init` writes: a project its user owns, with one triggered flow, its tests,
a pyproject depending on kumoflow and a README with the three commands.

Templates are plain strings with `{slug}` and `{version}` fields (and doubled braces where the
file itself needs one), so the scaffold needs no template engine and no package data.
"""

from __future__ import annotations

import re
from importlib import metadata

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
dependencies = ["kumoflow>={version}"]

[project.optional-dependencies]
dev = ["pytest>=8"]

[tool.setuptools]
py-modules = ["flows"]

[tool.pytest.ini_options]
pythonpath = ["."]
addopts = "-p orchestrator.testing.plugin"
"""

README = """# {slug}

A [kumoflow](https://pypi.org/project/kumoflow/) project: `flows.py` counts the words of every
`.txt` file uploaded to the `{slug}-inbox` bucket.

```
pip install -e '.[dev]'     # kumoflow and pytest
pytest                      # the flow's tests, in memory and on the local stack
```

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


def render(slug: str) -> dict[str, str]:
    """Each file of the scaffold, path -> text."""
    version = metadata.version("kumoflow")
    return {path: text.format(slug=slug, version=version) for path, text in FILES.items()}
