"""GcsBucket: a bucket and a folder in it, for task code and as a flow's result storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from orchestrator.gcp._blocks import Block, GcpCredentials
from orchestrator.io import read_blob, running_blobs, write_blob


class GcsBucket(Block):
    """Paths are relative to `bucket_folder` (joined once: `folder/path`, never doubled).

    Inside a run, without credentials of its own, it goes through the run's blob store (GCS on
    the stack and in the cloud as the function's service account; memory in-process). With
    `gcp_credentials`, or outside any run, it uses a storage client made from them."""

    kind: ClassVar[str] = "gcs-bucket"

    bucket: str
    project: str | None = None
    bucket_folder: str = ""
    gcp_credentials: GcpCredentials | None = None

    def object_name(self, path: str = "") -> str:
        folder = self.bucket_folder.strip("/")
        path = path.lstrip("/")
        if folder and (path == folder or path.startswith(folder + "/")):
            return path  # already under the folder: a name this bucket handed out
        return f"{folder}/{path}" if folder and path else folder or path

    def uri(self, path: str = "") -> str:
        name = self.object_name(path)
        return f"gs://{self.bucket}/{name}" if name else f"gs://{self.bucket}"

    def __kumoflow_storage__(self) -> str:
        """`result_storage=GcsBucket.load(name)`: results go under its bucket and folder."""
        return self.uri()

    def _client_bucket(self) -> Any:
        credentials = self.gcp_credentials or GcpCredentials(project=self.project)
        return credentials.get_cloud_storage_client().bucket(self.bucket)

    def _through_run(self) -> bool:
        return self.gcp_credentials is None and running_blobs()

    def write_path(self, path: str, content: bytes) -> str:
        """Write `content` to `path`; returns the object's name (relative to the bucket)."""
        name = self.object_name(path)
        if self._through_run():
            write_blob(self.uri(path), content)
        else:
            self._client_bucket().blob(name).upload_from_string(content)
        return name

    def read_path(self, path: str) -> bytes:
        if self._through_run():
            return read_blob(self.uri(path))
        data: bytes = self._client_bucket().blob(self.object_name(path)).download_as_bytes()
        return data

    def upload_from_path(self, from_path: str | Path, to_path: str | None = None) -> str:
        source = Path(from_path)
        return self.write_path(to_path or source.name, source.read_bytes())

    def download_object_to_path(self, from_path: str, to_path: str | Path | None = None) -> Path:
        target = Path(to_path) if to_path is not None else Path(Path(from_path).name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.read_path(from_path))
        return target
