"""Cloud Run function entry points (functions-framework targets)."""
