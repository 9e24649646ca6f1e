"""List prices and the cost of counted operations, per 1,000 tasks.

Public list prices (USD, beyond free tiers, from the pages named; recheck them): Firestore Standard
edition in us-central1 (the nam5 multi-region doubles the Firestore lines), Pub/Sub, Cloud
Storage Standard class in one region, and Cloud Run functions (billed as Cloud Run services,
Tier 1 region, CPU allocated only while requests are processed). The compute line assumes an
instance size (default 1 vCPU, 0.5 GiB) and the concurrency the local stack runs each function
with (16 requests per instance, gunicorn threads; Cloud Run's own default is 80 per vCPU): an
instance is billed while at least one request is in flight, each busy period rounded up to
100 ms, as measured per stack process. Storage at rest, egress and logging are left out.
Pub/Sub bills throughput on publish and on delivery, at least 1,000 bytes per publish or push
request; each message is taken to be published alone and pushed once per invocation counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks._counts import Counts

TIB = 2**40


@dataclass(frozen=True)
class Price:
    what: str
    quoted: str  # as the price list states it
    usd: float  # per unit
    source: str


_FS = "cloud.google.com/firestore/pricing (Standard edition, us-central1)"
_RUN = "cloud.google.com/run/pricing (Tier 1, CPU only during requests)"
_GCS = "cloud.google.com/storage/pricing (Standard, regional)"
PRICES: dict[str, Price] = {
    "fs_read": Price("Firestore document read", "$0.03 / 100,000", 0.03 / 100_000, _FS),
    "fs_write": Price("Firestore document write", "$0.09 / 100,000", 0.09 / 100_000, _FS),
    "fs_delete": Price("Firestore document delete", "$0.01 / 100,000", 0.01 / 100_000, _FS),
    "ps_byte": Price(
        "Pub/Sub throughput, publish and delivery (>= 1,000 B per request)",
        "$40 / TiB",
        40 / TIB,
        "cloud.google.com/pubsub/pricing",
    ),
    "gcs_a": Price("Cloud Storage class A op (upload, list)", "$0.005 / 1,000", 0.005 / 1000, _GCS),
    "gcs_b": Price("Cloud Storage class B op (download, get)", "$0.0004 / 1,000", 4e-7, _GCS),
    "fn_call": Price("Cloud Run functions request", "$0.40 / million", 0.40 / 1_000_000, _RUN),
    "vcpu_s": Price("Cloud Run functions vCPU-second", "$0.000024", 0.000024, _RUN),
    "gib_s": Price("Cloud Run functions GiB-second", "$0.0000025", 0.0000025, _RUN),
}
TARGET_PER_1000 = 0.0125
STEP_FUNCTIONS_PER_1000_TRANSITIONS = (
    0.025  # Standard workflows, aws.amazon.com/step-functions/pricing
)
FIRESTORE_OPS_TARGET = 8


def firestore_ops(counts: Counts) -> float:
    return counts.get("fs_read", 0) + counts.get("fs_write", 0) + counts.get("fs_delete", 0)


def per_1000_tasks(
    counts: Counts, tasks: int, *, vcpu: float = 1.0, memory_gib: float = 0.5
) -> dict[str, float]:
    """Dollars per 1,000 tasks, one entry per line item plus `total`."""
    calls = counts.get("fn_calls", 0)
    per_second = vcpu * PRICES["vcpu_s"].usd + memory_gib * PRICES["gib_s"].usd
    publishes = counts.get("ps_publish", 0)
    per_message = max(1000.0, counts.get("ps_bytes", 0) / publishes) if publishes else 1000.0
    lines = {
        "firestore": sum(
            counts.get(k, 0) * PRICES[k].usd for k in ("fs_read", "fs_write", "fs_delete")
        ),
        "pubsub": (counts.get("ps_billed_bytes", 0) + calls * per_message) * PRICES["ps_byte"].usd,
        "gcs": counts.get("gcs_a", 0) * PRICES["gcs_a"].usd
        + counts.get("gcs_b", 0) * PRICES["gcs_b"].usd,
        "invocations": calls * PRICES["fn_call"].usd,
        "compute": counts.get("fn_billed_s", 0) * per_second,
    }
    scale = 1000 / tasks
    out = {k: v * scale for k, v in lines.items()}
    out["total"] = sum(out.values())
    out["total_nam5"] = out["total"] + out["firestore"]
    # Concurrency > 1 shares an instance's billed time; unrounded busy time bounds it below.
    # The sum of request durations: what an instance per request would cost before rounding.
    out["compute_alone"] = counts.get("fn_s", 0) * per_second * scale
    return out


def price_table(vcpu: float, memory_gib: float) -> list[str]:
    rows = [f"  {p.what:<66} {p.quoted:>16}  {p.source}" for p in PRICES.values()]
    return [
        "list prices used (USD, beyond free tiers):",
        *rows,
        f"  compute assumes {vcpu:g} vCPU, {memory_gib:g} GiB, 16 requests per instance, billed "
        "while >= 1 is in flight, each busy period rounded up to 100 ms; Firestore nam5 "
        "multi-region = 2x the Firestore line",
        f"  compared with: target ${TARGET_PER_1000} per 1,000 tasks; AWS Step Functions Standard "
        f"${STEP_FUNCTIONS_PER_1000_TRANSITIONS} per 1,000 state transitions "
        "(aws.amazon.com/step-functions/pricing; a mapped task is >= 1 transition)",
    ]
