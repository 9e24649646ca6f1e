"""A real Google Cloud project as the CLI's target (`--project`): Application Default
Credentials, never the local stack's emulators."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from orchestrator.adapters import name_prefix
from orchestrator.errors import KumoflowError
from orchestrator.runtime import Runtime, cloud_runtime

if TYPE_CHECKING:
    from google.auth.transport.requests import AuthorizedSession

    from orchestrator.adapters import FirestoreStore

EMULATOR_ENV = ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")


def results_bucket(project: str) -> str:
    """The results bucket infra/ creates unless given one (var.results_bucket); the name
    prefix and the Firestore database come from KUMOFLOW_NAME_PREFIX and
    KUMOFLOW_FIRESTORE_DATABASE (orchestrator.adapters), as in the functions."""
    return os.environ.get("KUMOFLOW_GCP_RESULTS_BUCKET") or f"{project}-{name_prefix()}-results"


def _use_project(project: str) -> None:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    for name in EMULATOR_ENV:  # `eval "$(kumoflow dev env)"` must not redirect a cloud command
        os.environ.pop(name, None)
    os.environ["KUMOFLOW_RESULTS_BUCKET"] = results_bucket(project)
    try:
        google.auth.default()
    except DefaultCredentialsError as e:
        raise KumoflowError(
            f"no Application Default Credentials for project {project!r}: run "
            "`gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS)"
        ) from e


def project_runtime(project: str) -> Runtime:
    """The Runtime over a deployed project's Firestore, Pub/Sub and results bucket."""
    _use_project(project)
    return cloud_runtime(project, source=f"//kumoflow.dev/cli/{project}")


def project_store(project: str) -> FirestoreStore:
    from orchestrator.adapters import FirestoreStore

    _use_project(project)
    return FirestoreStore.from_env(project)


def project_session(project: str) -> AuthorizedSession:
    """An HTTP session with the project's Application Default Credentials (Google's REST APIs)."""
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    _use_project(project)
    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return AuthorizedSession(credentials)  # type: ignore[no-untyped-call]


def publish_to_project(project: str, topic: str, data: bytes, attributes: dict[str, str]) -> str:
    """Publish one message to `topic` in `project`, as any producer would."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    _use_project(project)
    publisher = pubsub_v1.PublisherClient()
    path = publisher.topic_path(project, topic)
    try:
        return str(publisher.publish(path, data, **attributes).result(timeout=60))
    except gexc.NotFound as e:
        raise KumoflowError(
            f"topic {topic!r} does not exist in project {project!r}; deploy a flow with "
            "on_pubsub(topic=...) there first (kumoflow deploy FILE --target gcp --apply)"
        ) from e
    except gexc.PermissionDenied as e:
        raise KumoflowError(f"no permission to publish to {path}: {e.message}") from e
