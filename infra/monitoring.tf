# Alerts: nothing watches a serverless project, so Cloud Monitoring tells someone. Each policy
# reads a log-based metric of the functions' JSON logs (orchestrator/runtime/_logging.py) and
# notifies var.alert_notification_channels (email, Slack, PagerDuty, ... channels made outside
# this module). A run's events are also on the run-events topic (local.topics.finished,
# pubsub.tf) for subscribers of their own; the hooks and notification blocks of a flow are
# told by a worker (docs/howto/alerting.md).

locals {
  # Log entries of this installation's functions only (their services carry the prefix).
  function_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=starts_with(\"${var.name_prefix}-\")"
  alert_docs    = "kumoflow (${var.name_prefix}) in ${var.project}: see docs/howto/alerting.md."
}

resource "google_logging_metric" "run_failures" {
  name        = "${var.name_prefix}-run-failures"
  description = "Flow attempts of kumoflow that ended FAILED (one log line per announced end)."
  filter      = "${local.function_logs} AND jsonPayload.message=\"run ended\" AND jsonPayload.status=\"FAILED\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_logging_metric" "run_timeouts" {
  name        = "${var.name_prefix}-run-timeouts"
  description = "Runs of kumoflow failed by their flow timeout: they were older than it."
  filter      = "${local.function_logs} AND jsonPayload.message=\"run ended\" AND jsonPayload.reason=\"TimeoutError\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_logging_metric" "dead_letters" {
  name        = "${var.name_prefix}-dead-letters"
  description = "Dead letters kumoflow recorded (refused input, undeliverable messages, failed hooks): waiting in `kumoflow dlq list`."
  filter      = "${local.function_logs} AND (jsonPayload.message=~\"^rejected input\" OR jsonPayload.function=\"hooks\")"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

locals {
  alerts = {
    dead_letters = {
      title     = "dead letters waiting"
      metric    = google_logging_metric.dead_letters.name
      period    = "300s"
      threshold = 0
      what      = "kumoflow recorded dead letters: list them with `kumoflow dlq list`, redrive with `kumoflow dlq redrive`."
    }
    run_failures = {
      title     = "failed runs per hour"
      metric    = google_logging_metric.run_failures.name
      period    = "3600s"
      threshold = var.alert_failed_runs_per_hour
      what      = "More kumoflow runs failed in the last hour than var.alert_failed_runs_per_hour: `kumoflow runs list`, then `kumoflow runs show RUN`."
    }
    run_timeouts = {
      title     = "a run older than its timeout"
      metric    = google_logging_metric.run_timeouts.name
      period    = "300s"
      threshold = 0
      what      = "A kumoflow run outlived its flow timeout_seconds and was failed: see its tasks with `kumoflow runs show RUN`."
    }
  }
}

resource "google_monitoring_alert_policy" "kumoflow" {
  for_each = local.alerts

  display_name          = "${var.name_prefix}: ${each.value.title}"
  combiner              = "OR"
  enabled               = var.alerts_enabled
  notification_channels = var.alert_notification_channels

  conditions {
    display_name = each.value.title

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${each.value.metric}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = "0s"

      aggregations {
        alignment_period     = each.value.period
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    content   = "${each.value.what} ${local.alert_docs}"
    mime_type = "text/markdown"
  }

  depends_on = [google_project_service.apis]
}
