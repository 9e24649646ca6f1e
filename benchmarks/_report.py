"""Tables and the JSON object benchmarks.width prints (medians over runs; nothing asserted)."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from benchmarks import _cost
from benchmarks._counts import RUN_ROLES, Counts, combine

MIB = 2**20
OPS = [
    ("Firestore reads", "fs_read"),
    ("  of which missing docs", "fs_read_missing"),
    ("  of which empty-query minimum", "fs_read_minimum"),
    ("Firestore writes", "fs_write"),
    ("Firestore deletes", "fs_delete"),
    ("Firestore commits", "fs_commit"),
    ("Firestore failed commits", "fs_commit_failed"),
    ("Pub/Sub publishes", "ps_publish"),
    ("GCS class A", "gcs_a"),
    ("GCS class B", "gcs_b"),
    ("function invocations", "fn_calls"),
    ("function errors (non-2xx)", "fn_errors"),
]


def _med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None, unit: str = "", scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value * scale:,.{digits}f}{unit}"


class Report:
    def __init__(
        self,
        args: argparse.Namespace,
        runs: dict[int, list[Any]],
        floors: dict[int, list[Any]],
        prefect: dict[str, Any],
        broken: str | None,
    ) -> None:
        self.args = args
        self.runs = runs
        self.floors = floors
        self.prefect = prefect
        self.broken = broken

    # -- numbers ---------------------------------------------------------------------------

    def _ok(self, width: int) -> list[Any]:
        return [r for r in self.runs.get(width, []) if r.ok]

    def _median_run(self, width: int) -> Any | None:
        """The median-time successful run; else the last one that counted anything (partial)."""
        ok = sorted(self._ok(width), key=lambda r: r.seconds)
        if ok:
            return ok[(len(ok) - 1) // 2]
        counted = [r for r in self.runs.get(width, []) if r.ops]
        return counted[-1] if counted else None

    def _prefect_run(self, width: int) -> dict[str, Any] | str | None:
        found: dict[str, Any] | str | None = self.prefect.get("runs", {}).get(width)
        return found

    def numbers(self, width: int) -> dict[str, Any]:
        ok = self._ok(width)
        floors = [f for f in self.floors.get(width, []) if f.finished]
        run = self._median_run(width)
        per_task = _med([r.per_task for r in ok])
        floor = _med([f.per_task for f in floors])
        out: dict[str, Any] = {
            "width": width,
            "tasks": width + 1,
            "runs": [
                {"status": r.status, "value_ok": r.value_ok, "seconds": r.seconds}
                for r in self.runs.get(width, [])
            ],
            "wall_s": _med([r.seconds for r in ok]),
            "per_task_s": per_task,
            "floor_wall_s": _med([f.seconds for f in floors]),
            "floor_per_task_s": floor,
            "ratio_to_floor": per_task / floor if per_task and floor else None,
            "floor_ops_per_task": {k: v / width for k, v in floors[0].counts.items()}
            if floors
            else {},
        }
        if run is not None:
            counts = combine(run.ops)
            out["ops_per_task"] = {k: v / run.tasks for k, v in counts.items()}
            out["ops_by_role"] = run.ops
            out["firestore_ops_per_task"] = _cost.firestore_ops(counts) / run.tasks
            out["cost_per_1000_tasks"] = _cost.per_1000_tasks(
                counts, run.tasks, vcpu=self.args.vcpu, memory_gib=self.args.memory_gib
            )
            out["rss_bytes"] = run.rss
            out["counted_run"] = {"status": run.status, "partial": not run.ok}
        prefect = self._prefect_run(width)
        if isinstance(prefect, dict):
            prefect = {**prefect, "per_task_s": prefect["seconds"] / (width + 1)}
        out["prefect"] = prefect
        return out

    # -- tables ----------------------------------------------------------------------------

    def width_table(self, width: int) -> list[str]:
        n = self.numbers(width)
        runs = self.runs.get(width, [])
        lines = [f"== width {width}: map of {width} + 1 fan-in = {width + 1} tasks =="]
        statuses = ", ".join(f"{r.status} {r.seconds:.1f} s" for r in runs)
        if not runs and not self.floors.get(width):
            lines.append("kumoflow and the floor: not run at this width (see --widths)")
        else:
            broken = f" ({self.broken})" if self.broken else ""
            lines += [
                f"kumoflow runs: {statuses or 'none'}{broken}",
                f"  kumoflow wall, start -> terminal (median)   {_fmt(n['wall_s'], ' s')}",
                f"  kumoflow per task                           "
                f"{_fmt(n['per_task_s'], ' ms', 1000, 1)}",
                f"  emulator floor wall (median)                {_fmt(n['floor_wall_s'], ' s')}",
                f"  emulator floor per item                     "
                f"{_fmt(n['floor_per_task_s'], ' ms', 1000, 1)}",
                f"  kumoflow / floor                            {_fmt(n['ratio_to_floor'], 'x')}",
            ]
        prefect = n["prefect"]
        if isinstance(prefect, dict):
            lines.append(
                f"  Prefect {prefect['prefect']} in-process per task         "
                f"{prefect['per_task_s'] * 1000:,.1f} ms (wall {prefect['seconds']:.2f} s; "
                f"temporary server start + 1-item run {prefect['warmup_s']:.1f} s, apart; "
                f"result ok {prefect['value_ok']}; peak RSS {prefect['peak_rss_bytes'] / MIB:,.0f}"
                " MiB, server excluded)"
            )
        elif prefect is not None:
            lines.append(f"  Prefect baseline: {prefect}")
        if "ops_per_task" in n:
            lines += self._ops_table(n)
            lines += self._cost_lines(n["cost_per_1000_tasks"], n["firestore_ops_per_task"])
            lines += self._rss_lines(n["rss_bytes"])
        return lines

    def _ops_table(self, n: dict[str, Any]) -> list[str]:
        by_role: dict[str, Counts] = n["ops_by_role"]
        tasks = n["tasks"]
        head = "".join(f"{r:>14}" for r in (*RUN_ROLES, "total", "floor"))
        which = "partial run" if n["counted_run"]["partial"] else "median run"
        lines = [f"  {'operations per task (' + which + ')':<33}{head}"]
        floor = n["floor_ops_per_task"]
        for label, key in OPS:
            cells = [f"{by_role.get(r, {}).get(key, 0) / tasks:>14.3f}" for r in RUN_ROLES]
            cells.append(f"{n['ops_per_task'].get(key, 0):>14.3f}")
            pushes = 2.0 if key == "fn_calls" else floor.get(key, 0)  # the floor's pushes
            cells.append(f"{pushes:>14.3f}" if floor else f"{'-':>14}")
            lines.append(f"    {label:<31}" + "".join(cells))
        durations = [
            by_role.get(r, {}).get("fn_s", 0) / max(1, by_role.get(r, {}).get("fn_calls", 0))
            for r in RUN_ROLES
        ]
        lines.append(
            f"    {'mean invocation wall ms':<31}"
            + "".join(f"{d * 1000:>14.1f}" for d in durations)
        )
        fs = n["firestore_ops_per_task"]
        lines.append(
            f"  Firestore operations per task: {fs:.2f} (target <= {_cost.FIRESTORE_OPS_TARGET})"
        )
        for role in sorted(set(by_role) - set(RUN_ROLES)):
            counts = by_role[role]
            if not counts:
                continue
            shown = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(counts.items()) if k != "fn_s")
            lines.append(f"  not per task ({role}, whole run): {shown}")
        return lines

    def _cost_lines(self, cost: dict[str, float], fs_ops: float) -> list[str]:
        items = ("firestore", "pubsub", "gcs", "invocations", "compute")
        return [
            "  $ per 1,000 tasks: "
            + ", ".join(f"{k} {cost[k]:.5f}" for k in items)
            + f"; total {cost['total']:.5f} (Firestore nam5: {cost['total_nam5']:.5f}; "
            f"compute at concurrency 1, unrounded: {cost['compute_alone']:.5f})",
            f"    vs target <= {_cost.TARGET_PER_1000}: "
            f"{cost['total'] / _cost.TARGET_PER_1000:.2f}x"
            f"; vs Step Functions Standard at 1 transition per task "
            f"(${_cost.STEP_FUNCTIONS_PER_1000_TRANSITIONS}): "
            f"{cost['total'] / _cost.STEP_FUNCTIONS_PER_1000_TRANSITIONS:.2f}x",
        ]

    def _rss_lines(self, rss: dict[str, dict[str, int]]) -> list[str]:
        lines = ["  RSS MiB during the run (sampled each 1 s)   start      peak       end"]
        for name, row in rss.items():
            lines.append(
                f"    {name:<40} {row['start'] / MIB:>8.0f}  {row['peak'] / MIB:>8.0f}  "
                f"{row['end'] / MIB:>8.0f}"
            )
        return lines

    def summary(self) -> list[str]:
        widths = sorted(set(self.args.widths) | set(self.prefect.get("runs", {})))
        lines = [
            "== summary (medians) ==",
            f"{'width':>7} {'tasks':>7} {'wall s':>9} {'ms/task':>9} {'floor ms':>9} "
            f"{'x floor':>8} {'FS ops':>7} {'$/1k':>8} {'Prefect ms/task':>16} "
            f"{'peak RSS MiB':>13} {'+RSS MiB':>9}",
        ]
        for width in widths:
            n = self.numbers(width)
            prefect = n["prefect"]
            pms = f"{prefect['per_task_s'] * 1000:.2f}" if isinstance(prefect, dict) else "-"
            rss = n.get("rss_bytes", {}).values()
            peak = sum(r["peak"] for r in rss) / MIB
            grew = sum(r["peak"] - r["start"] for r in rss) / MIB
            cost = n.get("cost_per_1000_tasks", {}).get("total")
            lines.append(
                f"{width:>7} {width + 1:>7} {_fmt(n['wall_s']):>9} "
                f"{_fmt(n['per_task_s'], '', 1000, 1):>9} "
                f"{_fmt(n['floor_per_task_s'], '', 1000, 1):>9} "
                f"{_fmt(n['ratio_to_floor']):>8} {_fmt(n.get('firestore_ops_per_task')):>7} "
                f"{_fmt(cost, '', 1, 5):>8} {pms:>16} {f'{peak:,.0f}' if peak else '-':>13} "
                f"{f'{grew:,.0f}' if peak else '-':>9}"
            )
        small, big = self.numbers(100)["per_task_s"], self.numbers(1000)["per_task_s"]
        ratio = f"{big / small:.2f}" if small and big else "n/a (needs both 100 and 1000 run)"
        lines.append(f"per-task(1000) / per-task(100): {ratio} (target <= 1.5)")
        lines.append(f"Firestore operations per task: target <= {_cost.FIRESTORE_OPS_TARGET}")
        lines.append("+RSS: the stack's peak during the run minus its RSS at the run's start")
        if "error" in self.prefect:
            lines.append(f"Prefect baseline not run: {self.prefect['error']}")
        lines += _cost.price_table(self.args.vcpu, self.args.memory_gib)
        return lines

    def to_json(self) -> dict[str, Any]:
        widths = sorted(set(self.args.widths) | set(self.prefect.get("runs", {})))
        small, big = self.numbers(100)["per_task_s"], self.numbers(1000)["per_task_s"]
        return {
            "widths": {str(w): self.numbers(w) for w in widths},
            "per_task_ratio_1000_to_100": big / small if small and big else None,
            "broken": self.broken,
            "prefect_version": self.prefect.get("version"),
            "prefect_error": self.prefect.get("error"),
            "prices": {k: vars(p) for k, p in _cost.PRICES.items()},
            "assumptions": {"vcpu": self.args.vcpu, "memory_gib": self.args.memory_gib},
        }
