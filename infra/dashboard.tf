# Optional (dashboard_enabled): `kumoflow ui` as a Cloud Run service behind IAP, with Cloud
# Run's direct IAP integration. Every ingress path (the run.app URL included) passes IAP first;
# only IAP's service agent holds run.invoker, so a request that did not pass IAP is refused by
# Cloud Run's invoker check; and the app lets only operators proven by IAP's signed assertion
# retry or cancel (orchestrator/ui/_iap.py), everyone IAP lets in reads.

locals {
  dashboard_service = "${var.name_prefix}-dashboard"
  # The audience of IAP's signed assertion for a Cloud Run service (IAP's signed-headers docs).
  dashboard_audience = "/projects/${data.google_project.this.number}/locations/${var.region}/services/${local.dashboard_service}"
  dashboard_hosts    = "${local.dashboard_service}-${data.google_project.this.number}.${var.region}.run.app,*.a.run.app"
  iap_agent          = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-iap.iam.gserviceaccount.com"

  # Who passes IAP: the viewers (user:, group:, domain: only; variables.tf) and the operators.
  dashboard_accessors = var.dashboard_enabled ? toset(concat(
    var.dashboard_viewers, [for email in var.dashboard_operators : "user:${email}"]
  )) : toset([])

  # What a retry or cancel publishes: task requests (a resumed run dispatches), run events (a
  # run ends), task events (a cancelled subflow run reports to its parent's node) and run
  # requests (an ended run hands its run slot, max_active_runs, to a waiting run's start).
  dashboard_topics = var.dashboard_enabled ? toset([
    local.topics.tasks, local.topics.finished, local.topics.events, local.topics.runs
  ]) : toset([])

  # Results and logs: read; and create, as the engine functions may, because a resumed run can
  # end at once (nothing left to run), and its end stores the flow's result. Never overwrite.
  dashboard_result_roles = var.dashboard_enabled ? toset([
    "roles/storage.objectViewer", "roles/storage.objectCreator"
  ]) : toset([])
}

resource "google_service_account" "dashboard" {
  count = var.dashboard_enabled ? 1 : 0

  account_id   = "${var.name_prefix}-dashboard"
  display_name = "kumoflow dashboard"
  description  = "Runs kumoflow's dashboard (kumoflow ui) behind IAP; roles in docs/deploy.md."
}

resource "google_cloud_run_v2_service" "dashboard" {
  count = var.dashboard_enabled ? 1 : 0

  name        = local.dashboard_service
  location    = var.region
  description = "kumoflow ui: runs, DAGs, logs, retry and cancel; behind IAP."
  # Browsers reach the run.app URL; IAP guards that path as every other (iap_enabled).
  ingress              = "INGRESS_TRAFFIC_ALL"
  iap_enabled          = true
  invoker_iam_disabled = false # the invoker check stays: only IAP's agent passes it
  deletion_protection  = false # it holds no data: turning the dashboard off deletes it

  template {
    service_account                  = google_service_account.dashboard[0].email
    max_instance_request_concurrency = 40
    timeout                          = "60s"

    scaling {
      min_instance_count = 0 # $0 at idle: a first page after a while waits for a cold start
      max_instance_count = 2
    }

    containers {
      image   = var.dashboard_image
      command = ["python", "-m", "orchestrator"]
      args    = ["ui", "--host", "0.0.0.0", "--port", "8080", "--project", var.project]

      ports {
        container_port = 8080
      }

      resources {
        limits   = { cpu = "1", memory = "512Mi" }
        cpu_idle = true
      }

      env {
        name  = "KUMOFLOW_GCP_RESULTS_BUCKET"
        value = local.results_bucket
      }
      env {
        name  = "KUMOFLOW_FIRESTORE_DATABASE"
        value = var.firestore_database
      }
      env {
        name  = "KUMOFLOW_NAME_PREFIX"
        value = var.name_prefix
      }
      env {
        name  = "KUMOFLOW_UI_OPERATORS"
        value = join(",", var.dashboard_operators)
      }
      env {
        name  = "KUMOFLOW_IAP_AUDIENCE"
        value = local.dashboard_audience
      }
      # The names it answers (any other Host gets 400): its deterministic run.app URL and
      # the older hashed *.a.run.app one.
      env {
        name  = "KUMOFLOW_UI_ALLOWED_HOSTS"
        value = local.dashboard_hosts
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.dashboard_image != ""
      error_message = "dashboard_enabled needs dashboard_image: an image with kumoflow installed (docs/deploy.md, \"The dashboard\")."
    }
  }

  depends_on = [google_project_service.apis]
}

# Cloud Run's invoker check: IAP calls the service as its service agent, nobody else may.
resource "google_cloud_run_v2_service_iam_member" "dashboard_iap_invoker" {
  count = var.dashboard_enabled ? 1 : 0

  location = var.region
  name     = google_cloud_run_v2_service.dashboard[0].name
  role     = "roles/run.invoker"
  member   = local.iap_agent
}

# IAP's own check: who may open the dashboard at all.
resource "google_iap_web_cloud_run_service_iam_member" "dashboard_access" {
  for_each = local.dashboard_accessors

  location               = var.region
  cloud_run_service_name = google_cloud_run_v2_service.dashboard[0].name
  role                   = "roles/iap.httpsResourceAccessor"
  member                 = each.value
}

# Least privilege: kumoflow's Firestore database only (runs, retry, cancel), the results bucket as the engine functions
# have it (no overwrite), and publishing only what a retry or cancel dispatches.
resource "google_project_iam_member" "dashboard_datastore" {
  count = var.dashboard_enabled ? 1 : 0

  project = var.project
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.dashboard[0].email}"

  condition {
    title       = local.datastore_condition.title
    description = local.datastore_condition.description
    expression  = local.datastore_condition.expression
  }
}

resource "google_storage_bucket_iam_member" "dashboard_results" {
  for_each = local.dashboard_result_roles

  bucket = local.results_bucket
  role   = each.value
  member = "serviceAccount:${google_service_account.dashboard[0].email}"
}

resource "google_pubsub_topic_iam_member" "dashboard_publisher" {
  for_each = local.dashboard_topics

  topic  = google_pubsub_topic.own[each.value].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.dashboard[0].email}"
}
