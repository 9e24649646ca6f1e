"""Flows with filtered, debounced and batched triggers (tests/runtime/test_windows.py and the
e2e test of trigger windows)."""

from __future__ import annotations

from orchestrator import GcsObject, PubSubMessage, flow, on_gcs_finalize, on_pubsub, task

BATCH_SIZE = 3
BATCH_SECONDS = 10.0
DEBOUNCE_SECONDS = 5.0


@task(name="name-of")
def name_of(obj: GcsObject) -> str:
    return obj.name


@task(name="region-of")
def region_of(msgs: list[PubSubMessage]) -> list[str]:
    return [m.attributes.get("region", "") for m in msgs]


@flow(
    name="win-batch",
    triggers=[
        on_gcs_finalize(
            bucket="win-bucket",
            prefix="in/",
            glob="in/*.csv",
            batch=(BATCH_SIZE, BATCH_SECONDS),
        )
    ],
)
def win_batch(objs: list[GcsObject]) -> list[str]:
    return name_of.map(objs)  # the plan depends on the batch: one task per object


@flow(
    name="win-debounce",
    triggers=[on_gcs_finalize(bucket="win-bucket", prefix="db/", debounce=DEBOUNCE_SECONDS)],
)
def win_debounce(obj: GcsObject) -> str:
    return name_of(obj)


@flow(
    name="win-messages",
    triggers=[
        on_pubsub(
            topic="win-topic",
            attributes={"kind": "order"},
            match=[{"path": "order.region", "op": "in", "value": ["eu", "us"]}],
            batch=(BATCH_SIZE, BATCH_SECONDS),
        )
    ],
)
def win_messages(msgs: list[PubSubMessage]) -> list[str]:
    return region_of(msgs)


@task(name="twice")
def twice(count: int) -> int:
    return 2 * count


@flow(name="win-params", triggers=[on_pubsub(topic="win-params", debounce=DEBOUNCE_SECONDS)])
def win_params(count: int) -> int:
    return twice(count)


FLOWS = (win_batch, win_debounce, win_messages, win_params)
