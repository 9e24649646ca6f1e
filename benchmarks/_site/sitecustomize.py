"""Loaded by every Python process started with this folder on PYTHONPATH (benchmarks.width puts
it there for the local stack's processes). Does nothing unless KUMOFLOW_BENCH_COUNTS names a
folder: then it counts the billable operations of Google's client libraries (see
kumoflow_bench_counts) and writes them there. Nothing of kumoflow is modified."""

import os

if os.environ.get("KUMOFLOW_BENCH_COUNTS"):
    import kumoflow_bench_counts

    kumoflow_bench_counts.install()
