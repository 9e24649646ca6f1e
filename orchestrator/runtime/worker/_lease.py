"""A claim's lease, renewed while its attempt runs (see the worker): a dead worker's attempt is
noticed within a minute, and no lease outlives the platform's limits."""

from __future__ import annotations

import threading

from orchestrator.contracts import TaskRequested
from orchestrator.engine import renew
from orchestrator.ports import Commit
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._retry import retried
from orchestrator.runtime._runtime import Runtime


class Lease:
    """Renews the claim every lease_seconds / 3 while the attempt runs, on a thread of its
    own; stops once the claim no longer holds the attempt (it was failed or taken over: the
    attempt's report will be ignored, and its result, write-once, cannot replace another)."""

    def __init__(self, rt: Runtime, req: TaskRequested, token: str) -> None:
        self._rt, self._req, self._token = rt, req, token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="kumoflow-lease")

    def __enter__(self) -> Lease:
        if self._rt.clock.realtime and self._rt.renew_leases:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def renew_once(self) -> bool:
        """Extend the lease by lease_seconds from now; False when the claim lost the attempt."""
        req, token, rt = self._req, self._token, self._rt

        def attempt() -> bool:
            tasks, etags = rt.state.tasks(req.run_id, [req.key])
            task = tasks.get(req.key)
            longer = task and renew(task, req.attempt, token, rt.clock.now(), rt.lease_seconds)
            if not longer:
                return False
            rt.state.commit(Commit(run_id=req.run_id, tasks=[(longer, etags[req.key])]))
            return True

        # A conflict: a completion or a cancel moved the record; read it again.
        return retried(attempt, what=f"run {req.run_id}: renewing {req.key!r}")

    def _run(self) -> None:
        req = self._req
        where = {"run_id": req.run_id, "task": req.key, "attempt": req.attempt}
        while not self._stop.wait(self._rt.lease_seconds / 3):
            try:
                if not self.renew_once():
                    LOGGER.warning(
                        "attempt %d of %s no longer holds its claim (failed or taken over): "
                        "its report will be ignored", req.attempt, req.key, extra=where,
                    )  # fmt: skip
                    return
            except Exception:  # the lease has slack for two more tries before it runs out
                LOGGER.warning(
                    "could not renew the lease of %s attempt %d; trying again", req.key,
                    req.attempt, exc_info=True, extra=where,
                )  # fmt: skip
