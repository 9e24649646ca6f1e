"""`kumoflow run FLOW --project P`: start a deployed flow as any producer would, by publishing
dev.kumoflow.run.requested on kumoflow's own run-requests topic (the only topic where the run
starter takes one). The request names no run id: the starter derives it from the event's
identity (requested_run_id), so this side knows it before the run exists and a redelivery
starts nothing new."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.contracts import FlowSpec, RunRequested
from orchestrator.errors import KumoflowError
from orchestrator.runtime import Runtime, bind_params, refuse_blocks, requested_run_id

PUBLISHER_ROLE = "roles/pubsub.publisher"
READER_ROLE = "roles/datastore.viewer"


@dataclass(frozen=True)
class Registered:
    """What Firestore says of the flow: its deployed version and spec, or why it cannot say."""

    version: str | None = None
    spec: FlowSpec | None = None
    unchecked: str | None = None  # why the params go unchecked


def registered(rt: Runtime, flow: str) -> Registered:
    """The flow's deployed version and spec; when Firestore cannot be read, or the flow is not
    registered yet (a `terraform apply` alone: the starter registers it from the bundle on
    first use), the reason its params go unchecked here."""
    from google.api_core import exceptions as gexc

    try:
        version = rt.flows.latest_version(flow)
        spec = rt.flows.get_flow(version) if version else None
    except gexc.PermissionDenied:
        return Registered(
            unchecked=f"cannot read the project's Firestore (needs {READER_ROLE}); the "
            "parameters are not checked here: the run starter checks them, and a refusal "
            "lands in `kumoflow dlq list`"
        )
    if version is None or spec is None:
        return Registered(
            unchecked=f"flow {flow!r} is not registered in Firestore yet; the run starter "
            "registers it from the deployed bundle on first use (a flow the bundle lacks is "
            "refused into `kumoflow dlq list`); parameters are not checked here"
        )
    return Registered(version=version, spec=spec)


def request_run(
    rt: Runtime,
    flow: str,
    params: Mapping[str, Any],
    found: Registered,
    *,
    event_id: str | None = None,
    priority: int = 0,
) -> str:
    """Publish the run request; returns the run id the starter gives it. Parameters are checked
    against the registered spec first (a clear error here, not a dead letter there)."""
    from google.api_core import exceptions as gexc

    if found.spec is not None:
        refuse_blocks(found.spec, dict(params))
        bind_params(found.spec.params, dict(params), flow=flow)
    event_id = event_id or f"cli-{uuid.uuid4().hex}"
    request = RunRequested(
        flow=flow, flow_version=found.version, params=dict(params), priority=priority
    )
    try:
        rt.publish(rt.topics.runs, request, event_id=event_id)
    except gexc.PermissionDenied as e:
        raise KumoflowError(
            f"no permission to publish to topic {rt.topics.runs!r}: grant {PUBLISHER_ROLE} on "
            f"it (or the project) to the account of your Application Default Credentials "
            f"({e.message})"
        ) from e
    except gexc.NotFound as e:
        raise KumoflowError(
            f"topic {rt.topics.runs!r} does not exist: deploy kumoflow to this project first "
            "(kumoflow deploy FILE --target gcp --apply), or set KUMOFLOW_NAME_PREFIX to the "
            "name_prefix it was deployed with"
        ) from e
    return requested_run_id(rt.source, event_id)
