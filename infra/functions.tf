# One Cloud Run function (2nd gen) per functions-framework target in functions/main.py, each
# with its own service account, internal-only ingress (Pub/Sub and Scheduler are its only
# callers), no public invoker (only the push service account may invoke), min instances 0.

resource "google_service_account" "function" {
  for_each = local.functions

  account_id   = each.value.account_id
  display_name = "kumoflow ${each.key}"
  description  = "Runs the kumoflow ${each.key} function; roles in docs/deploy.md."
}

resource "google_service_account" "push" {
  account_id   = local.push_account_id
  display_name = "kumoflow Pub/Sub push"
  description  = "Signs the OIDC tokens of kumoflow's push subscriptions; may only invoke the functions."
}

resource "google_service_account" "build" {
  account_id   = local.build_account_id
  display_name = "kumoflow function builds"
  description  = "Cloud Build identity for building kumoflow's functions from source."
}

resource "google_storage_bucket_object" "source" {
  # Content-addressed: an unchanged bundle keeps its name, so nothing is rebuilt.
  name   = "${var.name_prefix}-source-${filemd5(local.source_archive)}.zip"
  bucket = local.source_bucket
  source = local.source_archive
}

resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption; a CMEK key is billed monthly and breaks $0 at idle.
  repository_id = "${var.name_prefix}-functions"
  location      = var.region
  format        = "DOCKER"
  description   = "Images Cloud Build makes of kumoflow's functions; old ones are cleaned up."

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 3
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "604800s"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloudfunctions2_function" "fn" {
  for_each = local.functions

  name        = each.value.service
  location    = var.region
  description = "kumoflow ${each.key}: ${each.value.topic}"

  build_config {
    runtime           = var.python_runtime
    entry_point       = each.value.entry_point
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
    min_instance_count               = local.settings[each.key].min_instances
    max_instance_count               = local.settings[each.key].max_instances
    max_instance_request_concurrency = local.settings[each.key].concurrency
    available_cpu                    = local.settings[each.key].cpu
    available_memory                 = local.settings[each.key].memory
    timeout_seconds                  = local.settings[each.key].timeout_s
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function[each.key].email

    environment_variables = merge(var.environment, {
      GOOGLE_CLOUD_PROJECT          = var.project
      KUMOFLOW_NAME_PREFIX          = var.name_prefix
      KUMOFLOW_FIRESTORE_DATABASE   = var.firestore_database
      KUMOFLOW_RESULTS_BUCKET       = local.results_bucket
      KUMOFLOW_PUSH_AUTH            = "oidc"
      KUMOFLOW_PUSH_AUDIENCE        = local.urls[each.key]
      KUMOFLOW_PUSH_SERVICE_ACCOUNT = google_service_account.push.email
      KUMOFLOW_FUNCTION_TIMEOUT_S   = tostring(local.settings[each.key].timeout_s)
      KUMOFLOW_RETENTION_DAYS       = tostring(var.retention_days)
      KUMOFLOW_MAX_MAP_WIDTH        = tostring(var.max_map_width)
      KUMOFLOW_PUBLISHES            = join(",", each.value.publishes)
      KUMOFLOW_TASK_JOB             = local.task_job # runtime="job" tasks (jobs.tf)
      LOG_EXECUTION_ID              = "true"
      }, each.key == local.wiring.worker_function ? {
      # The earlier bundles' requests it leaves to their kept workers (code.tf).
      (local.wiring.retained_env) = join(",", sort(keys(var.retained_code)))
    } : {})
  }

  lifecycle {
    precondition {
      # A push waits for the handler: an attempt must end by its ack deadline, or Pub/Sub
      # redelivers a message that is still being worked on (the worker's leases assume it).
      condition     = local.settings[each.key].timeout_s <= each.value.ack_deadline_s
      error_message = "timeout_s of ${each.key} must be at most its ack deadline (${each.value.ack_deadline_s} s)."
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build_logs,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_source_reader,
    # A kept worker takes its bundle's requests before the new worker leaves them (code.tf).
    google_pubsub_subscription.retained,
  ]
}

# Only the push service account may invoke a function: no allUsers, no allAuthenticatedUsers.
resource "google_cloud_run_service_iam_member" "push_invoker" {
  for_each = local.functions

  location = var.region
  service  = google_cloudfunctions2_function.fn[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push.email}"
}

check "function_urls" {
  assert {
    condition = alltrue([
      for name, fn in google_cloudfunctions2_function.fn : fn.service_config[0].uri == local.urls[name]
    ])
    error_message = "A function's URL is not its deterministic run.app URL: push audiences would not match."
  }
}
