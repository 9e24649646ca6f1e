# Runs keep their code across a deploy (orchestrator/local/_code.py says why this mechanism):
# a run's task requests carry its flow's code bundle (the code_attribute in wiring.json). Each
# earlier bundle that runs still use gets a task worker of its own, built from that bundle's
# zip, with the task worker's account and settings, and a push subscription that takes only
# that bundle's requests. The current task worker leaves those to it (retained_env). `kumoflow
# deploy` drops a bundle from retained_code once its runs have ended, and this plan deletes it.

locals {
  worker = local.functions[local.wiring.worker_function]
  retained = {
    for digest, zip in var.retained_code : digest => {
      service = "${local.worker.service}-${digest}"
      archive = startswith(zip, "/") ? zip : "${path.root}/${zip}"
    }
  }
  retained_urls = {
    for digest, r in local.retained :
    digest => "https://${r.service}-${data.google_project.this.number}.${var.region}.run.app"
  }
}

resource "google_storage_bucket_object" "retained_source" {
  for_each = local.retained

  name   = "${var.name_prefix}-source-${filemd5(each.value.archive)}.zip"
  bucket = local.source_bucket
  source = each.value.archive
}

resource "google_cloudfunctions2_function" "retained" {
  for_each = local.retained

  name        = each.value.service
  location    = var.region
  description = "kumoflow task worker kept for runs on code ${each.key}"

  build_config {
    runtime           = var.python_runtime
    entry_point       = local.worker.entry_point
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = local.source_bucket
        object = google_storage_bucket_object.retained_source[each.key].name
      }
    }
  }

  service_config {
    min_instance_count               = 0
    max_instance_count               = local.settings[local.wiring.worker_function].max_instances
    max_instance_request_concurrency = local.settings[local.wiring.worker_function].concurrency
    available_cpu                    = local.settings[local.wiring.worker_function].cpu
    available_memory                 = local.settings[local.wiring.worker_function].memory
    timeout_seconds                  = local.settings[local.wiring.worker_function].timeout_s
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function[local.wiring.worker_function].email

    environment_variables = merge(var.environment, {
      GOOGLE_CLOUD_PROJECT          = var.project
      KUMOFLOW_NAME_PREFIX          = var.name_prefix
      KUMOFLOW_FIRESTORE_DATABASE   = var.firestore_database
      KUMOFLOW_RESULTS_BUCKET       = local.results_bucket
      KUMOFLOW_PUSH_AUTH            = "oidc"
      KUMOFLOW_PUSH_AUDIENCE        = local.retained_urls[each.key]
      KUMOFLOW_PUSH_SERVICE_ACCOUNT = google_service_account.push.email
      KUMOFLOW_FUNCTION_TIMEOUT_S   = tostring(local.settings[local.wiring.worker_function].timeout_s)
      KUMOFLOW_RETENTION_DAYS       = tostring(var.retention_days)
      KUMOFLOW_MAX_MAP_WIDTH        = tostring(var.max_map_width)
      KUMOFLOW_PUBLISHES            = join(",", local.worker.publishes)
      KUMOFLOW_SERVES_CODE          = each.key
      KUMOFLOW_TIMER_QUEUE          = google_cloud_tasks_queue.timers.id
      KUMOFLOW_TIMER_URL            = local.urls[local.wiring.timers.target]
      KUMOFLOW_TIMER_INVOKER        = google_service_account.push.email
      KUMOFLOW_NOTIFY               = join(",", var.notify)
      LOG_EXECUTION_ID              = "true"
    })
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build_logs,
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_source_reader,
  ]
}

resource "google_cloud_run_service_iam_member" "retained_invoker" {
  for_each = local.retained

  location = var.region
  service  = google_cloudfunctions2_function.retained[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push.email}"
}

resource "google_pubsub_subscription" "retained" {
  for_each = local.retained

  name                       = "${local.worker.subscription}-${each.key}"
  topic                      = "projects/${var.project}/topics/${local.worker.topic}"
  ack_deadline_seconds       = local.worker.ack_deadline_s
  message_retention_duration = "604800s"
  filter                     = "attributes.${local.wiring.code_attribute} = \"${each.key}\""

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "${local.retry.min_backoff_s}s"
    maximum_backoff = "${local.retry.max_backoff_s}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.own[local.topics.dead_letter].id
    max_delivery_attempts = local.retry.max_delivery_attempts
  }

  push_config {
    push_endpoint = "${local.retained_urls[each.key]}/projects/${var.project}/topics/${local.worker.topic}"

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.retained_urls[each.key]
    }
  }

  depends_on = [google_pubsub_topic.own, google_cloud_run_service_iam_member.retained_invoker]
}
