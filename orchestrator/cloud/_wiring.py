"""What Terraform needs from the code: `wiring()` (infra/wiring.json: topics, functions,
subscriptions, retry and dead-letter policy, Firestore indexes) and `tfvars()` (a deploy's
triggers). One source of truth: the local stack applies the same declarations to the emulators.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from orchestrator import emulators
from orchestrator.adapters import TTL_FIELD, block_secret
from orchestrator.contracts import (
    BLOCK_REF,
    CODE_ATTRIBUTE,
    BlockName,
    FlowSpec,
    GcsTrigger,
    PubSubTrigger,
    ScheduleTrigger,
)
from orchestrator.errors import KumoflowError
from orchestrator.local import (
    FUNCTIONS,
    MAX_BACKOFF_S,
    MAX_DELIVERY_ATTEMPTS,
    MIN_BACKOFF_S,
    SCHEDULE_DATA,
    STARTER,
    TICK_DATA,
    TICK_JOB,
    TIMER_QUEUE,
    TRIGGER_SUBSCRIPTION_PREFIX,
)
from orchestrator.runtime import JOB_ATTRIBUTE, RETAINED_ENV, TOPICS, job_name
from orchestrator.waits import wait_topics

GCS_NOTIFICATIONS = emulators.StackConfig.__dataclass_fields__["gcs_notification_topic"].default
WORKER = "task_worker"
# The functions that run a flow's task code: the worker runs tasks, and the sweeper runs
# deferred tasks' checks and cancels (BigQuery and Cloud Run polls), so both need the roles the
# tasks' calls do (task_worker_roles).
TASK_CODE = (WORKER, "sweeper")
# Every name here starts with "kumoflow": infra's var.name_prefix takes its place.
PUSH_ACCOUNT = "kumoflow-push"
BUILD_ACCOUNT = "kumoflow-build"
RESULTS_ROLES = {
    "create": ["roles/storage.objectCreator", "roles/storage.objectViewer"],
    "update": ["roles/storage.objectUser"],
    "none": [],
}
_ASC, _DESC = "ASCENDING", "DESCENDING"
_RUNS, _LETTERS, _FLOWS = "kumoflow_runs", "kumoflow_dead_letters", "kumoflow_flows"


def _field(collection: str, field: str, **extra: Any) -> dict[str, Any]:
    return {"collection": collection, "field": field, **extra}


def _both_scopes(order: str) -> list[dict[str, str]]:
    return [{"order": order, "query_scope": s} for s in ("COLLECTION", "COLLECTION_GROUP")]


# The queries of orchestrator/adapters/_firestore.py and the indexes they need.
FIRESTORE: dict[str, dict[str, Any]] = {
    "indexes": {
        # list_runs(flow=...): flow == X order by created_at desc.
        "runs-by-flow": {
            "collection": _RUNS,
            "query_scope": "COLLECTION",
            "fields": [
                {"field_path": "flow", "order": _ASC},
                {"field_path": "created_at", "order": _DESC},
            ],
        },
        # FirestoreLimits' fast path: holder in [me, ""] order by holder desc, index (its own
        # slot first, else the lowest free one, so a cut's holders sit below the new limit).
        "slots-held-or-free": {
            "collection": "slots",
            "query_scope": "COLLECTION",
            "fields": [
                {"field_path": "holder", "order": _DESC},
                {"field_path": "index", "order": _ASC},
            ],
        },
    },
    # Collection-group range queries (single-field indexes are collection-scoped by default).
    "field_indexes": {
        "outbox-due_at": _field(
            "outbox", "due_at", indexes=_both_scopes(_ASC)
        ),  # due(), next_due()
        "tasks-lease_until": _field("tasks", "lease_until", indexes=_both_scopes(_ASC)),
        "tasks-redispatch_at": _field("tasks", "redispatch_at", indexes=_both_scopes(_ASC)),
        # The sweeper's reclaim of expired concurrency slots (FirestoreLimits.expired_slots).
        "slots-lease_until": _field("slots", "lease_until", indexes=_both_scopes(_ASC)),
    },
    # Large strings nobody queries: indexing them costs writes and may exceed the index limits.
    "exemptions": {
        "flows-spec": _field(_FLOWS, "spec"),
        "runs-params": _field(_RUNS, "params"),
        "dead_letters-payload": _field(_LETTERS, "payload"),
    },
    # TTL policies: the adapter writes `expire_at` when KUMOFLOW_RETENTION_DAYS is set.
    "ttl": {
        "runs-expire_at": _field(_RUNS, TTL_FIELD),
        "tasks-expire_at": _field("tasks", TTL_FIELD),
        "dead_letters-expire_at": _field(_LETTERS, TTL_FIELD),
    },
}


def wiring() -> dict[str, Any]:
    """infra/wiring.json: everything Terraform takes from the code (deterministic)."""
    topics = {**dataclasses.asdict(TOPICS), "gcs_notifications": GCS_NOTIFICATIONS}
    functions = {
        fn.name: {
            "entry_point": fn.name,
            "service": fn.subscription,  # kumoflow-run-starter, ...
            "account_id": "kumoflow-" + fn.name.replace("_", "-"),
            "topic": fn.topic,
            "subscription": fn.subscription,
            "ack_deadline_s": fn.ack_deadline_s,
            "timeout_s": fn.timeout_s,
            "publishes": sorted(fn.publishes),
            "results_roles": RESULTS_ROLES[fn.results],
            "dead_letter": fn.dead_letter,
        }
        for fn in FUNCTIONS
    }
    return {
        "topics": topics,
        "functions": functions,
        "retry": {
            "min_backoff_s": MIN_BACKOFF_S,
            "max_backoff_s": MAX_BACKOFF_S,
            "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS,
        },
        "trigger_function": STARTER.name,
        "trigger_subscription_prefix": TRIGGER_SUBSCRIPTION_PREFIX,
        # The run starter always listens here; on_pubsub topics come from tfvars.
        "trigger_topics": [TOPICS.schedules, GCS_NOTIFICATIONS],
        "worker_function": WORKER,
        "task_code_functions": list(TASK_CODE),
        "tick": {"job": TICK_JOB, "topic": TOPICS.ticks, "data": TICK_DATA},
        # Timers' own pushes: the functions that commit runs' state arm them (they add
        # timers), as Cloud Tasks whose push reaches the sweeper (infra/tasks.tf).
        "timers": {
            "queue": TIMER_QUEUE,
            "target": "sweeper",
            "arming_functions": [fn.name for fn in FUNCTIONS if fn.publishes],
        },
        "schedule_data": SCHEDULE_DATA,
        "job_attribute": JOB_ATTRIBUTE,
        # Task requests name their code bundle here; kept workers' subscriptions filter on it.
        "code_attribute": CODE_ATTRIBUTE,
        "retained_env": RETAINED_ENV,
        "push_account_id": PUSH_ACCOUNT,
        "build_account_id": BUILD_ACCOUNT,
        "firestore": FIRESTORE,
    }


_TOPIC = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
_JOB = re.compile(r"[A-Za-z0-9_-]{1,500}")
# Attribute keys written bare in a subscription filter (attributes.KEY); others stay in code.
_ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def tfvars(
    specs: Sequence[FlowSpec],
    *,
    project: str,
    region: str,
    source_archive: str,
    blocks: Sequence[str] = (),
) -> dict[str, Any]:
    """terraform.tfvars.json of a deploy: every trigger of `specs` (the whole project's set),
    and the secrets of the blocks they load (and of `blocks`, KIND/NAME, that they load where
    a deploy cannot see: inside task code, or through another block)."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise KumoflowError(f"flow names must be unique in a deploy; repeated: {', '.join(dup)}")
    own = set(wiring()["topics"].values())
    buckets: dict[str, set[str]] = {}
    topics: set[str] = set()
    schedules: dict[str, dict[str, str]] = {}
    for spec in specs:
        scheduled = [t for t in spec.triggers if isinstance(t, ScheduleTrigger)]
        for index, sched in enumerate(scheduled):
            job = job_name(spec.name, index)
            if not _JOB.fullmatch(job):
                raise KumoflowError(
                    f"flow {spec.name!r}: its schedule's Cloud Scheduler job name {job!r} may "
                    "use letters, digits, '-' and '_' only: rename the flow"
                )
            schedules[job] = {"cron": sched.cron, "time_zone": sched.timezone, "flow": spec.name}
        for t in spec.triggers:
            if isinstance(t, GcsTrigger):
                buckets.setdefault(t.bucket, set()).add(t.prefix)
            elif isinstance(t, PubSubTrigger):
                if not _TOPIC.fullmatch(t.topic) or t.topic.startswith("goog"):
                    raise KumoflowError(f"flow {spec.name!r}: {t.topic!r} is not a topic name")
                if t.topic in own:
                    raise KumoflowError(
                        f"flow {spec.name!r}: topic {t.topic!r} is one of kumoflow's own; "
                        "trigger on a topic of your own"
                    )
                topics.add(t.topic)
    waits = sorted(set().union(*(wait_topics(s) for s in specs)))
    return {
        "project": project,
        "region": region,
        "source_archive": source_archive,
        "flows": sorted(names),
        # Topics flows wait on (orchestrator.waits), only when there are: older goldens stand.
        **({"wait_topics": waits} if waits else {}),
        "gcs_triggers": [
            {"bucket": bucket, "prefix": prefix}
            for bucket in sorted(buckets)
            for prefix in _covering(buckets[bucket])
        ],
        "pubsub_triggers": sorted(topics),
        "pubsub_trigger_filters": subscription_filters(specs),
        "schedules": dict(sorted(schedules.items())),
        "block_secrets": block_secrets(specs, blocks),
    }


_BLOCK_NAME: Any = TypeAdapter(BlockName)


def block_secrets(specs: Sequence[FlowSpec], extra: Sequence[str] = ()) -> dict[str, Any]:
    """Secret id (without the name prefix) -> {block, field}: one per secret field of every
    block the flows' DAGs load (`{"$block": "kind/name"}`), of the notification blocks they
    declare, and of `extra` (KIND/NAME). Only
    the functions that run task code read them (infra grants those)."""
    refs = {ref for spec in specs for ref in _block_refs(spec.model_dump(mode="json"))}
    # The notification blocks a flow declares: a worker loads them when a failure is told.
    refs |= {ref for spec in specs if spec.hooks for ref in spec.hooks.flow.notify}
    for ref in extra:
        kind, _, name = ref.partition("/")
        try:
            _BLOCK_NAME.validate_python(kind)
            _BLOCK_NAME.validate_python(name)
        except ValidationError as e:
            raise KumoflowError(
                f"--block {ref!r}: give KIND/NAME, e.g. gcp-credentials/prod"
            ) from e
        refs.add(ref)
    classes = _block_classes()
    out: dict[str, Any] = {}
    for ref in sorted(refs):
        kind, _, name = ref.partition("/")
        if kind not in classes:
            known = ", ".join(sorted(classes))
            raise KumoflowError(f"block {ref!r}: no Block class of kind {kind!r} ({known})")
        for field in classes[kind].secret_fields:
            out[block_secret(kind, name, field)] = {"block": ref, "field": field}
    return out


def _block_refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if set(value) == {BLOCK_REF}:
            yield str(value[BLOCK_REF])
            return
        for item in value.values():
            yield from _block_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _block_refs(item)


def _block_classes() -> dict[str, Any]:
    """Every Block kind defined so far: kumoflow's and the deployed files' own subclasses."""
    from orchestrator.gcp import Block

    found: dict[str, Any] = {}
    todo = list(Block.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if isinstance(getattr(cls, "kind", None), str):
            found[cls.kind] = cls
    return found


def subscription_filters(specs: Sequence[FlowSpec]) -> dict[str, str]:
    """Topic -> the Pub/Sub subscription filter that keeps what some flow on it may take: the
    OR of each trigger's attribute equalities. None for a topic where a trigger takes every
    message (or names an attribute the filter syntax cannot), so the run starter sees all."""
    by_topic: dict[str, list[PubSubTrigger]] = {}
    for spec in specs:
        for t in spec.triggers:
            if isinstance(t, PubSubTrigger):
                by_topic.setdefault(t.topic, []).append(t)
    out: dict[str, str] = {}
    for topic, triggers in sorted(by_topic.items()):
        if any(
            not t.attributes or not all(map(_ATTRIBUTE.fullmatch, t.attributes)) for t in triggers
        ):
            continue
        terms = sorted(
            {
                " AND ".join(
                    f"attributes.{k} = {json.dumps(v)}" for k, v in sorted(t.attributes.items())
                )
                for t in triggers
            }
        )
        out[topic] = terms[0] if len(terms) == 1 else " OR ".join(f"({x})" for x in terms)
    return out


def _covering(prefixes: set[str]) -> list[str]:
    """The fewest notification prefixes that cover all: 'a/' covers 'a/b/' (one message per
    object, not one per matching flow; the run starter matches every flow to each object)."""
    kept: list[str] = []
    for prefix in sorted(prefixes):  # shorter prefixes sort before their extensions
        if not any(prefix.startswith(k) for k in kept):
            kept.append(prefix)
    return kept
