"""The elements of a list a run-time map iterates, stored so that each child reads only its own.

A child `V[i]` of a run-time map used to read its producer's whole result and pick element i:
for a 2,000-wide map of 200-byte strings that is 406,001 bytes read (and parsed, and held) per
child, 812 MB per map, O(width²). So when a task's result feeds run-time maps, the task's worker
also stores, for each list they iterate (one per mapped path), an *items* object beside it:

    index  width + 1 offsets, 8-byte big-endian, absolute in the object:
           element i is bytes [offset[i], offset[i + 1])
    body   the elements, each as one line of compact JSON (JSON lines)

Child i reads bytes [8i, 8i + 16) (its two offsets), then its line: two ranged reads (GCS: two
Class B operations), 16 bytes plus its element, whatever the width. Measured in memory, 2,000
wide, 200-byte strings: 219 bytes in 2 reads per child, instead of 406,001 bytes in 1.

One object per element instead would save each child a read, but costs the producer `width`
uploads (Class A operations, $0.005 per 1,000 against $0.0004 per 1,000 reads): for a
10,000-wide map 10,000 Class A operations ($0.05) against 1 Class A and 20,000 Class B
($0.008), and 10,000 round trips inside the producer's attempt against one upload about the
size of its result.

Rules, as for results: the location is derived (`items_uri`: the run, the producer, the path;
never from the wire) and written once (`put` without overwrite). The items are made from the
result *as stored* (when two attempts stored, the first one's), and before the producer's
completion is reported by any path (its worker, a duplicate request finding the result stored,
a deferred task's check, the orchestrator finding the result of an attempt whose lease ran out),
so a crash in between is repaired by whichever reports it. A child that finds no items object
(a run started before items existed) reads the whole list, as before. Pickled results (a task
that opted into pickle) keep no items, and their children read the whole list: elements
pickled one by one would be a second pickle format to trust, for lists JSON cannot carry.
A list longer than the maximum map width keeps none (its map fails); nor does an empty one.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from typing import Any

from orchestrator.contracts import ResultRef
from orchestrator.engine import Plan, decode, lengths, project, task_serializer
from orchestrator.errors import BadInputError, ConflictError, NotFoundError, SerializationError
from orchestrator.runtime._runtime import Runtime

ITEMS_TYPE = "application/x-kumoflow-items"
_OFFSET = struct.Struct(">Q")
_SPAN = struct.Struct(">QQ")  # offsets i and i + 1: where element i starts and ends


def items_uri(rt: Runtime, plan: Plan, run_id: str, key: str, path: tuple[str | int, ...]) -> str:
    """Where the items of the list at `path` in task `key`'s result live, beside the result."""
    tag = hashlib.sha256(json.dumps(list(path)).encode()).hexdigest()[:16]
    storage = plan.tasks[key].node.options.result_storage
    return rt.result_uri(run_id, f"items/{key}/{tag}", "items", storage)


def encode_items(values: Sequence[Any]) -> bytes:
    buf = bytearray(_OFFSET.size * (len(values) + 1))
    for i, value in enumerate(values):
        _OFFSET.pack_into(buf, _OFFSET.size * i, len(buf))
        buf += json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        buf += b"\n"
    _OFFSET.pack_into(buf, _OFFSET.size * len(values), len(buf))
    return bytes(buf)


def list_facts(rt: Runtime, plan: Plan, run_id: str, key: str, data: bytes) -> dict[str, int]:
    """The lengths task `key` reports with its result `data` (as stored) for the run-time maps
    over it (see `lengths`), once the items of the lists they iterate are stored."""
    if not plan.sources(key):
        return {}
    value = decode(data, task_serializer(plan, key))
    found = lengths(plan, key, value)
    if task_serializer(plan, key) == "json":
        _store_items(rt, plan, run_id, key, value, found)
    return found


def _store_items(
    rt: Runtime, plan: Plan, run_id: str, key: str, value: Any, found: dict[str, int]
) -> None:
    done: set[tuple[str | int, ...]] = set()
    for node, source in plan.sources(key).items():
        if source.path in done or not 0 < found[node] <= rt.max_map_width:
            continue
        done.add(source.path)
        uri = items_uri(rt, plan, run_id, key, source.path)
        data = encode_items(project(value, ResultRef(node=key), source.path))
        try:
            rt.blobs.put(uri, data, ITEMS_TYPE)
        except ConflictError as e:  # every writer makes the same bytes from the stored result
            raise BadInputError(
                f"{uri} holds items that task {key!r}'s stored result does not make: the "
                "object was written by something other than this run"
            ) from e


def own_element(rt: Runtime, plan: Plan, run_id: str, key: str) -> tuple[str, Any] | None:
    """(argument, value) of the element task `key` maps over, read alone from its producer's
    items, when `key` is a child of a run-time map over a stored JSON list; None when its
    inputs are read as any task's (not such a child, a nested map's child, which reads its
    one parent's result, a pickled list, a list stored without items)."""
    owner = plan.map_of(key)
    if owner is None:
        return None
    source = plan.dynamic[owner]
    if source.nested or task_serializer(plan, source.task) != "json":
        return None
    i = plan.tasks[key].map_index or 0
    uri = items_uri(rt, plan, run_id, source.task, source.path)
    try:
        span = rt.blobs.get_range(uri, _OFFSET.size * i, _OFFSET.size * i + _SPAN.size)
    except NotFoundError:
        return None
    start, end = _SPAN.unpack(span) if len(span) == _SPAN.size else (0, 0)
    line = rt.blobs.get_range(uri, start, end) if start < end else b""
    if len(line) != end - start or not line.endswith(b"\n"):
        raise SerializationError(f"{uri} has no element {i}: the items object is damaged")
    return source.arg, json.loads(line)
