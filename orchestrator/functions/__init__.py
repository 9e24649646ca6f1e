"""Cloud Run function entry points (the functions-framework targets are in `main`).

`use_runtime` swaps the adapters every function uses (tests run the real entry points over
in-memory adapters with it); `use_push_certs` swaps the keys push tokens are verified against."""

from orchestrator.functions._auth import use_push_certs
from orchestrator.functions._edge import runtime, use_runtime

__all__ = ["runtime", "use_push_certs", "use_runtime"]
