# Topics, and one push subscription per function and per trigger topic. Every push carries an
# OIDC token of the push service account with audience = the function's URL (checked by
# functions/_auth.py and by Cloud Run's invoker IAM); retries back off; after
# max_delivery_attempts a message goes to the dead-letter topic, whose sink records it.

locals {
  # kumoflow's own topics (all of Topics plus the GCS notification topic).
  own_topics = toset(values(local.topics))

  trigger_topics = toset(var.pubsub_triggers)

  # Function subscriptions (wiring) and the run starter's trigger subscriptions.
  subscriptions = merge(
    {
      for name, fn in local.functions : fn.subscription => {
        topic       = fn.topic
        function    = name
        ack_s       = fn.ack_deadline_s
        dead_letter = fn.dead_letter
        filter      = null
      }
    },
    {
      for topic in setunion(local.own_trigger_topics, local.trigger_topics) :
      "${local.trigger_subscription_prefix}${topic}" => {
        topic       = topic
        function    = local.wiring.trigger_function
        ack_s       = local.functions[local.wiring.trigger_function].ack_deadline_s
        dead_letter = true
        # The flows' attribute filters pushed down (the run starter checks them again).
        filter = lookup(var.pubsub_trigger_filters, topic, null)
      }
    },
  )

  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "own" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; a CMEK key is billed monthly and breaks $0 at idle.
  for_each = local.own_topics

  name                       = each.value
  message_retention_duration = "86400s"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "trigger" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; a CMEK key is billed monthly and breaks $0 at idle.
  for_each = var.create_trigger_topics ? local.trigger_topics : toset([])

  name = each.value

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "push" {
  for_each = local.subscriptions

  name                       = each.key
  topic                      = "projects/${var.project}/topics/${each.value.topic}"
  ack_deadline_seconds       = each.value.ack_s
  message_retention_duration = "604800s"
  filter                     = each.value.filter

  expiration_policy {
    ttl = "" # never expires while idle
  }

  retry_policy {
    minimum_backoff = "${local.retry.min_backoff_s}s"
    maximum_backoff = "${local.retry.max_backoff_s}s"
  }

  dynamic "dead_letter_policy" {
    for_each = each.value.dead_letter ? [1] : []
    content {
      dead_letter_topic     = google_pubsub_topic.own[local.topics.dead_letter].id
      max_delivery_attempts = local.retry.max_delivery_attempts
    }
  }

  push_config {
    # The topic in the path gives functions-framework the CloudEvent `source` it derives.
    push_endpoint = "${local.urls[each.value.function]}/projects/${var.project}/topics/${each.value.topic}"

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.urls[each.value.function]
    }
  }

  depends_on = [
    google_pubsub_topic.own,
    google_pubsub_topic.trigger,
    google_cloud_run_service_iam_member.push_invoker,
  ]
}

# Pub/Sub's service agent forwards undeliverable messages: it publishes to the dead-letter
# topic and acknowledges on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.own[local.topics.dead_letter].name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = { for name, s in local.subscriptions : name => s if s.dead_letter }

  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# Projects created before April 2021 need this for OIDC push; scoped to the push account only.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}
