"""Measure how many hand-made mutants (mutants.toml, beside this file) the memory suite kills.

For each mutant: patch its file (the `old` text must occur exactly once), run its `focus` tests
with `-x -q` on the memory backend, then, when they all pass, the broad memory subset (or the
whole memory suite with --full); restore the file (`git checkout -- FILE` where the file is
tracked and was clean, else its saved text). A mutant is killed when pytest fails, errors or
outlives --timeout. Results go to stdout and, with --out, to a JSON file.

Not a test module (pytest does not collect it): run it by hand, from the repository root:

    /work/main/.venv/bin/python scripts/mutants/run.py               # every mutant
    /work/main/.venv/bin/python scripts/mutants/run.py --only no-rollup --full
    /work/main/.venv/bin/python scripts/mutants/run.py --check       # the patches still apply
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The broad subset: everything that drives the engine, the runtime and the function edge on
# the memory backend; the slow interleaving machine last.
BROAD = [
    "tests/engine",
    "tests/runtime",
    "tests/functions",
    "tests/e2e",
    "tests/sdk",
    "tests/cli/test_cli_memory.py",
]
LAST = "tests/runtime/test_interleavings.py"


def load(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as f:
        mutants: list[dict[str, Any]] = tomllib.load(f)["mutant"]
    return mutants


def pytest(root: Path, paths: list[str], timeout: float) -> tuple[bool, str]:
    """(passed, the tail of its output)."""
    cmd = [sys.executable, "-m", "pytest", "--backend", "memory", "-x", "-q"]
    cmd += ["-p", "no:cacheprovider", "--timeout", str(int(timeout)), *paths]
    try:
        done = subprocess.run(
            cmd, cwd=root, capture_output=True, text=True, timeout=timeout + 30, check=False
        )
    except subprocess.TimeoutExpired:
        return False, "timed out"
    tail = [line for line in done.stdout.splitlines() if line.strip()][-3:]
    return done.returncode == 0, " | ".join(tail)


def ordered(root: Path, paths: list[str]) -> list[str]:
    """`paths` with the interleaving machine moved last (pytest keeps command-line order)."""
    out: list[str] = []
    for p in paths:
        if p == "tests/runtime":
            out += sorted(
                str(f.relative_to(root))
                for f in (root / "tests/runtime").glob("test_*.py")
                if str(f.relative_to(root)) != LAST
            )
            continue
        out.append(p)
    if "tests/runtime" in paths:
        out.append(LAST)
    return out


def tracked_and_clean(root: Path, file: str) -> bool:
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", file],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return status.returncode == 0 and not status.stdout.strip()


def restore(root: Path, file: str, original: str, use_git: bool) -> None:
    if use_git:
        subprocess.run(["git", "checkout", "--", file], cwd=root, check=True)
    if (root / file).read_text() != original:
        (root / file).write_text(original)


def run_one(
    m: dict[str, Any],
    root: Path,
    full: bool,
    timeout: float,
    focus: list[str] | None = None,
    *,
    focus_only: bool = False,
) -> dict[str, Any]:
    path = root / m["file"]
    original = path.read_text()
    if original.count(m["old"]) != 1:
        return {"id": m["id"], "verdict": "stale", "detail": "old text not found exactly once"}
    use_git = tracked_and_clean(root, m["file"])
    started = time.monotonic()
    try:
        path.write_text(original.replace(m["old"], m["new"], 1))
        passed, detail = pytest(root, focus or m.get("focus", []), timeout)
        stage = "focus"
        if passed and focus is None and not focus_only:
            wide = ["tests"] if full else ordered(root, BROAD)
            passed, detail = pytest(root, wide, timeout * 4)
            stage = "full" if full else "broad"
    finally:
        restore(root, m["file"], original, use_git)
    return {
        "id": m["id"],
        "area": m.get("area", ""),
        "verdict": "survived" if passed else "killed",
        "by": None if passed else stage,
        "seconds": round(time.monotonic() - started, 1),
        "detail": detail,
        "equivalent": m.get("equivalent"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=Path, default=HERE / "mutants.toml")
    parser.add_argument("--root", type=Path, default=HERE.parents[1])
    parser.add_argument("--only", nargs="*", help="mutant ids to run (default: all)")
    parser.add_argument("--full", action="store_true", help="the whole memory suite after focus")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per focus run")
    parser.add_argument(
        "--tests", nargs="*", help="run only these tests per mutant (no broad run after them)"
    )
    parser.add_argument("--focus-only", action="store_true", help="no broad run after focus")
    parser.add_argument("--check", action="store_true", help="only check that patches apply")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    root = args.root.resolve()
    mutants = load(args.mutants)
    if args.only:
        mutants = [m for m in mutants if m["id"] in set(args.only)]
    if args.check:
        bad = [m["id"] for m in mutants if (root / m["file"]).read_text().count(m["old"]) != 1]
        print(f"{len(mutants) - len(bad)} apply, stale: {bad}")
        return 1 if bad else 0
    results = []
    for m in mutants:
        r = run_one(m, root, args.full, args.timeout, args.tests, focus_only=args.focus_only)
        results.append(r)
        print(f"{r['verdict']:8} {r['id']:45} {r.get('seconds', 0):6}s {r['detail']}", flush=True)
        if args.out:
            args.out.write_text(json.dumps(results, indent=1))
    killed = sum(r["verdict"] == "killed" for r in results)
    print(f"\nkilled {killed} / {len(results)}")
    for r in results:
        if r["verdict"] != "killed":
            why = f" (equivalent: {r['equivalent']})" if r.get("equivalent") else ""
            print(f"  {r['verdict']}: {r['id']}{why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
