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
import uuid
from pathlib import Path

from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.ports import check_range

BLOBS_DIR = "blobs"
_MAX_SEGMENT = 200  # bytes; file systems allow 255


def _segment(part: str) -> str:
    part = part.replace("%", "%25").replace("\0", "%00")
    if part in ("", ".", ".."):
        return part.replace(".", "%2E") or "%"
    if len(part.encode()) > _MAX_SEGMENT:
        return "%h-" + hashlib.sha256(part.encode()).hexdigest()
    return part


class FileBlobStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, uri: str) -> Path:
        """Where the object at `uri` (gs://BUCKET/OBJECT) is kept."""
        if not uri.startswith("gs://") or "/" not in uri[5:]:
            raise ValueError(f"expected gs://BUCKET/OBJECT, got {uri!r}")
        bucket, _, name = uri[5:].partition("/")
        return self.root.joinpath(_segment(bucket), *(_segment(p) for p in name.split("/")))

    def put(self, uri: str, data: bytes, content_type: str, *, overwrite: bool = False) -> None:
        target = self.path(uri)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as e:
            raise ConflictError(f"{uri}: an object's name is a prefix of this one's ({e})") from e
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

    @staticmethod
    def _data(uri: str, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
            raise NotFoundError(f"no object at {uri}") from e
