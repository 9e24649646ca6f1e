output "function_urls" {
  description = "Each function's URL (internal ingress: reachable from Pub/Sub and Scheduler only)."
  value       = { for name, fn in google_cloudfunctions2_function.fn : name => fn.service_config[0].uri }
}

output "function_service_accounts" {
  description = "Each function's service account."
  value       = { for name, sa in google_service_account.function : name => sa.email }
}

output "push_service_account" {
  description = "The account whose OIDC tokens every push subscription carries."
  value       = google_service_account.push.email
}

output "topics" {
  description = "kumoflow's topics, by role; publish run requests to topics.runs, listen to topics.finished."
  value       = local.topics
}

output "trigger_topics" {
  description = "Topics of the flows' on_pubsub triggers."
  value       = sort(tolist(local.trigger_topics))
}

output "subscriptions" {
  description = "Every push subscription and the function it pushes to."
  value       = { for name, s in local.subscriptions : name => s.function }
}

output "results_bucket" {
  description = "Where task results (and cache entries) are stored."
  value       = local.results_bucket
}

output "scheduler_jobs" {
  description = "Cloud Scheduler jobs of the flows' schedules, and the sweeper's tick."
  value       = concat(sort(keys(var.schedules)), [google_cloud_scheduler_job.tick.name])
}

output "dashboard_url" {
  description = "The dashboard's URL behind IAP (null unless dashboard_enabled)."
  value       = var.dashboard_enabled ? google_cloud_run_v2_service.dashboard[0].uri : null
}

output "callback_url" {
  description = "The public callback function's URL (callback_enabled): resume_url(callback_url, run, node) makes a link it opens; null when it is off."
  value       = var.callback_enabled ? local.callback_url : null
}
