"""Task and flow options: one frozen model each, shared by the SDK, the DAG and the engine."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    field_validator,
    model_serializer,
)

Serializer = Literal["json", "pickle"]
# Ids end up in document paths and object names: keep them to a safe alphabet.
RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Version = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8,64}$")]
# Limit keys end up in document ids too.
LimitKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")]


class Frozen(BaseModel):
    """Base for every contract: immutable, unknown fields rejected so typos fail loudly."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(Frozen):
    retries: int = Field(default=0, ge=0)
    # One delay for every retry, or one per retry (the last repeats), as Prefect does.
    delay_seconds: float | tuple[float, ...] = 0.0
    jitter_factor: float | None = Field(default=None, ge=0)
    # Fully qualified exception class names; matched against the raised exception's MRO.
    retry_on: tuple[str, ...] = ("builtins.Exception",)

    @field_validator("delay_seconds")
    @classmethod
    def _non_negative(cls, v: float | tuple[float, ...]) -> float | tuple[float, ...]:
        values = v if isinstance(v, tuple) else (v,)
        if any(d < 0 for d in values):
            raise ValueError("retry delays must be >= 0 seconds")
        return v

    def delay_for(self, retry_number: int) -> float:
        """Base delay before retry `retry_number` (1-based), before jitter."""
        if isinstance(self.delay_seconds, tuple):
            if not self.delay_seconds:
                return 0.0
            return self.delay_seconds[min(retry_number, len(self.delay_seconds)) - 1]
        return self.delay_seconds


class TaskRuntime(StrEnum):
    """Where a task's attempts run: in the task worker function (bounded by its timeout), or
    as a Cloud Run job execution from the same code (hours; no function waits for it)."""

    FUNCTION = "function"
    JOB = "job"


class RateUnit(StrEnum):
    """The period a rate counts over: `rate="KEY:COUNT/UNIT"`."""

    SECOND = "s"
    MINUTE = "m"
    HOUR = "h"

    @property
    def period(self) -> timedelta:
        return _PERIODS[self]


_PERIODS = {
    RateUnit.SECOND: timedelta(seconds=1),
    RateUnit.MINUTE: timedelta(minutes=1),
    RateUnit.HOUR: timedelta(hours=1),
}
# A key's record keeps count + 1 starts in one Firestore document (at most 1 MiB, rewritten
# by each take): a larger count is written per a shorter period (1000/m, not 60000/h).
MAX_RATE_COUNT = 1_000
RATE_FORM = 'rate="KEY:COUNT/UNIT" with UNIT s, m or h (e.g. rate="openai:60/m")'


class Rate(Frozen):
    """A rate limit by key: at most `count` attempts of tasks naming `key` start in any window
    of one `per` (engine.rates keeps it exact). Written `"openai:60/m"`; stored as fields."""

    key: LimitKey
    count: int = Field(ge=1, le=MAX_RATE_COUNT)
    per: RateUnit

    @property
    def period(self) -> timedelta:
        return self.per.period

    def __str__(self) -> str:
        return f"{self.key}:{self.count}/{self.per.value}"


def parse_rate(spec: str) -> Rate:
    """`"KEY:COUNT/UNIT"` as a Rate; ValueError naming what is wrong and the accepted form."""
    key, colon, amount = spec.rpartition(":")
    count, slash, unit = amount.partition("/")
    if not colon or not slash:
        raise ValueError(f"rate={spec!r} is not of the form {RATE_FORM}")
    if unit not in {u.value for u in RateUnit}:
        raise ValueError(f"rate={spec!r}: the unit {unit!r} is not s, m or h; write {RATE_FORM}")
    if not count.isdigit() or not 1 <= int(count) <= MAX_RATE_COUNT:
        raise ValueError(
            f"rate={spec!r}: the count {count!r} is not a whole number from 1 to "
            f"{MAX_RATE_COUNT}; write {RATE_FORM}"
        )
    try:
        return Rate(key=key, count=int(count), per=RateUnit(unit))
    except ValidationError:
        raise ValueError(
            f"rate={spec!r}: the key {key!r} is not 1-100 letters, digits, '.', '_', ':' or '-' "
            f"(starting with a letter or digit); write {RATE_FORM}"
        ) from None


class TaskOptions(Frozen):
    name: str
    retry: RetryPolicy = RetryPolicy()
    timeout_seconds: float | None = Field(default=None, gt=0)
    tags: tuple[str, ...] = ()
    persist_result: bool | None = None
    result_storage: str | None = None
    result_serializer: Serializer = "json"
    cache_key_fn: str | None = None  # "module:qualname" of fn(task_key, inputs) -> str | None
    cache_expiration_seconds: float | None = Field(default=None, gt=0)
    log_prints: bool | None = None  # None: as the flow says
    # A concurrency key (`kumoflow limits set KEY N` bounds the attempts of that key that run
    # at once); None: unbounded. Among the waiters of a key, higher priorities go first.
    concurrency: LimitKey | None = None
    priority: int = 0
    runtime: TaskRuntime = TaskRuntime.FUNCTION
    # The key is computed from the attempt's inputs by a function kept with the task's code
    # (`concurrency=lambda region: ...`): the worker calls it at claim (runtime._keys).
    computed_concurrency: bool = False
    # A rate limit by key (`rate="openai:60/m"`): an attempt over it waits, its request sent
    # again when it may start; None: unlimited.
    rate: Rate | None = None

    @field_validator("rate", mode="before")
    @classmethod
    def _rate_text(cls, v: Any) -> Any:
        return parse_rate(v) if isinstance(v, str) else v

    @model_serializer(mode="wrap")
    def _without_unset_newer(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Options added after flows were deployed are left out at their defaults, so a flow
        that does not use them keeps its version (its content hash)."""
        out = handler(self)
        if isinstance(out, dict):
            for name, default in _NEWER_DEFAULTS.items():
                if name in out and out[name] == default:
                    del out[name]
        return out


_NEWER_DEFAULTS: dict[str, Any] = {
    "concurrency": None,
    "priority": 0,
    "runtime": TaskRuntime.FUNCTION,
    "computed_concurrency": False,
    "rate": None,
}


class FlowOptions(Frozen):
    name: str
    description: str | None = None
    version: str | None = None
    retries: int = Field(default=0, ge=0)
    timeout_seconds: float | None = Field(default=None, gt=0)
    # Result settings its tasks take unless they say otherwise (as in Prefect); None: not set.
    persist_result: bool | None = None
    result_storage: str | None = None
    result_serializer: Serializer | None = None
    log_prints: bool = False  # print() in its tasks goes to the run logger (unless they say)
    # At most this many runs of the flow run at once; the others wait, PENDING, for a run
    # slot (the concurrency key run_key(name)), served by run priority, then FIFO.
    max_active_runs: int | None = Field(default=None, ge=1)

    @model_serializer(mode="wrap")
    def _without_unset_newer(self, handler: SerializerFunctionWrapHandler) -> Any:
        """As TaskOptions: options added after flows were deployed are left out at their
        defaults, so a flow that does not use them keeps its version."""
        out = handler(self)
        if isinstance(out, dict) and out.get("max_active_runs") is None:
            out.pop("max_active_runs", None)
        return out
