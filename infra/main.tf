# kumoflow on Google Cloud: Cloud Run functions (2nd gen) reached by Pub/Sub push subscriptions
# with OIDC tokens, Firestore for DAG state, a results bucket, Cloud Scheduler for schedules and
# the sweeper's tick. Names, topics, subscriptions, ack deadlines, retry and dead-letter policies
# and Firestore indexes come from wiring.json, generated from the code (orchestrator.cloud.wiring,
# over orchestrator/local/_wiring.py and orchestrator/runtime/_topics.py): the local stack
# applies the same declarations to the emulators.

locals {
  wiring    = jsondecode(file("${path.module}/wiring.json"))
  topics    = local.wiring.topics
  functions = local.wiring.functions
  retry     = local.wiring.retry

  results_bucket     = var.results_bucket != "" ? var.results_bucket : "${var.project}-kumoflow-results"
  source_bucket      = "${var.project}-kumoflow-source"
  firestore_location = var.firestore_location != "" ? var.firestore_location : var.region
  scheduler_region   = var.scheduler_region != "" ? var.scheduler_region : var.region
  source_archive     = startswith(var.source_archive, "/") ? var.source_archive : "${path.root}/${var.source_archive}"

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
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
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
