# Waits on Pub/Sub topics (orchestrator.waits.wait_for_event(pubsub_topic(...))): one pull
# subscription per topic, <name_prefix>-wait-<topic>, that the functions running wait checks (the
# worker and the sweeper) drain into the event mailbox in the results bucket. The topics are
# the flows' own (the deploy lists them from the flows: wait_topics in terraform.tfvars.json).

variable "wait_topics" {
  description = "Pub/Sub topics flows wait on with wait_for_event (they must exist): each gets the pull subscription <name_prefix>-wait-<topic> for the functions that run task code."
  type        = list(string)
  default     = []
}

resource "google_pubsub_subscription" "wait" {
  for_each = toset(var.wait_topics)

  project                    = var.project
  name                       = "${var.name_prefix}-wait-${each.value}"
  topic                      = "projects/${var.project}/topics/${each.value}"
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s" # a week: messages wait for the next check
  expiration_policy {
    ttl = "" # never expires while nobody waits
  }
}

resource "google_pubsub_subscription_iam_member" "wait_subscriber" {
  for_each = {
    for pair in setproduct(local.wiring.task_code_functions, var.wait_topics) :
    "${pair[0]}/${pair[1]}" => { function = pair[0], topic = pair[1] }
  }

  project      = var.project
  subscription = google_pubsub_subscription.wait[each.value.topic].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_service_account.function[each.value.function].email}"
}
