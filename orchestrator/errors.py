"""One error root; subclasses say whether retrying could help."""

from __future__ import annotations


class KumoflowError(Exception):
    """Root of every error kumoflow raises on purpose."""

    retryable: bool = False


class FlowDefinitionError(KumoflowError, TypeError):
    """A flow or task is defined or called in a way kumoflow cannot compile."""


class ParameterError(KumoflowError, ValueError):
    """Run parameters do not fit the flow's signature or cannot be carried as JSON."""


class SerializationError(KumoflowError, TypeError):
    """A task result cannot be stored with the configured serializer."""


class ProjectionError(KumoflowError, LookupError):
    """A projection (`obj.bucket`, `res["items"]`, `rows[0]`) does not resolve on the value it
    reads: the consuming task fails, naming the path and the value's producer."""


class BadInputError(KumoflowError, ValueError):
    """An incoming event is malformed or names something unknown; recorded, never retried."""


class NotFoundError(KumoflowError, LookupError):
    """A run, flow or version does not exist."""


class ConflictError(KumoflowError):
    """A conditional write lost a race; reload and try again."""

    retryable = True


class TransientError(KumoflowError):
    """Infrastructure is unavailable for now (emulator down, deadline exceeded)."""

    retryable = True


class CheckUnavailable(TransientError):
    """A deferred task's check could not tell the state of its work for its outage budget
    (`orchestrator.runtime` OUTAGE_BUDGET): the parked attempt fails, retried as the task says."""


class FlowRunError(KumoflowError, RuntimeError):
    """A flow run ended without succeeding; names the failed task and chains its exception."""

    def __init__(self, message: str, *, run_id: str, task: str | None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.task = task


class TaskRunError(KumoflowError, RuntimeError):
    """Stands in for a task's exception when its class cannot be rebuilt (e.g. across processes)."""

    def __init__(self, type_name: str, message: str, traceback: str | None = None) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.remote_traceback = traceback
