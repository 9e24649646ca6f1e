"""`kumoflow deploy FILE --target local`: register every flow in a file and wire its triggers on
the running local stack the way production wires them (push subscriptions into the run starter,
Scheduler jobs publishing to a topic)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from orchestrator import emulators
from orchestrator.contracts import (
    FlowSpec,
    GcsTrigger,
    PubSubTrigger,
    ScheduleTrigger,
    describe_trigger,
)
from orchestrator.errors import KumoflowError
from orchestrator.local._code import kept, live_bundles, snapshot, with_bundle
from orchestrator.local._stack import (
    FUNCTIONS_SOURCE,
    WORKER,
    DevStack,
    function_env,
    keep_workers,
    require_running,
    serve,
    services_used,
    subscribe,
)
from orchestrator.local._wiring import FUNCTIONS, SCHEDULE_DATA, trigger_subscription
from orchestrator.ports import RecordStore
from orchestrator.runtime import JOB_ATTRIBUTE, TOPICS, job_name

STARTER = next(f for f in FUNCTIONS if f.name == "run_starter")


def flows_in(path: str) -> list[Any]:
    from orchestrator.sdk import Flow, load_module

    module = load_module(path)
    found = [v for v in vars(module).values() if isinstance(v, Flow)]
    if not found:
        raise KumoflowError(f"{path} defines no @flow")
    return found


def limits_in(paths: Sequence[str]) -> dict[str, int]:
    """The concurrency limits the files declare (module-level `Limits`), merged."""
    from orchestrator.sdk import Limits, load_module, merged_limits

    found = [v for p in paths for v in vars(load_module(p)).values() if isinstance(v, Limits)]
    return merged_limits(found)


def deploy_limits(paths: Sequence[str]) -> dict[str, int]:
    """Set the limits the files declare on the running stack (waiters a raise serves are
    woken); returns them."""
    from orchestrator.local._client import stack_runtime
    from orchestrator.runtime import set_limit

    declared = limits_in(paths)
    if declared:
        rt = stack_runtime()
        for key, limit in declared.items():
            set_limit(rt, key, limit)
    return declared


def deploy_local(path: str) -> list[dict[str, Any]]:
    stack = DevStack.from_env()
    require_running(stack)
    from orchestrator.adapters import FirestoreStore, GcsBlobStore

    store = FirestoreStore.from_env(stack.config.project)
    compiled = [f.spec for f in flows_in(path)]  # compile all first: one bad flow deploys nothing
    specs = _pinned(stack, path, compiled)
    serve(stack, specs)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    out = []
    try:
        _keep_earlier_code(stack, subscriber, store, specs)
        for spec in specs:
            version = store.put_flow(spec, deploy=True)
            wired = [_wire(stack, publisher, subscriber, spec, t) for t in spec.triggers]
            _write_jobs(stack, spec)
            uses = sorted(services_used([spec]))
            out.append(
                {
                    "flow": spec.name,
                    "version": version,
                    "code": spec.bundle,
                    "kept": sorted(kept(stack.config)),
                    "triggers": wired,
                    "uses": uses,
                }
            )
        buckets = {t.bucket for s in specs for t in s.triggers if isinstance(t, GcsTrigger)}
        blobs = GcsBlobStore.from_env(stack.config.project)
        for bucket in buckets:  # so that uploads to it work on the fresh local stack
            blobs.ensure_bucket(bucket)
    finally:
        subscriber.close()
    if any(isinstance(t, ScheduleTrigger) for s in specs for t in s.triggers):
        emulators.start_scheduler(stack.config)
    return out


def _pinned(stack: DevStack, path: str, specs: list[FlowSpec]) -> list[FlowSpec]:
    """The specs pinned to a snapshot of the flow file's folder (a module name, not a file,
    deploys unpinned: its code is wherever the import finds it)."""
    file = Path(path).resolve()
    if not file.is_file():
        return specs
    bundle, root = snapshot(stack.config.state_dir, file)
    return [with_bundle(s, bundle, (file.parent, root)) for s in specs]


def _keep_earlier_code(
    stack: DevStack, subscriber: Any, store: RecordStore, specs: list[FlowSpec]
) -> None:
    """Before the new code serves: keep a worker for each bundle these flows' runs still run
    on, and restart the current worker (it imported the replaced code) to leave those to them."""
    names = [s.name for s in specs]
    live = live_bundles(store, store, [*names, *kept(stack.config).values()])
    wanted = {b: f for b, f in kept(stack.config).items() if b in live}
    replaced = False
    for spec in specs:
        latest = store.latest_version(spec.name)
        earlier = store.get_flow(latest) if latest else None
        if earlier is None or earlier.bundle == spec.bundle:
            continue
        replaced = True  # the current worker imported the earlier code: it must start anew
        if earlier.bundle is not None and earlier.bundle in live:
            wanted[earlier.bundle] = spec.name
    if not replaced and wanted == kept(stack.config):
        return
    keep_workers(stack, subscriber, wanted)
    emulators.stop_function(stack.config, WORKER.name.replace("_", "-"))
    emulators.start_function(
        stack.config,
        WORKER.name.replace("_", "-"),
        target=WORKER.name,
        source=FUNCTIONS_SOURCE,
        port=stack.functions_port + WORKER.local_port_offset,
        env=function_env(stack, WORKER),
    )


def _wire(stack: DevStack, publisher: Any, subscriber: Any, spec: FlowSpec, trigger: Any) -> str:
    project = stack.config.project
    port = stack.functions_port + STARTER.local_port_offset
    if isinstance(trigger, PubSubTrigger):
        topic = trigger.topic
    elif isinstance(trigger, GcsTrigger):
        topic = stack.config.gcs_notification_topic
    else:
        topic = TOPICS.schedules
    what = describe_trigger(trigger)
    with contextlib.suppress(gexc.AlreadyExists):
        publisher.create_topic(name=publisher.topic_path(project, topic))
    subscribe(
        stack,
        subscriber,
        trigger_subscription(topic),
        topic,
        stack.push_url(port, topic),
        STARTER.ack_deadline_s,
    )
    return what


def _write_jobs(stack: DevStack, spec: FlowSpec) -> None:
    """Replace this flow's Scheduler jobs (a redeploy drops schedules it no longer has)."""
    prefix = job_name(spec.name, 0).rpartition("-")[0] + "-"
    jobs = [j for j in emulators.read_jobs(stack.config) if not j.name.startswith(prefix)]
    schedules = [t for t in spec.triggers if isinstance(t, ScheduleTrigger)]
    for index, t in enumerate(schedules):
        name = job_name(spec.name, index)
        jobs.append(
            emulators.Job(
                name=name,
                topic=TOPICS.schedules,
                cron=t.cron,
                timezone=t.timezone,
                data=SCHEDULE_DATA,
                attributes={JOB_ATTRIBUTE: name},
            )
        )
    emulators.write_jobs(stack.config, jobs)


def publish(topic: str, data: bytes, attributes: dict[str, str]) -> str:
    stack = DevStack.from_env()
    require_running(stack)
    publisher = pubsub_v1.PublisherClient()
    path = publisher.topic_path(stack.config.project, topic)
    try:
        return str(publisher.publish(path, data, **attributes).result(timeout=30))
    except gexc.NotFound as e:
        raise KumoflowError(
            f"topic {topic!r} does not exist on the local stack; deploy a flow "
            "with on_pubsub(topic=...) first"
        ) from e
