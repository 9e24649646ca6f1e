"""A BlobStore over a local folder: results and logs of in-process runs that outlive the process.

`gs://BUCKET/OBJECT` lives at `ROOT/BUCKET/OBJECT`, each `/`-separated part of the name one
path segment (what a file name cannot be is escaped: `%` as `%25`, an empty part as `%`, `.` and
`..` as `%2E` and `%2E%2E`, a part too long for a file name as its hash), so the folder reads as
the bucket would. Writes go to a temporary file in the target's folder first, then:
write-once puts link it into place (`link` fails when the name exists, atomically, in any
process: the first writer wins, as GCS's `if_generation_match=0`), overwrites rename it over
the old file. A reader sees a whole object or none.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from pathlib import Path

from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.ports import check_range, split_uri

BLOBS_DIR = "blobs"
_MAX_SEGMENT = 200  # bytes; file systems allow 255
_NAME = "%name"  # beside a hashed part: the part itself (a user's `%` is always `%25`)
_TMP = re.compile(r"\.[0-9a-f]{32}\.tmp")


def _segment(part: str) -> str:
    part = part.replace("%", "%25").replace("\0", "%00")
    if part in ("", ".", ".."):
        return part.replace(".", "%2E") or "%"
    if len(part.encode()) > _MAX_SEGMENT:
        return "%h-" + hashlib.sha256(part.encode()).hexdigest()
    return part


def _unsegment(segment: str, folder: Path) -> str:
    if segment.startswith("%h-"):
        return (folder / (segment + _NAME)).read_text()
    if segment in ("%", "%2E", "%2E%2E"):
        return segment.replace("%2E", ".").replace("%", "")
    return segment.replace("%00", "\0").replace("%25", "%")


class FileBlobStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, uri: str) -> Path:
        """Where the object at `uri` (gs://BUCKET/OBJECT) is kept."""
        bucket, name = split_uri(uri)
        return self.root.joinpath(_segment(bucket), *(_segment(p) for p in name.split("/")))

    def put(self, uri: str, data: bytes, content_type: str, *, overwrite: bool = False) -> None:
        target = self.path(uri)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as e:
            raise ConflictError(f"{uri}: an object's name is a prefix of this one's ({e})") from e
        self._keep_long_names(uri, target)
        tmp = target.parent / f".{uuid.uuid4().hex}.tmp"
        tmp.write_bytes(data)
        try:
            if overwrite:
                tmp.replace(target)
                return
            try:
                os.link(tmp, target)  # create-only, atomically
            except FileExistsError:
                if self._data(uri, target) != data:  # the same bytes again: a retried write
                    raise ConflictError(f"{uri} already exists with different content") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def get(self, uri: str) -> bytes:
        return self._data(uri, self.path(uri))

    def get_range(self, uri: str, start: int, end: int) -> bytes:
        check_range(start, end)
        try:
            with self.path(uri).open("rb") as f:
                f.seek(start)
                return f.read(end - start)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
            raise NotFoundError(f"no object at {uri}") from e

    def delete(self, uri: str) -> None:
        """Remove the object's file (its folders and kept long names stay: a later object
        may be written there)."""
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            self.path(uri).unlink()

    def _keep_long_names(self, uri: str, target: Path) -> None:
        """A hashed part's name, beside it, for `list_uris` (written once: it never changes)."""
        parts = split_uri(uri)[1].split("/")
        folder = target
        for part in reversed(parts):
            folder = folder.parent
            segment = _segment(part)
            if segment.startswith("%h-") and not (kept := folder / (segment + _NAME)).exists():
                kept.write_text(part)

    def list_uris(self, prefix: str) -> list[str]:
        bucket, name = split_uri(prefix)
        # Walk from the deepest folder the prefix names whole, not the whole bucket.
        *whole, _ = name.split("/")
        start = self.root.joinpath(_segment(bucket), *(_segment(p) for p in whole))
        found = []
        for folder, _dirs, files in os.walk(start):
            here, parts = start, []
            for segment in Path(folder).relative_to(start).parts:
                parts.append(_unsegment(segment, here))
                here = here / segment
            for file in files:
                if file.endswith(_NAME) or _TMP.fullmatch(file):
                    continue
                object_name = "/".join([*whole, *parts, _unsegment(file, here)])
                if object_name.startswith(name):
                    found.append(f"gs://{bucket}/{object_name}")
        return sorted(found)

    @staticmethod
    def _data(uri: str, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
            raise NotFoundError(f"no object at {uri}") from e
