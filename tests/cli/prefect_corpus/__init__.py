"""Prefect 3 flows as users write them (pNN_*.py: Prefect's imports, never imported by the
tests as they are) and their kumoflow conversions per `kumoflow check` (kNN_*.py).

A line `kumoflow check` must flag carries `# check[VERDICT]: CONSTRUCT`."""
