# Optional (callback_enabled): the public face of signed callback links. A pause's link
# (orchestrator.waits.resume_url) goes in a chat message or an email, to people who may hold no
# IAP login for the dashboard: this one function answers it. It is public (allUsers may invoke
# it, and only it), and answers only a link whose HMAC signature (the ResumeKey block) and
# expiry are valid: anything else gets 403 before a record is read
# (orchestrator/waits/_callback.py). What it may do is what giving a pause its input does:
# read the run, store the input and the node's result, report the node's end.

locals {
  callback_service = "${var.name_prefix}-callback"
  callback_url     = "https://${local.callback_service}-${data.google_project.this.number}.${var.region}.run.app"
  # The ResumeKey block's secret field, if a deploy knows of it (var.block_secrets).
  callback_secrets = var.callback_enabled ? toset([
    for id, s in var.block_secrets : id if s.block == "resume-key/${var.callback_resume_key_block}"
  ]) : toset([])
  callback_result_roles = var.callback_enabled ? toset([
    "roles/storage.objectViewer", "roles/storage.objectCreator"
  ]) : toset([])
}

resource "google_service_account" "callback" {
  count = var.callback_enabled ? 1 : 0

  account_id   = "${var.name_prefix}-callback"
  display_name = "kumoflow callback links"
  description  = "Runs the public callback function of signed pause links; roles in docs/howto/approval.md."
}

resource "google_cloudfunctions2_function" "callback" {
  #checkov:skip=CKV_GCP_124:Public on purpose: signed pause links are opened by people without an IAP login; the function answers 403 to anything but a valid HMAC-signed, unexpired link.
  count = var.callback_enabled ? 1 : 0

  name        = local.callback_service
  location    = var.region
  description = "kumoflow resume_callback: a pause's signed link, opened from a message"

  build_config {
    runtime           = var.python_runtime
    entry_point       = "resume_callback"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = local.source_bucket
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    min_instance_count               = 0
    max_instance_count               = 2
    max_instance_request_concurrency = 8
    available_cpu                    = "1"
    available_memory                 = "512Mi"
    timeout_seconds                  = 60
    # Browsers reach it from anywhere: the signed link is the permission.
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.callback[0].email

    environment_variables = merge(var.environment, {
      GOOGLE_CLOUD_PROJECT        = var.project
      KUMOFLOW_NAME_PREFIX        = var.name_prefix
      KUMOFLOW_FIRESTORE_DATABASE = var.firestore_database
      KUMOFLOW_RESULTS_BUCKET     = local.results_bucket
      # A node given its input reports its end: the one topic it may publish to.
      KUMOFLOW_PUBLISHES = local.topics.events
      LOG_EXECUTION_ID   = "true"
    })
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build_logs,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_source_reader,
  ]
}

# The one public invoker in this module: the function refuses every request that is not a
# valid signed link, and its account may do no more than give a pause its input.
resource "google_cloud_run_service_iam_member" "callback_public" {
  #checkov:skip=CKV_GCP_102:Public on purpose: signed pause links are opened by people without an IAP login; the function answers 403 to anything but a valid HMAC-signed, unexpired link.
  count = var.callback_enabled ? 1 : 0

  location = var.region
  service  = google_cloudfunctions2_function.callback[0].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_project_iam_member" "callback_datastore" {
  count = var.callback_enabled ? 1 : 0

  project = var.project
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.callback[0].email}"

  condition {
    title       = local.datastore_condition.title
    description = local.datastore_condition.description
    expression  = local.datastore_condition.expression
  }
}

resource "google_storage_bucket_iam_member" "callback_results" {
  for_each = local.callback_result_roles

  bucket = local.results_bucket
  role   = each.value
  member = "serviceAccount:${google_service_account.callback[0].email}"
}

resource "google_pubsub_topic_iam_member" "callback_publisher" {
  count = var.callback_enabled ? 1 : 0

  topic  = google_pubsub_topic.own[local.topics.events].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.callback[0].email}"
}

resource "google_secret_manager_secret_iam_member" "callback_resume_key" {
  for_each = local.callback_secrets

  secret_id = google_secret_manager_secret.block[each.value].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.callback[0].email}"
}
