"""Google Cloud as a target: the Terraform inputs generated from the code's wiring, the function
source bundle, `kumoflow deploy --target gcp`, and a deployed project as the CLI's runtime."""

from orchestrator.cloud._bundle import bundle_files, pinned_requirements, write_bundle
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
    project_store,
    publish_to_project,
    results_bucket,
)
from orchestrator.cloud._wiring import FIRESTORE, GCS_NOTIFICATIONS, tfvars, wiring

__all__ = [
    "ARCHIVE",
    "EMULATOR_ENV",
    "FIRESTORE",
    "GCS_NOTIFICATIONS",
    "INFRA",
    "OPERATOR_PATTERN",
    "VIEWER_PATTERN",
    "Dashboard",
    "GcpDeploy",
    "bundle_files",
    "dashboard_tfvars",
    "default_out",
    "deploy_gcp",
    "pinned_requirements",
    "project_runtime",
    "project_store",
    "publish_to_project",
    "render",
    "results_bucket",
    "tfvars",
    "wiring",
    "wiring_json",
    "write_bundle",
]
