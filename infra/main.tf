# kumoflow on Google Cloud: Cloud Run functions (2nd gen) reached by Pub/Sub push subscriptions
# with OIDC tokens, Firestore for DAG state, a results bucket, Cloud Scheduler for schedules and
# the sweeper's tick. Names, topics, subscriptions, ack deadlines, retry and dead-letter policies
# and Firestore indexes come from wiring.json, generated from the code (orchestrator.cloud.wiring,
# over orchestrator/local/_wiring.py and orchestrator/runtime/_topics.py): the local stack
# applies the same declarations to the emulators.

locals {
  wiring = jsondecode(file("${path.module}/wiring.json"))
  retry  = local.wiring.retry

  # Every name in wiring.json starts with "kumoflow"; var.name_prefix takes its place, so two
  # installations (two prefixes) share a project. The functions get the prefix too
  # (KUMOFLOW_NAME_PREFIX) and publish to the topics named here.
  topics = { for role, t in local.wiring.topics : role => "${var.name_prefix}${trimprefix(t, "kumoflow")}" }
  functions = {
    for name, fn in local.wiring.functions : name => merge(fn, {
      service      = "${var.name_prefix}${trimprefix(fn.service, "kumoflow")}"
      subscription = "${var.name_prefix}${trimprefix(fn.subscription, "kumoflow")}"
      account_id   = "${var.name_prefix}${trimprefix(fn.account_id, "kumoflow")}"
      topic        = "${var.name_prefix}${trimprefix(fn.topic, "kumoflow")}"
      publishes    = [for t in fn.publishes : "${var.name_prefix}${trimprefix(t, "kumoflow")}"]
    })
  }
  own_trigger_topics          = [for t in local.wiring.trigger_topics : "${var.name_prefix}${trimprefix(t, "kumoflow")}"]
  trigger_subscription_prefix = "${var.name_prefix}${trimprefix(local.wiring.trigger_subscription_prefix, "kumoflow")}"
  tick_job                    = "${var.name_prefix}${trimprefix(local.wiring.tick.job, "kumoflow")}"
  tick_topic                  = "${var.name_prefix}${trimprefix(local.wiring.tick.topic, "kumoflow")}"
  push_account_id             = "${var.name_prefix}${trimprefix(local.wiring.push_account_id, "kumoflow")}"
  build_account_id            = "${var.name_prefix}${trimprefix(local.wiring.build_account_id, "kumoflow")}"

  # Buckets: the ones given (existing), else the ones created here (storage.tf).
  results_bucket     = coalesce(var.results_bucket, one(google_storage_bucket.results[*].name))
  source_bucket      = coalesce(var.source_bucket, one(google_storage_bucket.source[*].name))
  firestore_location = var.firestore_location != "" ? var.firestore_location : var.region
  scheduler_region   = var.scheduler_region != "" ? var.scheduler_region : var.region
  source_archive     = startswith(var.source_archive, "/") ? var.source_archive : "${path.root}/${var.source_archive}"

  # Only kumoflow's own database: the condition of every function's (and the dashboard's)
  # roles/datastore.user, in the form Firestore documents for per-database access.
  datastore_condition = {
    title       = "${var.name_prefix}-database-only"
    description = "Only kumoflow's Firestore database ${var.firestore_database}."
    expression  = "resource.name == \"projects/${var.project}/databases/${var.firestore_database}\""
  }

  # Per function: defaults, the wiring's timeout, then the caller's overrides.
  settings = {
    for name, fn in local.functions : name => {
      min_instances = coalesce(try(var.functions[name].min_instances, null), var.function_defaults.min_instances)
      max_instances = coalesce(try(var.functions[name].max_instances, null), var.function_defaults.max_instances)
      concurrency   = coalesce(try(var.functions[name].concurrency, null), var.function_defaults.concurrency)
      cpu           = coalesce(try(var.functions[name].cpu, null), var.function_defaults.cpu)
      memory        = coalesce(try(var.functions[name].memory, null), var.function_defaults.memory)
      timeout_s     = coalesce(try(var.functions[name].timeout_s, null), fn.timeout_s)
    }
  }

  # Cloud Run's deterministic URL (https://SERVICE-PROJECT_NUMBER.REGION.run.app): the push
  # audience and each function's KUMOFLOW_PUSH_AUDIENCE, known before the function exists.
  urls = {
    for name, fn in local.functions :
    name => "https://${fn.service}-${data.google_project.this.number}.${var.region}.run.app"
  }

  apis = concat(var.dashboard_enabled ? ["iap.googleapis.com"] : [], [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])
}

data "google_project" "this" {
  project_id = var.project
}

resource "google_project_service" "apis" {
  for_each = toset(local.apis)

  service            = each.value
  disable_on_destroy = false
}
