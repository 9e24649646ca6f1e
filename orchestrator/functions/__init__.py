"""Cloud Run function entry points (the functions-framework targets are in `main`).

`use_runtime` swaps the adapters every function uses (tests run the real entry points over
in-memory adapters with it); `use_push_certs` swaps the keys push tokens are verified against;
`GrantedBus` is the bus limited to the topics a function may publish to."""

from orchestrator.functions._auth import use_push_certs
from orchestrator.functions._edge import GrantedBus, runtime, use_runtime

__all__ = ["GrantedBus", "runtime", "use_push_certs", "use_runtime"]
