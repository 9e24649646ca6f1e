# Timers fire on time: every outbox timer (retry delays, run timeouts, deferred checks' polls,
# waits) is also a Cloud Task, pushed at its due time to the sweeper with an OIDC token of the
# push service account, which fires that one timer (orchestrator.runtime.sweeper.fire_timer).
# The sweeper's tick (Cloud Scheduler, every minute) stays the rescue path: a task that never
# arrives leaves its timer to the tick; one that arrives twice or early changes nothing.
# Cloud Tasks counts as internal traffic for the functions' internal-only ingress.

locals {
  timer_queue = "${var.name_prefix}${trimprefix(local.wiring.timers.queue, "kumoflow")}"
  # Every function that commits runs' state adds timers, so arms them.
  arming_functions = toset(local.wiring.timers.arming_functions)
}

resource "google_cloud_tasks_queue" "timers" {
  name     = local.timer_queue
  location = var.region

  rate_limits {
    max_dispatches_per_second = var.timer_queue.max_dispatches_per_second
    max_concurrent_dispatches = var.timer_queue.max_concurrent_dispatches
  }

  # A push answered non-2xx (a timer not due yet, the store away) is tried again soon; past
  # max_retry_duration the task is dropped and the tick fires the timer.
  retry_config {
    max_attempts       = var.timer_queue.max_attempts
    min_backoff        = "0.1s"
    max_backoff        = "60s"
    max_doublings      = 10
    max_retry_duration = "3600s"
  }

  stackdriver_logging_config {
    sampling_ratio = var.timer_queue.log_sampling_ratio
  }

  depends_on = [google_project_service.apis]
}

# The functions that arm timers may create tasks in this queue only...
resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = local.arming_functions

  name     = google_cloud_tasks_queue.timers.name
  location = google_cloud_tasks_queue.timers.location
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

# ...and may have Cloud Tasks sign the push's OIDC token as the push account (which alone may
# invoke the functions: functions.tf), on that account only.
resource "google_service_account_iam_member" "timer_act_as_push" {
  for_each = local.arming_functions

  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.function[each.key].email}"
}
