"""Port contract tests: BlobStore and FlowStore, run against every adapter of each port."""

from __future__ import annotations

import pytest

from orchestrator.contracts import flow_version
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.ports import BlobStore
from tests.adapters import port_fixtures
from tests.adapters.port_fixtures import BUCKET, Stores, _uid, spec_named

# The adapters under test, from port_fixtures (pytest finds fixtures by module attribute).
blobs = port_fixtures.blobs
store = port_fixtures.store


# --------------------------------------------------------------------------------------------
# BlobStore
# --------------------------------------------------------------------------------------------

BINARY = bytes(range(256)) + b"\xff\xfe\x00\x80 not utf-8 \xc3\x28"


def _blob_uri(name: str = "result.bin") -> str:
    return f"gs://{BUCKET}/runs/{_uid('run')}/{name}"


@pytest.mark.parametrize(
    "data",
    [BINARY, b"", '{"ü": "✓"}'.encode()],
    ids=["non-utf8", "empty", "utf8"],
)
def test_blob_round_trips_bytes_exactly(blobs: BlobStore, data: bytes) -> None:
    uri = _blob_uri()
    blobs.put(uri, data, "application/octet-stream")
    got = blobs.get(uri)
    assert type(got) is bytes
    assert got == data


@pytest.mark.parametrize("name", ["scale[3].pickle", "a b/ü ñ.json", "group/scale[12]/x.json"])
def test_blob_object_names_with_brackets_spaces_and_unicode(blobs: BlobStore, name: str) -> None:
    uri = _blob_uri(name)
    blobs.put(uri, BINARY, "application/octet-stream")
    assert blobs.get(uri) == BINARY


def test_blob_put_same_bytes_again_is_a_noop(blobs: BlobStore) -> None:
    uri = _blob_uri()
    blobs.put(uri, BINARY, "application/octet-stream")
    blobs.put(uri, BINARY, "application/octet-stream")
    assert blobs.get(uri) == BINARY


def test_blob_put_different_bytes_conflicts_and_keeps_the_first(blobs: BlobStore) -> None:
    uri = _blob_uri()
    blobs.put(uri, b"first", "text/plain")
    with pytest.raises(ConflictError):
        blobs.put(uri, b"second", "text/plain")
    assert blobs.get(uri) == b"first"


def test_blob_overwrite_replaces(blobs: BlobStore) -> None:
    uri = _blob_uri()
    blobs.put(uri, b"first", "text/plain", overwrite=True)  # overwrite of nothing creates
    assert blobs.get(uri) == b"first"
    blobs.put(uri, BINARY, "application/octet-stream", overwrite=True)
    assert blobs.get(uri) == BINARY
    blobs.put(uri, BINARY, "application/octet-stream")  # write-once again: same bytes, no-op
    with pytest.raises(ConflictError):
        blobs.put(uri, b"first", "text/plain")


def test_blob_get_missing_is_not_found(blobs: BlobStore) -> None:
    with pytest.raises(NotFoundError):
        blobs.get(_blob_uri())
    with pytest.raises(NotFoundError):
        blobs.get(f"gs://{_uid('no-bucket')}/x.json")


def test_blob_get_range_reads_exactly_the_bytes_asked_for(blobs: BlobStore) -> None:
    uri = _blob_uri()
    blobs.put(uri, BINARY, "application/octet-stream")
    assert blobs.get_range(uri, 0, 1) == BINARY[:1]
    assert blobs.get_range(uri, 10, 26) == BINARY[10:26]  # end not included
    assert blobs.get_range(uri, 255, 262) == BINARY[255:262]  # across non-UTF-8 bytes
    assert blobs.get_range(uri, 0, len(BINARY)) == BINARY
    got = blobs.get_range(uri, 3, 4)
    assert type(got) is bytes


def test_blob_get_range_past_the_end_is_what_is_there(blobs: BlobStore) -> None:
    uri = _blob_uri()
    blobs.put(uri, b"0123456789", "text/plain")
    assert blobs.get_range(uri, 6, 100) == b"6789"
    assert blobs.get_range(uri, 9, 10) == b"9"
    assert blobs.get_range(uri, 10, 20) == b""
    assert blobs.get_range(uri, 50, 60) == b""


def test_blob_get_range_of_a_missing_object_is_not_found(blobs: BlobStore) -> None:
    with pytest.raises(NotFoundError):
        blobs.get_range(_blob_uri(), 0, 8)


@pytest.mark.parametrize(("start", "end"), [(5, 5), (6, 5), (-1, 4)])
def test_blob_get_range_needs_a_non_empty_range_from_zero_on(
    blobs: BlobStore, start: int, end: int
) -> None:
    uri = _blob_uri()
    blobs.put(uri, b"0123456789", "text/plain")
    with pytest.raises(ValueError, match="0 <= start < end"):
        blobs.get_range(uri, start, end)


def test_blob_list_uris_is_every_object_under_a_prefix_in_name_order(blobs: BlobStore) -> None:
    base = f"gs://{BUCKET}/runs/{_uid('list')}"
    long = "L" * 230  # past a file name's length: the folder store hashes it
    names = ["b.txt", "a/x.csv", "a/y/z.bin", "ab.txt", "a/%25 [ü]/.", f"{long}/{long}.txt", "."]
    for n in names:
        blobs.put(f"{base}/{n}", n.encode(), "text/plain")
    everything = sorted(f"{base}/{n}" for n in names)
    assert blobs.list_uris(f"{base}/") == everything
    assert blobs.list_uris(f"{base}/a/") == [
        f"{base}/a/%25 [ü]/.",
        f"{base}/a/x.csv",
        f"{base}/a/y/z.bin",
    ]
    assert blobs.list_uris(f"{base}/a") == [u for u in everything if u.startswith(f"{base}/a")]
    assert blobs.list_uris(f"{base}/{long[:5]}") == [f"{base}/{long}/{long}.txt"]
    assert blobs.list_uris(f"{base}/nothing/") == []
    assert blobs.list_uris(f"gs://{_uid('no-bucket')}/") == []
    assert all(blobs.get(u) == u.removeprefix(f"{base}/").encode() for u in everything)


def test_blob_delete_removes_the_object_and_only_it_and_is_repeatable(blobs: BlobStore) -> None:
    base = f"gs://{BUCKET}/runs/{_uid('delete')}"
    long = "L" * 230
    for n in ("a.json", "ab.json", f"{long}.json"):
        blobs.put(f"{base}/{n}", b"{}", "application/json")
    blobs.delete(f"{base}/a.json")
    blobs.delete(f"{base}/a.json")  # gone already: nothing to do
    blobs.delete(f"{base}/{long}.json")
    blobs.delete(f"{base}/never-written.json")
    assert blobs.list_uris(f"{base}/") == [f"{base}/ab.json"]
    with pytest.raises(NotFoundError):
        blobs.get(f"{base}/a.json")
    blobs.put(f"{base}/a.json", b"[]", "application/json")  # the name may be written again
    assert blobs.get(f"{base}/a.json") == b"[]"


# --------------------------------------------------------------------------------------------
# FlowStore
# --------------------------------------------------------------------------------------------


def test_flow_put_twice_returns_the_same_version(store: Stores) -> None:
    spec = spec_named(_uid("flow"))
    version = store.put_flow(spec)
    assert version == flow_version(spec)
    assert store.put_flow(spec) == version


def test_flow_get_round_trips_the_spec(store: Stores) -> None:
    spec = spec_named(_uid("flow"))
    version = store.put_flow(spec)
    got = store.get_flow(version)
    assert got == spec
    assert got is not None
    assert flow_version(got) == version
    assert store.get_flow("0" * 20) is None


def test_flow_latest_version_follows_the_newest_registration(store: Stores) -> None:
    name = _uid("flow")
    first, second = spec_named(name), spec_named(name, entrypoint="diamond_v2")
    assert store.latest_version(name) is None
    v1 = store.put_flow(first)
    assert store.latest_version(name) == v1
    v2 = store.put_flow(second)
    assert v2 != v1
    assert store.latest_version(name) == v2
    assert store.get_flow(v1) == first  # older versions stay readable
    assert store.put_flow(first) == v1  # re-registering the old one makes it the latest again
    assert store.latest_version(name) == v1
    assert store.latest_version(_uid("unknown")) is None
