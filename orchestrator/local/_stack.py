"""`kumoflow dev`: the local stack with production's wiring on Google's emulators."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from orchestrator import emulators
from orchestrator.adapters import TASK_JOB_ENV
from orchestrator.contracts import CODE_ATTRIBUTE, FlowSpec, TaskRuntime
from orchestrator.emulators import Service
from orchestrator.errors import KumoflowError
from orchestrator.local._code import keep, kept, retained_env, worker_name
from orchestrator.local._wiring import (
    FUNCTIONS,
    MAX_BACKOFF_S,
    MAX_DELIVERY_ATTEMPTS,
    MIN_BACKOFF_S,
    TICK_DATA,
    TICK_JOB,
    TIMER_QUEUE,
    FunctionWiring,
)
from orchestrator.runtime import SERVES_ENV, TOPICS

FUNCTIONS_SOURCE = Path(__file__).resolve().parents[1] / "functions" / "main.py"
RESULTS_BUCKET = "kumoflow-results"
WORKER = next(f for f in FUNCTIONS if f.name == "task_worker")
# Kept bundles' workers (orchestrator.local._code) listen from functions_port + this on
# (tests start functions of their own at +40).
RETAINED_PORT_OFFSET = 60
MAX_RETAINED = 10
# The installation's job for `runtime="job"` tasks (infra/jobs.tf declares the cloud's).
TASK_JOB_REGION = "us-central1"
TASK_JOB_ID = "kumoflow-tasks"
TASK_JOB_ENTRY = ("-m", "orchestrator.functions.job")


@dataclass(frozen=True)
class DevStack:
    config: emulators.StackConfig
    tick_seconds: float = 0.5

    @classmethod
    def from_env(cls, port_base: int | None = None) -> DevStack:
        return cls(emulators.StackConfig.from_env(port_base))

    @property
    def functions_port(self) -> int:
        return self.config.functions_port

    def env(self) -> dict[str, str]:
        return {
            **self.config.env(),
            **self.config.settings(),  # so that later commands find this stack again
            "KUMOFLOW_RESULTS_BUCKET": RESULTS_BUCKET,
            # fake-gcs-server notifies for every bucket (GCS: per-bucket configs).
            "KUMOFLOW_GCS_NOTIFY_ALL_BUCKETS": "1",
            # Every process on the stack (functions, the CLI's cancel and retry) arms timers.
            **self.timer_env(),
        }

    def function_env(self) -> dict[str, str]:
        # The code's fingerprint is part of the env, so `dev up` restarts functions whose
        # code changed instead of reusing stale processes. The task job is named for the
        # task worker (it starts executions) and the sweeper (it checks and cancels them).
        return {
            **self.env(),
            "KUMOFLOW_CODE": _code_fingerprint(),
            TASK_JOB_ENV: self.task_job,
        }

    @property
    def task_job(self) -> str:
        project = self.config.project
        return f"projects/{project}/locations/{TASK_JOB_REGION}/jobs/{TASK_JOB_ID}"

    @property
    def timer_queue(self) -> str:
        return f"projects/{self.config.project}/locations/local/queues/{TIMER_QUEUE}"

    def timer_env(self) -> dict[str, str]:
        """Timers armed on the Cloud Tasks stand-in, pushed to the sweeper (as in the cloud,
        where Terraform sets these)."""
        sweeper = next(fn for fn in FUNCTIONS if fn.name == "sweeper")
        port = self.functions_port + sweeper.local_port_offset
        return {
            "KUMOFLOW_TIMER_QUEUE": self.timer_queue,
            "KUMOFLOW_TIMER_URL": f"http://{self.config.host}:{port}/",
        }

    def push_url(self, port: int, topic: str) -> str:
        # The topic in the path gives functions-framework a proper CloudEvent `source`.
        return f"http://{self.config.host}:{port}/projects/{self.config.project}/topics/{topic}"


def up(stack: DevStack, services: Collection[Service] = ()) -> dict[str, Any]:
    """The emulators (the core, the optional `services`, and those started before), the
    topics, the functions and their push subscriptions."""
    missing = emulators.prerequisites(services)
    if missing:
        raise KumoflowError(
            "the local stack cannot start: "
            + "; ".join(missing)
            + ". Install them, or run in-process with --backend memory"
        )
    try:
        emulators.up(stack.config, services=services)
    except emulators.StackError as e:
        raise KumoflowError(str(e)) from e
    os.environ.update(stack.env())
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    try:
        for topic in (*TOPICS.all(), TOPICS.ticks, TOPICS.dead_letter):
            with contextlib.suppress(gexc.AlreadyExists):
                publisher.create_topic(name=publisher.topic_path(stack.config.project, topic))
        _ensure_timer_queue(stack)
        for fn in FUNCTIONS:
            port = stack.functions_port + fn.local_port_offset
            emulators.start_function(
                stack.config,
                fn.name.replace("_", "-"),
                target=fn.name,
                source=FUNCTIONS_SOURCE,
                port=port,
                env=function_env(stack, fn),
            )
            subscribe(
                stack,
                subscriber,
                fn.subscription,
                fn.topic,
                stack.push_url(port, fn.topic),
                fn.ack_deadline_s,
                dead_letter=fn.dead_letter,
            )
        if kept(stack.config):  # the workers a deploy kept for runs on earlier code
            keep_workers(stack, subscriber, kept(stack.config))
        _ensure_tick_job(stack)
        emulators.start_scheduler(stack.config)
    finally:
        subscriber.close()
    return status(stack)


def _ensure_timer_queue(stack: DevStack) -> None:
    """The timers' queue on the Cloud Tasks stand-in (a restarted stand-in forgot it)."""
    from orchestrator.adapters import ensure_queue, tasks_client

    ensure_queue(tasks_client(), stack.timer_queue)


def function_env(stack: DevStack, fn: FunctionWiring, *, current: bool = True) -> dict[str, str]:
    """`fn`'s env; the current task worker's (`current`) names the bundles it leaves to others."""
    # What Terraform grants it: a publish elsewhere fails here as in the cloud.
    env = {**stack.function_env(), "KUMOFLOW_PUBLISHES": ",".join(fn.publishes)}
    return {**env, **retained_env(stack.config)} if fn is WORKER and current else env


def keep_workers(
    stack: DevStack,
    subscriber: Any,
    wanted: dict[str, str],
) -> None:
    """Run a task worker for each bundle in `wanted` (digest -> the flows it was deployed for)
    with a push subscription filtered to it; stop the kept ones no longer wanted."""
    config = stack.config
    if len(wanted) > MAX_RETAINED:
        raise KumoflowError(
            f"{len(wanted)} earlier code bundles still have runs going (at most {MAX_RETAINED} "
            "are kept on the local stack): let them end or cancel them, then deploy again"
        )
    project = config.project
    for bundle in sorted(set(kept(config)) - set(wanted)):
        emulators.stop_function(config, worker_name(bundle))
        with contextlib.suppress(gexc.NotFound):
            subscriber.delete_subscription(
                subscription=subscriber.subscription_path(project, worker_name(bundle))
            )
    for slot, bundle in enumerate(sorted(wanted)):
        port = stack.functions_port + RETAINED_PORT_OFFSET + slot
        emulators.start_function(
            config,
            worker_name(bundle),
            target="task_worker",
            source=FUNCTIONS_SOURCE,
            port=port,
            env={**function_env(stack, WORKER, current=False), SERVES_ENV: bundle},
        )
        subscribe(
            stack,
            subscriber,
            worker_name(bundle),
            TOPICS.tasks,
            stack.push_url(port, TOPICS.tasks),
            WORKER.ack_deadline_s,
            filter=f'attributes.{CODE_ATTRIBUTE} = "{bundle}"',
        )
    keep(config, wanted)


def _ensure_tick_job(stack: DevStack) -> None:
    """The sweeper's tick: Cloud Scheduler every minute in the cloud, sub-second locally."""
    jobs = [j for j in emulators.read_jobs(stack.config) if j.name != TICK_JOB]
    tick = emulators.Job(
        name=TICK_JOB,
        topic=TOPICS.ticks,
        interval_seconds=stack.tick_seconds,
        data=TICK_DATA,
    )
    emulators.write_jobs(stack.config, [tick, *jobs])


def subscribe(
    stack: DevStack,
    subscriber: Any,
    name: str,
    topic: str,
    endpoint: str,
    ack_deadline: int,
    *,
    dead_letter: bool = True,
    filter: str = "",
) -> None:
    """Create the push subscription `name` (a `filter` is fixed at creation, as in Pub/Sub),
    or point an existing one at `endpoint`."""
    project = stack.config.project
    request: dict[str, Any] = {
        "name": subscriber.subscription_path(project, name),
        "topic": f"projects/{project}/topics/{topic}",
        "push_config": {"push_endpoint": endpoint},
        "ack_deadline_seconds": ack_deadline,
        "filter": filter,
        "retry_policy": {
            "minimum_backoff": timedelta(seconds=MIN_BACKOFF_S),
            "maximum_backoff": timedelta(seconds=MAX_BACKOFF_S),
        },
    }
    if dead_letter:  # not for the dead-letter topic's own sink: it would forward onto itself
        request["dead_letter_policy"] = {
            "dead_letter_topic": f"projects/{project}/topics/{TOPICS.dead_letter}",
            "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS,
        }
    try:
        subscriber.create_subscription(request=request)
    except gexc.AlreadyExists:
        # A restarted stack may have moved the function: point the push at it again.
        subscriber.modify_push_config(
            subscription=request["name"], push_config={"push_endpoint": endpoint}
        )


def _code_fingerprint() -> str:
    stamps = sorted(
        (str(p), p.stat().st_mtime_ns) for p in FUNCTIONS_SOURCE.parents[1].rglob("*.py")
    )
    return hashlib.sha256(repr(stamps).encode()).hexdigest()[:12]


def status(stack: DevStack) -> dict[str, Any]:
    return emulators.status(stack.config).to_json()


def down(stack: DevStack) -> list[str]:
    stopped = emulators.down(stack.config)
    keep(stack.config, {})  # the emulators forget the runs those workers were kept for
    return stopped


def ensure_task_job(stack: DevStack) -> None:
    """The task job on the fake Cloud Run Admin API, as Terraform declares it in the cloud:
    the task worker's code and env, its entrypoint `python -m orchestrator.functions.job`,
    no platform retries (a retry is a new attempt, kumoflow's), a 24 h timeout."""
    from google.cloud import run_v2

    from orchestrator.adapters import run_clients

    os.environ.update(stack.env())
    env = {
        "KUMOFLOW_PUSH_AUTH": "off",
        **stack.function_env(),
        "KUMOFLOW_PUBLISHES": ",".join(WORKER.publishes),
        "PYTHONUNBUFFERED": "1",
    }
    container = run_v2.Container(
        image="kumoflow-task-worker",  # recorded, never pulled: the process runs this code
        command=[sys.executable, *TASK_JOB_ENTRY],
        env=[run_v2.EnvVar(name=k, value=v) for k, v in sorted(env.items())],
    )
    job = run_v2.Job(
        labels={"managed-by": "kumoflow"},
        template=run_v2.ExecutionTemplate(
            task_count=1,
            template=run_v2.TaskTemplate(
                containers=[container], timeout=f"{24 * 3600}s", max_retries=0
            ),
        ),
    )
    jobs, _ = run_clients()
    parent, _, _ = stack.task_job.rpartition("/jobs/")
    try:
        jobs.create_job(parent=parent, job=job, job_id=TASK_JOB_ID).result()
    except gexc.Conflict:  # AlreadyExists, or the REST transport's plain 409
        job.name = stack.task_job  # its env follows the functions' (a changed code fingerprint)
        jobs.update_job(job=job).result()


def uses_jobs(specs: Iterable[FlowSpec]) -> bool:
    """Whether these flows (or their subflows) have `runtime="job"` tasks."""
    return any(
        any(n.options.runtime is TaskRuntime.JOB for n in spec.nodes)
        or uses_jobs(spec.subflows.values())
        for spec in specs
    )


def services_used(specs: Iterable[FlowSpec]) -> set[Service]:
    """The optional emulators these flows (and their subflows) call through kumoflow's own
    Google Cloud tasks. A task of the user's that builds a BigQuery or Cloud Run client
    itself is not visible in the DAG: `kumoflow dev up --with` starts those."""
    from orchestrator.gcp import bigquery_query, run_cloud_run_job

    by_task = {bigquery_query.ref: Service.BIGQUERY, run_cloud_run_job.ref: Service.CLOUDRUN}
    found: set[Service] = set()
    for spec in specs:
        found |= {by_task[n.task] for n in spec.nodes if n.task in by_task}
        found |= services_used(spec.subflows.values())
    if uses_jobs(specs):
        found.add(Service.CLOUDRUN)
    return found


def serve(stack: DevStack, specs: Iterable[FlowSpec]) -> None:
    """Start the optional emulators that flows put on the stack call (none running yet), and
    the task job their `runtime="job"` tasks run in."""
    specs = list(specs)
    needed = services_used(specs)
    if not needed:
        return
    state = emulators.status(stack.config)
    if all(state.service(s).healthy for s in needed):
        if uses_jobs(specs):
            ensure_task_job(stack)
        return
    missing = emulators.prerequisites(needed)
    if missing:
        raise KumoflowError(
            f"these flows use {', '.join(sorted(needed))}, which the local stack cannot "
            "start: " + "; ".join(missing)
        )
    try:
        emulators.up(stack.config, services=needed)
    except emulators.StackError as e:
        raise KumoflowError(str(e)) from e
    if uses_jobs(specs):
        ensure_task_job(stack)


def require_running(stack: DevStack) -> None:
    """Point this process at the running stack, or say how to start it."""
    state = emulators.status(stack.config)
    if not state.healthy or not all(f.healthy for f in state.functions):
        raise KumoflowError(
            "the local stack is not running (or not healthy): start it with "
            "`kumoflow dev up`, check it with `kumoflow dev status`"
        )
    os.environ.update(stack.env())
