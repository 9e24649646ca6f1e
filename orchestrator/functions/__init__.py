"""Cloud Run function entry points (the functions-framework targets are in `main`).

`use_runtime` swaps the adapters every function uses (tests run the real entry points over
in-memory adapters with it); `use_push_certs` swaps the keys push tokens are verified against;
`GrantedBus` is the bus limited to the topics a function may publish to. The rest is what the
targets in `main` are made of: the push check, the edge (decode, classify, dead-letter), the
trigger matching."""

from ._auth import push_authenticated, use_push_certs
from ._edge import (
    REJECTED,
    GrantedBus,
    Seen,
    guarded,
    handle,
    log_event,
    refused,
    runtime,
    use_runtime,
)
from ._routing import left_to_another
from ._sink import record_dead_letter
from ._triggers import run_requests

__all__ = [
    "REJECTED",
    "GrantedBus",
    "Seen",
    "guarded",
    "handle",
    "left_to_another",
    "log_event",
    "push_authenticated",
    "record_dead_letter",
    "refused",
    "run_requests",
    "runtime",
    "use_push_certs",
    "use_runtime",
]
