# The flows' triggers (terraform.tfvars.json, written by `kumoflow deploy --target gcp`):
# GCS notifications into the notification topic, push subscriptions for on_pubsub topics
# (pubsub.tf), Cloud Scheduler jobs for on_schedule publishing what the local scheduler
# publishes, and the sweeper's tick.

data "google_storage_project_service_account" "gcs" {
  project = var.project
}

resource "google_pubsub_topic_iam_member" "gcs_publisher" {
  topic  = google_pubsub_topic.own[local.topics.gcs_notifications].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_storage_notification" "finalize" {
  for_each = { for t in var.gcs_triggers : "${t.bucket}/${t.prefix}" => t }

  bucket             = var.create_trigger_buckets ? google_storage_bucket.trigger[each.value.bucket].name : each.value.bucket
  object_name_prefix = each.value.prefix != "" ? each.value.prefix : null
  payload_format     = "JSON_API_V1"
  event_types        = ["OBJECT_FINALIZE"]
  topic              = google_pubsub_topic.own[local.topics.gcs_notifications].id

  depends_on = [google_pubsub_topic_iam_member.gcs_publisher]
}

resource "google_cloud_scheduler_job" "schedule" {
  for_each = var.schedules

  # The job's key (kumoflow-FLOW-N) rides in its attribute: the run starter matches it to the
  # flow whatever the prefix.
  name        = "${var.name_prefix}${trimprefix(each.key, "kumoflow")}"
  description = "kumoflow: starts flow ${each.value.flow}"
  region      = local.scheduler_region
  schedule    = each.value.cron
  time_zone   = each.value.time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.own[local.topics.schedules].id
    data       = base64encode(local.wiring.schedule_data)
    attributes = { (local.wiring.job_attribute) = each.key }
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloud_scheduler_job" "tick" {
  name        = local.tick_job
  description = "kumoflow: ticks the sweeper (retry delays, timeouts, expired leases)"
  region      = local.scheduler_region
  schedule    = var.tick_schedule
  time_zone   = "Etc/UTC"

  pubsub_target {
    topic_name = google_pubsub_topic.own[local.tick_topic].id
    data       = base64encode(local.wiring.tick.data)
  }

  depends_on = [google_project_service.apis]
}
