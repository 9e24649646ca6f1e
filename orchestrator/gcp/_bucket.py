"""GcsBucket: a bucket and a folder in it, for task code and as a flow's result storage, with
prefect_gcp's methods (names, parameters and return values)."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, ClassVar, TypeVar, cast

from orchestrator.errors import FlowDefinitionError
from orchestrator.gcp._blocks import Block, GcpCredentials
from orchestrator.io import list_blobs, local_blobs, read_blob, running_blobs, write_blob
from orchestrator.runtime import in_flow_body

F = TypeVar("F", bound=Callable[..., Any])


def _in_tasks(method: F) -> F:
    """A bucket method reads or writes now, so it belongs in a task, never in a flow body."""

    @functools.wraps(method)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if in_flow_body():
            raise FlowDefinitionError(
                f"GcsBucket.{method.__name__}(...) in a flow body: the body only wires tasks "
                "together when the flow is defined; call it inside a @task (pass the bucket "
                "to the task)"
            )
        return method(*args, **kwargs)

    return cast(F, checked)


@dataclass(frozen=True, slots=True)
class GcsObject:
    """An object `list_blobs` found: its full name in the bucket (as google's `Blob.name`)."""

    bucket: str
    name: str


class DataFrameSerializationFormat(Enum):
    """How `upload_from_dataframe` writes a DataFrame (prefect_gcp's members and values):
    (format, compression, content type, suffix)."""

    CSV = ("csv", None, "text/csv", ".csv")
    CSV_GZIP = ("csv", "gzip", "application/x-gzip", ".csv.gz")
    PARQUET = ("parquet", None, "application/octet-stream", ".parquet")
    PARQUET_SNAPPY = ("parquet", "snappy", "application/octet-stream", ".snappy.parquet")
    PARQUET_GZIP = ("parquet", "gzip", "application/octet-stream", ".gz.parquet")

    @property
    def format(self) -> str:
        return str(self.value[0])

    @property
    def compression(self) -> str | None:
        return self.value[1]  # type: ignore[no-any-return]

    @property
    def content_type(self) -> str:
        return str(self.value[2])

    @property
    def suffix(self) -> str:
        return str(self.value[3])

    def fix_extension_with(self, gcs_blob_path: str) -> str:
        path = PurePosixPath(gcs_blob_path)
        return str(path.parent / PurePosixPath(path.stem).with_suffix(self.suffix))


class GcsBucket(Block):
    """Paths are relative to `bucket_folder` (joined once: `folder/path`, never doubled).

    Inside a run it goes through the run's blob store: GCS on the stack and in the cloud (as the
    function's service account), memory or the local folder in-process, so a flow that uses it
    runs in a test without Google. With `gcp_credentials` of its own on GCS, or outside any run,
    it uses a storage client made from its credentials. Methods run in tasks: a flow body only
    wires tasks, so calling one there raises FlowDefinitionError."""

    kind: ClassVar[str] = "gcs-bucket"

    bucket: str
    project: str | None = None
    bucket_folder: str = ""
    gcp_credentials: GcpCredentials | None = None

    def object_name(self, path: str = "") -> str:
        folder = self.bucket_folder.strip("/")
        path = str(path).lstrip("/")
        if folder and (path == folder or path.startswith(folder + "/")):
            return path  # already under the folder: a name this bucket handed out
        return f"{folder}/{path}" if folder and path else folder or path

    def uri(self, path: str = "") -> str:
        name = self.object_name(path)
        return f"gs://{self.bucket}/{name}" if name else f"gs://{self.bucket}"

    def __kumoflow_storage__(self) -> str:
        """`result_storage=GcsBucket.load(name)`: results go under its bucket and folder."""
        return self.uri()

    # the three operations every method is made of -------------------------------------------

    def _through_run(self) -> bool:
        return running_blobs() and (self.gcp_credentials is None or local_blobs())

    def _client_bucket(self) -> Any:
        credentials = self.gcp_credentials or GcpCredentials(project=self.project)
        return credentials.get_cloud_storage_client().bucket(self.bucket)

    def _put(self, name: str, data: bytes, options: dict[str, Any]) -> None:
        content_type = options.pop("content_type", None)
        if self._through_run():
            _no_client_options(options)
            write_blob(f"gs://{self.bucket}/{name}", data, content_type or _OCTETS)
        else:
            blob = self._client_bucket().blob(name)
            blob.upload_from_string(data, content_type=content_type or _OCTETS, **options)

    def _get(self, name: str, options: dict[str, Any]) -> bytes:
        if self._through_run():
            _no_client_options(options)
            return read_blob(f"gs://{self.bucket}/{name}")
        data: bytes = self._client_bucket().blob(name).download_as_bytes(**options)
        return data

    def _names(self, prefix: str) -> list[str]:
        """Names of the objects under `prefix` (plain prefix, as GCS lists), in name order."""
        if self._through_run():
            start = len(f"gs://{self.bucket}/")
            return [u[start:] for u in list_blobs(f"gs://{self.bucket}/{prefix}")]
        found = self._client_bucket().list_blobs(prefix=prefix or None)
        return sorted(b.name for b in found)

    # prefect_gcp's methods ------------------------------------------------------------------

    @_in_tasks
    def write_path(self, path: str, content: bytes) -> str:
        """Write `content` to `path`; returns the object's name (relative to the bucket)."""
        name = self.object_name(path)
        self._put(name, content, {})
        return name

    @_in_tasks
    def read_path(self, path: str) -> bytes:
        return self._get(self.object_name(path), {})

    @_in_tasks
    def upload_from_path(
        self, from_path: str | Path, to_path: str | None = None, **upload_kwargs: Any
    ) -> str:
        """Upload a local file (to `to_path`, default its file name); returns the object's name."""
        source = Path(from_path)
        name = self.object_name(to_path or source.name)
        self._put(name, source.read_bytes(), dict(upload_kwargs))
        return name

    @_in_tasks
    def download_object_to_path(
        self, from_path: str, to_path: str | Path | None = None, **download_kwargs: Any
    ) -> Path:
        """Download to `to_path` (default: the object's file name here); returns its absolute
        path."""
        target = Path(to_path if to_path is not None else Path(from_path).name).absolute()
        data = self._get(self.object_name(from_path), dict(download_kwargs))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target

    @_in_tasks
    def upload_from_file_object(
        self, from_file_object: BinaryIO, to_path: str, **upload_kwargs: Any
    ) -> str:
        """Upload what is left to read of a binary file object; returns the object's name."""
        name = self.object_name(to_path)
        data = from_file_object.read()
        self._put(name, _bytes(data), dict(upload_kwargs))
        return name

    @_in_tasks
    def download_object_to_file_object(
        self, from_path: str, to_file_object: BinaryIO, **download_kwargs: Any
    ) -> BinaryIO:
        """Write the object into a binary file object; returns that file object."""
        name = self.object_name(from_path)
        to_file_object.write(self._get(name, dict(download_kwargs)))
        return to_file_object

    @_in_tasks
    def upload_from_folder(
        self, from_folder: str | Path, to_folder: str | None = None, **upload_kwargs: Any
    ) -> str:
        """Upload the files within a local folder (not the folder itself) under `to_folder`
        (default: the bucket's folder); returns that folder's name in the bucket."""
        source = Path(from_folder)
        folder = self.object_name(to_folder or "")
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            relative = path.relative_to(source).as_posix()
            name = f"{folder}/{relative}" if folder else relative
            self._put(name, path.read_bytes(), dict(upload_kwargs))
        return folder

    @_in_tasks
    def download_folder_to_path(
        self, from_folder: str, to_folder: str | Path | None = None, **download_kwargs: Any
    ) -> Path:
        """Download the objects within a folder of the bucket (not the folder itself) into
        `to_folder` (default: here); returns its absolute path."""
        target = Path(to_folder if to_folder is not None else "").absolute()
        folder = self.object_name(from_folder)
        prefix = f"{folder}/" if folder else ""
        for name in self._names(prefix):
            if name.endswith("/"):
                continue  # a "folder" placeholder object, as the console makes
            path = target / name[len(prefix) :]
            data = self._get(name, dict(download_kwargs))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return target

    @_in_tasks
    def list_blobs(self, folder: str = "") -> list[GcsObject]:
        """The objects whose names start with the folder's name (folders themselves left out)."""
        names = self._names(self.object_name(folder))
        return [GcsObject(self.bucket, n) for n in names if not n.endswith("/")]

    @_in_tasks
    def list_folders(self, folder: str = "") -> list[str]:
        """The folders (full names) of the objects `list_blobs(folder)` finds."""
        parents = {str(PurePosixPath(b.name).parent) for b in self.list_blobs(folder)}
        return sorted(parents - {"."})

    @_in_tasks
    def upload_from_dataframe(
        self,
        df: Any,
        to_path: str,
        serialization_format: str | DataFrameSerializationFormat = (
            DataFrameSerializationFormat.CSV_GZIP
        ),
        **upload_kwargs: Any,
    ) -> str:
        """Write a pandas DataFrame as CSV or Parquet (the path's extension set to the
        format's); returns the object's name."""
        if isinstance(serialization_format, str):
            serialization_format = DataFrameSerializationFormat[serialization_format.upper()]
        fmt = serialization_format
        writer = getattr(df, f"to_{fmt.format}", None)
        if not callable(writer):
            raise TypeError(
                f"upload_from_dataframe takes a pandas DataFrame, got {type(df).__name__}"
            )
        buffer = io.BytesIO()
        if fmt.format == "parquet":
            writer(path=buffer, compression=fmt.compression, index=False)
        else:
            writer(path_or_buf=buffer, compression=fmt.compression, index=False)
        buffer.seek(0)
        return self.upload_from_file_object(
            buffer,
            fmt.fix_extension_with(to_path),
            **{"content_type": fmt.content_type, **upload_kwargs},
        )


_OCTETS = "application/octet-stream"


def _bytes(data: object) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(
            f"expected a binary file object (open(path, 'rb'), io.BytesIO), read a "
            f"{type(data).__name__}"
        )
    return bytes(data)


def _no_client_options(options: dict[str, Any]) -> None:
    """Inside a run the bucket writes through the run's blob store, not google's client."""
    if options:
        names = ", ".join(sorted(options))
        raise TypeError(
            f"GcsBucket: {names}: inside a run the bucket reads and writes "
            "through the run's blob store, which takes no client options; drop them (only "
            "content_type is kept)"
        )
