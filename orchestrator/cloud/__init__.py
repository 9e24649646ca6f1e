"""Google Cloud as a target: the Terraform inputs generated from the code's wiring, the function
source bundle, `kumoflow deploy --target gcp`, and a deployed project as the CLI's runtime."""

from orchestrator.cloud._bundle import (
    LOCK,
    TARGET,
    Bundle,
    Requirements,
    Resolve,
    Target,
    bundle_files,
    bundle_requirements,
    pip_resolve,
    write_bundle,
)
from orchestrator.cloud._dashboard import (
    OPERATOR_PATTERN,
    VIEWER_PATTERN,
    Dashboard,
    dashboard_tfvars,
)
from orchestrator.cloud._deploy import (
    ARCHIVE,
    INFRA,
    GcpDeploy,
    default_out,
    deploy_gcp,
    render,
    wiring_json,
)
from orchestrator.cloud._project import (
    EMULATOR_ENV,
    project_runtime,
    project_session,
    project_store,
    publish_to_project,
    results_bucket,
)
from orchestrator.cloud._request import (
    PUBLISHER_ROLE,
    READER_ROLE,
    Registered,
    registered,
    request_run,
)
from orchestrator.cloud._schedules import (
    Action,
    JobState,
    ScheduleJob,
    Scheduler,
    deployed_region,
)
from orchestrator.cloud._wiring import (
    FIRESTORE,
    GCS_NOTIFICATIONS,
    subscription_filters,
    tfvars,
    wiring,
)

__all__ = [
    "ARCHIVE",
    "EMULATOR_ENV",
    "FIRESTORE",
    "GCS_NOTIFICATIONS",
    "INFRA",
    "LOCK",
    "OPERATOR_PATTERN",
    "PUBLISHER_ROLE",
    "READER_ROLE",
    "TARGET",
    "VIEWER_PATTERN",
    "Action",
    "Bundle",
    "Dashboard",
    "GcpDeploy",
    "JobState",
    "Registered",
    "Requirements",
    "Resolve",
    "ScheduleJob",
    "Scheduler",
    "Target",
    "bundle_files",
    "bundle_requirements",
    "dashboard_tfvars",
    "default_out",
    "deploy_gcp",
    "deployed_region",
    "pip_resolve",
    "project_runtime",
    "project_session",
    "project_store",
    "publish_to_project",
    "registered",
    "render",
    "request_run",
    "results_bucket",
    "subscription_filters",
    "tfvars",
    "wiring",
    "wiring_json",
    "write_bundle",
]
