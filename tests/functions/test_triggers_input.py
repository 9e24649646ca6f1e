"""Trigger inputs to `run_starter`, in process over the in-memory adapters.

- every official Google sample (storage finalize, Pub/Sub messagePublished, Scheduler
  executed; /work/shared/cloudevents-samples) starts exactly one run;
- redelivery dedupes, a new object generation starts a new run, two flows each get one;
- malformed trigger input becomes exactly one dead letter naming the problem, no run, and a
  normal return;
- the local scheduler fires a Tokyo cron at the right UTC instant (fake clock, no sleeping)
  and a late fire maps to its cron slot, so a refire dedupes.

Cases marked `xfail(strict=True)` reproduce product bugs; each reason says what is wrong.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from orchestrator import (
    GcsObject,
    PubSubMessage,
    emulators,
    flow,
    functions,
    on_gcs_finalize,
    on_pubsub,
    on_schedule,
    task,
)
from orchestrator.adapters import (
    PUBSUB_PUBLISHED,
    MemoryStore,
    VirtualClock,
)
from orchestrator.contracts import ScheduleTrigger
from orchestrator.functions import main
from orchestrator.runtime import job_name, memory_runtime, scheduled_slot

SAMPLES = Path("/work/shared/cloudevents-samples")
TESTDATA = SAMPLES / "testdata/google/events/cloud"
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
SCHEDULER_EXECUTED = "google.cloud.scheduler.job.v1.executed"
RUN_REQUESTED = "dev.kumoflow.run.requested"
STORAGE_SOURCE = "//storage.googleapis.com/projects/_/buckets/sample-bucket"
TOPIC_SOURCE = "//pubsub.googleapis.com/projects/test-project/topics/"
SCHEDULER_SOURCE = "//cloudscheduler.googleapis.com/projects/p/locations/asia-northeast1/jobs/"


# --- test flows (module level: tasks and flows must be importable) -------------------------


@task(name="touch")
def touch(value: object) -> str:
    return repr(value)[:40]


@flow(
    name="gcs-sample",
    triggers=[on_gcs_finalize(bucket="sample-bucket"), on_gcs_finalize(bucket="some-bucket")],
)
def gcs_sample(obj: GcsObject | None = None) -> str:
    return touch(obj)


@flow(name="gcs-twin-a", triggers=[on_gcs_finalize(bucket="twin-bucket")])
def gcs_twin_a(obj: GcsObject | None = None) -> str:
    return touch(obj)


@flow(name="gcs-twin-b", triggers=[on_gcs_finalize(bucket="twin-bucket", prefix="data/")])
def gcs_twin_b(obj: GcsObject | None = None) -> str:
    return touch(obj)


@flow(name="pubsub-raw", triggers=[on_pubsub(topic="my-topic")])
def pubsub_raw(msg: PubSubMessage | None = None) -> str:
    return touch(msg)


@flow(name="pubsub-params", triggers=[on_pubsub(topic="params-topic")])
def pubsub_params(count: int, label: str = "x") -> str:
    return touch([label, count])


@flow(
    name="nightly",
    triggers=[on_schedule(cron="0 3 * * *", timezone="Asia/Tokyo", params={"mode": "nightly"})],
)
def nightly(mode: str = "event") -> str:
    return touch(mode)


BASE_FLOWS = (gcs_sample, pubsub_raw, pubsub_params, nightly)
NIGHTLY_JOB = job_name("nightly", 0)


# --- harness --------------------------------------------------------------------------------


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    memory = MemoryStore()
    rt = memory_runtime(clock=VirtualClock(), store=memory)
    for f in BASE_FLOWS:
        memory.put_flow(f.spec, deploy=True)
    functions.use_runtime(rt)
    monkeypatch.delenv("KUMOFLOW_GCS_NOTIFY_ALL_BUCKETS", raising=False)
    return memory


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _storage_event(data: Any, event_id: str = "gcs-1") -> CloudEvent:
    return CloudEvent({"type": STORAGE_FINALIZED, "source": STORAGE_SOURCE, "id": event_id}, data)


def _published(
    data: Any, topic: str = "my-topic", event_id: str = "ps-1", source: str | None = None
) -> CloudEvent:
    return CloudEvent(
        {
            "type": PUBSUB_PUBLISHED,
            "source": source if source is not None else TOPIC_SOURCE + topic,
            "id": event_id,
        },
        data,
    )


def _message(
    data: bytes = b"",
    attributes: dict[str, str] | None = None,
    message_id: str = "m-1",
    publish_time: str = "2026-03-01T18:00:01.5Z",
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "data": _b64(data),
        "messageId": message_id,
        "publishTime": publish_time,
    }
    if attributes is not None:
        msg["attributes"] = attributes
    return {"subscription": "projects/p/subscriptions/s", "message": msg}


def _notification(resource: Any, **over: str) -> dict[str, Any]:
    """A GCS Pub/Sub notification (OBJECT_FINALIZE, JSON_API_V1) carrying `resource`."""
    body = resource if isinstance(resource, bytes) else json.dumps(resource).encode()
    r = resource if isinstance(resource, dict) else {}
    attributes = {
        "eventType": "OBJECT_FINALIZE",
        "bucketId": str(r.get("bucket", "sample-bucket")),
        "objectId": str(r.get("name", "x")),
        "objectGeneration": str(r.get("generation", "1")),
        "payloadFormat": "JSON_API_V1",
        **over,
    }
    return _message(body, attributes, message_id=f"notify-{r.get('generation', 'x')}")


def _scheduler_event(job: str = NIGHTLY_JOB, time: str = "2026-03-01T18:00:03Z") -> CloudEvent:
    return CloudEvent(
        {
            "type": SCHEDULER_EXECUTED,
            "source": SCHEDULER_SOURCE + job,
            "id": "sched-1",
            "time": time,
        },
        _load(TESTDATA / "scheduler/v1/SchedulerJobData-simple.json"),
    )


def _run_requested_message(flow_name: str) -> dict[str, Any]:
    attributes = {
        "ce-specversion": "1.0",
        "ce-id": "rr-1",
        "ce-type": RUN_REQUESTED,
        "ce-source": "//kumoflow.dev/tests/triggers",
        "content-type": "application/json",
    }
    body = json.dumps({"flow": flow_name, "params": {}}).encode()
    return _message(body, attributes, message_id="rr-msg-1")


def _one_run_params(store: MemoryStore) -> dict[str, Any]:
    assert store.list() == [], [letter.reason for letter in store.list()]
    runs = store.list_runs()
    assert len(runs) == 1, [r.run_id for r in runs]
    return dict(runs[0].params)


# --- 1. every official sample is accepted ---------------------------------------------------

STORAGE_SAMPLES = [
    TESTDATA / "storage/v1/StorageObjectData-simple.json",
    TESTDATA / "storage/v1/StorageObjectData-complex.json",
    SAMPLES / "examples/binary/storage/StorageObjectData-simple.json",
    SAMPLES / "examples/binary/storage/StorageObjectData-complex.json",
]


def _check_object(params: dict[str, Any], resource: dict[str, Any]) -> None:
    obj = params["obj"]
    assert obj["bucket"] == resource["bucket"]
    assert obj["name"] == resource["name"]
    assert obj["generation"] == int(resource["generation"])
    assert isinstance(obj["generation"], int)
    assert int(obj["size"]) == int(resource.get("size", 0))
    for field, key in [
        ("content_type", "contentType"),
        ("md5_hash", "md5Hash"),
        ("crc32c", "crc32c"),
    ]:
        if key in resource:
            assert obj[field] == resource[key], field
    if "timeCreated" in resource:
        expected = datetime.fromisoformat(resource["timeCreated"].replace("Z", "+00:00"))
        assert datetime.fromisoformat(str(obj["time_created"]).replace("Z", "+00:00")) == expected


@pytest.mark.parametrize("path", STORAGE_SAMPLES, ids=lambda p: str(p.relative_to(SAMPLES)))
def test_storage_sample_starts_one_run(store: MemoryStore, path: Path) -> None:
    resource = _load(path)
    main.run_starter(_storage_event(resource))
    params = _one_run_params(store)
    _check_object(params, resource)
    run = store.list_runs()[0]
    assert run.flow == "gcs-sample"
    assert run.trigger.kind == "gcs"


def test_structured_storage_sample_starts_one_run(store: MemoryStore) -> None:
    whole = _load(SAMPLES / "examples/structured/storage/StorageObjectDataWorkflows.json")
    attributes = {k: v for k, v in whole.items() if k != "data"}
    main.run_starter(CloudEvent(attributes, whole["data"]))
    _check_object(_one_run_params(store), whole["data"])
    assert store.list_runs()[0].trigger.event_id == whole["id"]


PUBSUB_SAMPLES = [
    TESTDATA / "pubsub/v1/MessagePublishedData-binary.json",
    TESTDATA / "pubsub/v1/MessagePublishedData-duplicatedFields.json",
    TESTDATA / "pubsub/v1/MessagePublishedData-text.json",
    SAMPLES / "examples/binary/pubsub/MessagePublishedData-simple.json",
    SAMPLES / "examples/binary/pubsub/MessagePublishedData-complex.json",
]


def _check_message(params: dict[str, Any], payload: dict[str, Any]) -> None:
    msg = params["msg"]
    sent = payload["message"]
    assert msg["topic"] == "my-topic"
    assert msg["message_id"] == sent["messageId"]
    assert msg["attributes"] == sent.get("attributes", {})
    assert msg["data_base64"] == sent["data"]
    raw = base64.b64decode(sent["data"])
    assert msg["data"] == raw.decode()  # the samples' bytes are valid UTF-8 (text or \x01..)


@pytest.mark.parametrize("path", PUBSUB_SAMPLES, ids=lambda p: str(p.relative_to(SAMPLES)))
def test_pubsub_sample_starts_one_run(store: MemoryStore, path: Path) -> None:
    payload = _load(path)
    main.run_starter(_published(payload))
    _check_message(_one_run_params(store), payload)
    assert store.list_runs()[0].flow == "pubsub-raw"


def test_structured_pubsub_sample_starts_one_run(store: MemoryStore) -> None:
    whole = _load(SAMPLES / "examples/structured/pubsub/MessagePublishedData.json")
    attributes = {k: v for k, v in whole.items() if k != "data"}
    main.run_starter(CloudEvent(attributes, whole["data"]))
    _check_message(_one_run_params(store), whole["data"])


@pytest.mark.parametrize(
    "path",
    [
        TESTDATA / "scheduler/v1/SchedulerJobData-simple.json",
        SAMPLES / "examples/binary/scheduler/SchedulerJobData-simple.json",
    ],
    ids=lambda p: str(p.relative_to(SAMPLES)),
)
def test_scheduler_sample_starts_one_run(store: MemoryStore, path: Path) -> None:
    event = CloudEvent(
        {
            "type": SCHEDULER_EXECUTED,
            "source": SCHEDULER_SOURCE + NIGHTLY_JOB,
            "id": "sched-sample",
            "time": "2026-03-01T18:00:02Z",
        },
        _load(path),
    )
    main.run_starter(event)
    assert _one_run_params(store) == {"mode": "nightly"}
    run = store.list_runs()[0]
    assert run.trigger.kind == "schedule"
    assert run.trigger.detail["scheduled_for"] == "2026-03-01T18:00:00+00:00"


def test_gcs_pubsub_notification_starts_one_run(store: MemoryStore) -> None:
    resource = _load(SAMPLES / "examples/binary/storage/StorageObjectData-simple.json")
    main.run_starter(_published(_notification(resource), topic="gcs-notifications"))
    _check_object(_one_run_params(store), resource)


def test_notification_for_other_event_type_starts_nothing(store: MemoryStore) -> None:
    resource = _load(SAMPLES / "examples/binary/storage/StorageObjectData-simple.json")
    notice = _notification(resource, eventType="OBJECT_DELETE")
    main.run_starter(_published(notice, topic="gcs-notifications"))
    assert store.list_runs() == []
    assert store.list() == []


# --- 2. dedupe ------------------------------------------------------------------------------


def test_same_storage_event_twice_starts_one_run(store: MemoryStore) -> None:
    resource = _load(SAMPLES / "examples/binary/storage/StorageObjectData-simple.json")
    main.run_starter(_storage_event(resource, "gcs-1"))
    main.run_starter(_storage_event(resource, "gcs-1"))
    # Same object generation via the notification path too: still the same run.
    main.run_starter(_published(_notification(resource), topic="gcs-notifications"))
    assert len(store.list_runs()) == 1
    assert store.list() == []


def test_same_message_twice_starts_one_run(store: MemoryStore) -> None:
    payload = _message(b"hello", message_id="dup-1")
    main.run_starter(_published(payload, event_id="e-1"))
    main.run_starter(_published(payload, event_id="e-2"))  # redelivery: new CE id, same message
    assert len(store.list_runs()) == 1


def test_new_generation_starts_new_run(store: MemoryStore) -> None:
    resource = _load(SAMPLES / "examples/binary/storage/StorageObjectData-simple.json")
    main.run_starter(_storage_event(resource, "gcs-1"))
    newer = {**resource, "generation": str(int(resource["generation"]) + 1)}
    main.run_starter(_storage_event(newer, "gcs-2"))
    runs = store.list_runs()
    assert len(runs) == 2
    assert {r.params["obj"]["generation"] for r in runs} == {  # type: ignore[index,call-overload]
        int(resource["generation"]),
        int(resource["generation"]) + 1,
    }


def test_two_flows_on_one_object_each_get_a_run(store: MemoryStore) -> None:
    store.put_flow(gcs_twin_a.spec, deploy=True)
    store.put_flow(gcs_twin_b.spec, deploy=True)
    resource = {"bucket": "twin-bucket", "name": "data/a.csv", "generation": "7", "size": "3"}
    main.run_starter(_storage_event(resource, "twin-1"))
    main.run_starter(_storage_event(resource, "twin-1"))
    assert sorted(r.flow for r in store.list_runs()) == ["gcs-twin-a", "gcs-twin-b"]
    # An object outside gcs-twin-b's prefix starts only gcs-twin-a.
    main.run_starter(_storage_event({**resource, "name": "other/b.csv"}, "twin-2"))
    assert sorted(r.flow for r in store.list_runs()) == ["gcs-twin-a", "gcs-twin-a", "gcs-twin-b"]


def test_a_job_attribute_fires_schedules_only_on_the_schedules_topic(store: MemoryStore) -> None:
    """A publisher to a trigger topic cannot fire a scheduled flow by naming its job."""
    main.run_starter(
        _published(
            _message(b"", {"kumoflow-job": NIGHTLY_JOB}, publish_time="2026-03-01T18:00:04Z"),
            topic="params-topic",
        )
    )
    assert "nightly" not in {r.flow for r in store.list_runs()}


def test_scheduler_refire_dedupes(store: MemoryStore) -> None:
    main.run_starter(_scheduler_event(time="2026-03-01T18:00:00.2Z"))
    main.run_starter(_scheduler_event(time="2026-03-01T18:00:03Z"))
    # The same job via a Pub/Sub target (kumoflow-job attribute) also lands in the 18:00 slot.
    main.run_starter(
        _published(
            _message(b"", {"kumoflow-job": NIGHTLY_JOB}, publish_time="2026-03-01T18:00:04Z"),
            topic="kumoflow-schedules",
        )
    )
    assert len(store.list_runs()) == 1
    main.run_starter(_scheduler_event(time="2026-03-02T18:00:01Z"))
    assert len(store.list_runs()) == 2


# --- 3. malformed input: one dead letter, no run, normal return -----------------------------

SIMPLE = {"bucket": "sample-bucket", "name": "a.json", "generation": "5", "size": "2"}


@dataclass(frozen=True)
class Bad:
    id: str
    event: Callable[[], CloudEvent]
    reason: str
    bug: str | None = None


BAD: list[Bad] = [
    Bad("storage-data-list", lambda: _storage_event([SIMPLE]), "must be a JSON object"),
    Bad("storage-data-string", lambda: _storage_event("gs://x/y"), "must be a JSON object"),
    Bad(
        "storage-missing-bucket",
        lambda: _storage_event({k: v for k, v in SIMPLE.items() if k != "bucket"}),
        "malformed (bucket)",
    ),
    Bad(
        "storage-generation-not-number",
        lambda: _storage_event({**SIMPLE, "generation": "latest"}),
        "malformed (generation)",
    ),
    Bad(
        "storage-missing-name",
        lambda: _storage_event({k: v for k, v in SIMPLE.items() if k != "name"}),
        "malformed (name)",
    ),
    Bad(
        "storage-unknown-bucket",
        lambda: _storage_event({**SIMPLE, "bucket": "nobody-listens"}),
        "bucket 'nobody-listens'",
    ),
    Bad(
        "notification-payload-none",
        lambda: _published(_notification(SIMPLE, payloadFormat="NONE"), topic="n"),
        "payloadFormat must be JSON_API_V1",
    ),
    Bad(
        "notification-data-not-json",
        lambda: _published(_notification(b"not json {"), topic="n"),
        "not the object's JSON resource",
    ),
    Bad(
        "notification-data-list",
        lambda: _published(_notification(b"[1, 2]"), topic="n"),
        "must be a JSON object",
    ),
    Bad(
        "notification-unknown-bucket",
        lambda: _published(_notification({**SIMPLE, "bucket": "elsewhere"}), topic="n"),
        "bucket 'elsewhere'",
    ),
    Bad(
        "topic-nobody-listens",
        lambda: _published(_message(b"{}"), topic="nobody-listens"),
        "topic 'nobody-listens'",
    ),
    Bad(
        "source-without-topic",
        lambda: _published(_message(b"{}"), source="//pubsub.googleapis.com/projects/p"),
        "cannot tell the topic",
    ),
    Bad(
        "params-data-json-list",
        lambda: _published(_message(b"[1, 2]"), topic="params-topic"),
        "data must be a JSON object",
    ),
    Bad(
        "params-data-json-number",
        lambda: _published(_message(b"42"), topic="params-topic"),
        "data must be a JSON object",
    ),
    Bad(
        "params-data-not-json",
        lambda: _published(_message(b"count=1"), topic="params-topic"),
        "data must be a JSON object",
    ),
    Bad(
        "params-unknown-key",
        lambda: _published(_message(b'{"count": 1, "bogus": 2}'), topic="params-topic"),
        "no parameter 'bogus'",
    ),
    Bad(
        "params-wrong-type",
        lambda: _published(_message(b'{"count": "many"}'), topic="params-topic"),
        "'count': Input should be a valid integer",
    ),
    Bad(
        "params-missing-required",
        lambda: _published(_message(b'{"label": "y"}'), topic="params-topic"),
        "count",
    ),
    Bad(
        "scheduler-unknown-job",
        lambda: _scheduler_event(job="kumoflow-gone-0"),
        "'kumoflow-gone-0'",
    ),
    Bad(
        "scheduler-source-without-jobs",
        lambda: CloudEvent(
            {"type": SCHEDULER_EXECUTED, "source": "//cloudscheduler.googleapis.com/p", "id": "s"},
            {"customData": ""},
        ),
        "names no job",
    ),
    Bad(
        "scheduler-bad-time",
        lambda: _scheduler_event(time="yesterday"),
        "not RFC 3339",
    ),
    Bad(
        "schedule-message-unknown-job",
        lambda: _published(
            _message(b"", {"kumoflow-job": "kumoflow-gone-0"}), topic="kumoflow-schedules"
        ),
        "'kumoflow-gone-0'",
    ),
    Bad(
        "schedule-message-bad-publish-time",
        lambda: _published(
            _message(b"", {"kumoflow-job": NIGHTLY_JOB}, publish_time="soon"),
            topic="kumoflow-schedules",
        ),
        "not RFC 3339",
    ),
    Bad(
        "unknown-outer-type",
        lambda: CloudEvent({"type": "com.example.thing", "source": "//x", "id": "u"}, {}),
        "not 'com.example.thing'",
    ),
    Bad(
        "published-no-message",
        lambda: _published({"subscription": "projects/p/subscriptions/s"}),
        "no `message` object",
    ),
    Bad(
        "published-data-not-object",
        lambda: _published(["message"]),
        "no `message` object",
    ),
    Bad(
        "published-invalid-base64",
        lambda: _published({"message": {"data": "!!not base64!!", "messageId": "b"}}),
        "not valid base64",
    ),
    Bad(
        "published-attributes-not-object",
        lambda: _published({"message": {"data": "", "messageId": "b", "attributes": ["a"]}}),
        "attributes must be an object",
    ),
    Bad(
        "published-bad-publish-time",
        lambda: _published(_message(b"hi", publish_time="noon-ish")),
        "publishTime 'noon-ish' is not RFC 3339",
    ),
    Bad(
        "run-requested-on-a-trigger-topic",
        lambda: _published(_run_requested_message("pubsub-raw"), topic="my-topic"),
        "accepted on kumoflow's own topic 'kumoflow-run-requests' only",
    ),
    Bad(
        "run-requested-unregistered-flow",
        lambda: _published(_run_requested_message("no-such-flow"), topic="kumoflow-run-requests"),
        "not registered",
    ),
    Bad(
        "published-data-json-text",
        lambda: _published(json.dumps(_message(b"hi"), indent=1).encode()[:-3]),
        "messagePublished data is not JSON",
    ),
    Bad(
        "published-data-as-json-bytes",
        lambda: _published(json.dumps(_message(b"hi", publish_time="noon-ish")).encode()),
        "publishTime",
    ),
]


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else []
        )
        for c in BAD
    ],
)
def test_malformed_input_is_dead_lettered(store: MemoryStore, case: Bad) -> None:
    assert main.run_starter(case.event()) is None  # returns normally: acknowledged
    letters = store.list()
    assert len(letters) == 1, [letter.reason for letter in letters]
    assert case.reason in letters[0].reason, letters[0].reason
    assert letters[0].source == "run_starter"
    assert store.list_runs() == []


def test_bad_input_redelivered_keeps_one_letter(store: MemoryStore) -> None:
    event = _published(_message(b"{}"), topic="nobody-listens")
    main.run_starter(event)
    main.run_starter(event)
    assert len(store.list()) == 1


# --- 4. time-skipping schedule --------------------------------------------------------------


def test_scheduler_fires_tokyo_cron_at_utc_instant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = emulators.StackConfig(state_dir=tmp_path)
    emulators.write_jobs(
        config,
        [emulators.Job(name="tokyo", topic="t", cron="0 3 * * *", timezone="Asia/Tokyo")],
    )
    clock = {"now": datetime(2026, 3, 1, 17, 59, tzinfo=UTC)}
    fired: list[tuple[str, datetime]] = []
    slept: list[float] = []

    def now() -> datetime:
        return clock["now"]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["now"] += timedelta(seconds=seconds)

    def publish(_config: emulators.StackConfig, job: emulators.Job) -> None:
        fired.append((job.name, now()))

    # The loop polls at least once a second, so a day is ~86,400 (instant) iterations.
    emulators.run_scheduler(config, now=now, sleep=sleep, send=publish, iterations=60 + 86_400 + 30)
    first = datetime(2026, 3, 1, 18, tzinfo=UTC)  # 03:00 JST on 2 March
    assert fired == [("tokyo", first), ("tokyo", first + timedelta(days=1))]
    assert max(slept) <= 1.0
    last_fires = json.loads((tmp_path / "scheduler/last-fires.json").read_text())
    assert last_fires == {"tokyo": (first + timedelta(days=1)).isoformat()}

    trigger = ScheduleTrigger(cron="0 3 * * *", timezone="Asia/Tokyo")
    assert scheduled_slot(trigger, first + timedelta(seconds=3)) == first
    assert scheduled_slot(trigger, first) == first
    assert scheduled_slot(trigger, first + timedelta(days=1, seconds=3)) == first + timedelta(
        days=1
    )
