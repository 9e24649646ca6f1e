"""A small Pub/Sub-like driver for one runtime: published messages wait in a pool until the
test delivers them; a handler that raises leaves its message for redelivery (a non-2xx push),
bad input is acknowledged and kept as a dead letter (as the function edge does), and chosen
publishes fail (a Pub/Sub outage) before they reach the pool."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from orchestrator.adapters import MemoryBus
from orchestrator.contracts import Envelope, TaskFailed, TaskRequested, TaskSucceeded
from orchestrator.errors import BadInputError, TransientError
from orchestrator.runtime import Runtime, advance, run_task, tick

Match = Callable[[str, Envelope], bool]


class PoolBus(MemoryBus):
    """Publishes go to `pool`; `fail(match, times)` makes matching publishes raise first."""

    def __init__(self) -> None:
        super().__init__()
        self.record = True
        self.pool: list[tuple[str, Envelope]] = []
        self.failing: list[tuple[Match, list[int]]] = []

    def fail(self, match: Match, times: int = 1) -> None:
        self.failing.append((match, [times]))

    def publish(self, topic: str, event: Envelope) -> None:
        for match, left in self.failing:
            if left[0] > 0 and match(topic, event):
                left[0] -= 1
                raise TransientError(f"publish of {event.id} failed (a Pub/Sub outage)")
        super().publish(topic, event)
        self.pool.append((topic, event))

    def publish_all(self, topic: str, events: Sequence[Envelope]) -> None:
        for event in events:
            self.publish(topic, event)


@dataclass
class Driver:
    rt: Runtime
    bus: PoolBus
    dead: list[str] = field(default_factory=list)  # reasons of bad input, acknowledged

    def deliver(self, topic: str, event: Envelope) -> bool:
        """Handle one message; False when the handler raised (it stays for redelivery)."""
        data = event.data
        try:
            if isinstance(data, TaskRequested):
                run_task(self.rt, data)
            elif isinstance(data, TaskSucceeded | TaskFailed):
                advance(self.rt, data.run_id, data)
        except BadInputError as e:
            self.dead.append(str(e))
        except TransientError:
            return False
        return True

    def drain(self, limit: int = 10_000, lose: Match | None = None) -> None:
        """Deliver until the pool is empty; what fails is redelivered after the rest, unless
        `lose` matches it (Pub/Sub gave up on it)."""
        for _ in range(limit):
            if not self.bus.pool:
                return
            topic, event = self.bus.pool.pop(0)
            if not self.deliver(topic, event) and not (lose and lose(topic, event)):
                self.bus.pool.append((topic, event))
        raise AssertionError(f"pool never drained: {len(self.bus.pool)} messages left")

    def sweep(self, seconds: float = 7200) -> None:
        """Skip time (past every lease and retry delay) and run the sweeper, then drain."""
        self.rt.clock.sleep(seconds)
        tick(self.rt, budget_s=30)
        self.drain()

    def settle(self, rounds: int = 8) -> None:
        self.drain()
        for _ in range(rounds):
            self.sweep()
