"""Cloud Run function entry points (functions-framework targets live in `functions.main`).

`use_runtime` swaps the adapters every function uses (tests run the real entry points over
in-memory adapters with it)."""

from functions._edge import runtime, use_runtime

__all__ = ["runtime", "use_runtime"]
