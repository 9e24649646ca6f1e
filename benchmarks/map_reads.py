"""What a run-time map's child reads of its producer's list, in memory: GCS-style operations
and bytes per child, with the items each child reads alone (see orchestrator/runtime/_items.py)
beside the baseline measured in the same run: the same map with no items stored, where each
child reads the whole list (what every child did before items existed). Prints; asserts
nothing.

    python -m benchmarks.map_reads [--width 2000] [--size 200]
"""

from __future__ import annotations

import argparse
import threading

from benchmarks._width_flow import map_reads
from orchestrator.adapters import MemoryBlobStore, VirtualClock
from orchestrator.contracts import RunStatus
from orchestrator.runtime import InProcessRunner


class Counted(MemoryBlobStore):
    """Reads of the producer's objects (its result, its items), and optionally no items."""

    def __init__(self, *, items: bool) -> None:
        super().__init__()
        self.items = items
        self.ops = 0
        self.bytes = 0
        self._count_lock = threading.Lock()

    def put(self, uri: str, data: bytes, content_type: str, *, overwrite: bool = False) -> None:
        if self.items or "/items/" not in uri:
            super().put(uri, data, content_type, overwrite=overwrite)

    def _seen(self, uri: str, data: bytes) -> bytes:
        if "bench-padded" in uri:
            with self._count_lock:
                self.ops += 1
                self.bytes += len(data)
        return data

    def get(self, uri: str) -> bytes:
        return self._seen(uri, super().get(uri))

    def get_range(self, uri: str, start: int, end: int) -> bytes:
        return self._seen(uri, super().get_range(uri, start, end))


def measure(width: int, size: int, *, items: bool) -> tuple[float, float]:
    """(read operations per child, bytes read per child)."""
    blobs = Counted(items=items)
    with InProcessRunner(clock=VirtualClock(), functions=map_reads.functions(), blobs=blobs) as r:
        out = r.run(map_reads.spec, {"width": width, "size": size})
    assert out.run.status is RunStatus.SUCCEEDED, out.run.error
    return blobs.ops / width, blobs.bytes / width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--size", type=int, default=200)
    args = parser.parse_args()
    base = measure(args.width, args.size, items=False)
    mine = measure(args.width, args.size, items=True)
    print(f"run-time map of {args.width} elements of {args.size} characters, per child:")
    print(f"  whole list (baseline): {base[0]:.1f} reads, {base[1]:,.0f} bytes")
    print(f"  own element (items):   {mine[0]:.1f} reads, {mine[1]:,.0f} bytes")
    print(f"  bytes ratio: {base[1] / mine[1]:,.0f}x fewer")


if __name__ == "__main__":
    main()
