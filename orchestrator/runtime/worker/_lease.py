"""A claim's lease, renewed while its attempt runs (see the worker): a dead worker's attempt is
noticed within a minute, and no lease outlives the platform's limits."""

from __future__ import annotations

import threading

from orchestrator.contracts import TaskRequested
from orchestrator.engine import renew
from orchestrator.ports import Commit
from orchestrator.runtime._runtime import Runtime


class Lease:
    """Renews the claim every LEASE_S / 3 while the attempt runs; notes when it was lost."""

    def __init__(self, rt: Runtime, req: TaskRequested, token: str) -> None:
        self._rt, self._req, self._token = rt, req, token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="kumoflow-lease")
        self.lost = False

    def __enter__(self) -> Lease:
        if self._rt.clock.realtime and self._rt.renew_leases:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        req, token = self._req, self._token
        period = self._rt.lease_seconds
        while not self._stop.wait(period / 3):
            try:
                snap = self._rt.state.load(req.run_id, [req.key])
                task = snap.tasks.get(req.key) if snap else None
                now = self._rt.clock.now()
                longer = task and renew(task, req.attempt, token, now, period)
                if not longer or snap is None:
                    self.lost = True  # the attempt was failed or taken: our report will be stale
                    return
                self._rt.state.commit(
                    Commit(run_id=req.run_id, tasks=[(longer, snap.etags[req.key])])
                )
            except Exception:  # a missed renewal is retried next period; the lease has slack
                continue
