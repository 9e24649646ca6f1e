"""GCS adapter for BlobStore: results written once with `if_generation_match=0`."""

from __future__ import annotations

import contextlib
import os

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[attr-defined]

from orchestrator.errors import ConflictError, NotFoundError, TransientError
from orchestrator.ports import check_range, split_uri

_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.TooManyRequests,
    gexc.GatewayTimeout,
    ConnectionError,
)


class GcsBlobStore:
    def __init__(self, client: storage.Client, *, create_buckets: bool = False) -> None:
        self._client = client
        # Local stacks make buckets on first use; in the cloud Terraform owns them.
        self._create_buckets = create_buckets
        self._known: set[str] = set()

    @classmethod
    def from_env(cls, project: str | None = None) -> GcsBlobStore:
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
            client = storage.Client(project=project or "kumoflow-local", credentials=anonymous)
            return cls(client, create_buckets=True)
        return cls(storage.Client(project=project))

    def _bucket(self, name: str) -> storage.Bucket:
        if self._create_buckets:
            self.ensure_bucket(name)
        return self._client.bucket(name)

    def ensure_bucket(self, name: str) -> None:
        if name not in self._known:
            with contextlib.suppress(gexc.Conflict):
                self._client.create_bucket(name)
            self._known.add(name)

    def put(self, uri: str, data: bytes, content_type: str, *, overwrite: bool = False) -> None:
        bucket_name, name = split_uri(uri)
        blob = self._bucket(bucket_name).blob(name)
        try:
            if overwrite:
                blob.upload_from_string(data, content_type=content_type)
            else:
                blob.upload_from_string(data, content_type=content_type, if_generation_match=0)
        except gexc.PreconditionFailed as e:
            if blob.download_as_bytes() != data:  # a retried write of the same bytes is fine
                raise ConflictError(f"{uri} already exists with different content") from e
        except gexc.NotFound as e:
            raise NotFoundError(f"bucket {bucket_name!r} does not exist; create it first") from e
        except _TRANSIENT as e:
            raise TransientError(f"writing {uri}: GCS unavailable ({e}); retry later") from e

    def get(self, uri: str) -> bytes:
        bucket_name, name = split_uri(uri)
        try:
            data: bytes = self._client.bucket(bucket_name).blob(name).download_as_bytes()
        except gexc.NotFound as e:
            raise NotFoundError(f"no object at {uri}") from e
        except _TRANSIENT as e:
            raise TransientError(f"reading {uri}: GCS unavailable ({e}); retry later") from e
        return data

    def list_uris(self, prefix: str) -> list[str]:
        bucket_name, name = split_uri(prefix)
        try:
            found = self._client.list_blobs(bucket_name, prefix=name or None)
            return sorted(f"gs://{bucket_name}/{blob.name}" for blob in found)
        except gexc.NotFound:
            return []  # no bucket: nothing in it
        except _TRANSIENT as e:
            raise TransientError(f"listing {prefix}: GCS unavailable ({e}); retry later") from e

    def delete(self, uri: str) -> None:
        bucket_name, name = split_uri(uri)
        try:
            self._client.bucket(bucket_name).blob(name).delete()
        except gexc.NotFound:
            pass  # deleted already (a repeated sweep), or never there
        except _TRANSIENT as e:
            raise TransientError(f"deleting {uri}: GCS unavailable ({e}); retry later") from e

    def get_range(self, uri: str, start: int, end: int) -> bytes:
        """One ranged GET (`Range: bytes=start-(end-1)`: the library's `end` is inclusive)."""
        check_range(start, end)
        bucket_name, name = split_uri(uri)
        blob = self._client.bucket(bucket_name).blob(name)
        try:
            data: bytes = blob.download_as_bytes(start=start, end=end - 1)
        except gexc.RequestRangeNotSatisfiable:
            return b""  # the object ends before `start`
        except gexc.NotFound as e:
            raise NotFoundError(f"no object at {uri}") from e
        except _TRANSIENT as e:
            raise TransientError(f"reading {uri}: GCS unavailable ({e}); retry later") from e
        if len(data) > end - start:  # a server that ignored the range sent the whole object
            return data[start:end]
        return data
