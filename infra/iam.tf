# Least privilege: each function's account gets only what its code calls (docs/deploy.md has
# the table). Publisher roles are per topic, from the wiring's `publishes`; bucket roles are on
# the bucket; Firestore access is roles/datastore.user on kumoflow's own database only (an IAM
# condition: other databases of the project, an app's `(default)` among them, stay out of reach).

locals {
  publisher_grants = merge([
    for name, fn in local.functions : {
      for topic in fn.publishes : "${name}/${topic}" => { function = name, topic = topic }
    }
  ]...)

  results_grants = merge([
    for name, fn in local.functions : {
      for role in fn.results_roles : "${name}/${role}" => { function = name, role = role }
    }
  ]...)

  trigger_bucket_names = toset([for t in var.gcs_triggers : t.bucket])
}

resource "google_project_iam_member" "datastore_user" {
  for_each = local.functions

  project = var.project
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.function[each.key].email}"

  condition {
    title       = local.datastore_condition.title
    description = local.datastore_condition.description
    expression  = local.datastore_condition.expression
  }
}

resource "google_pubsub_topic_iam_member" "function_publisher" {
  for_each = local.publisher_grants

  topic  = google_pubsub_topic.own[each.value.topic].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

resource "google_storage_bucket_iam_member" "results" {
  for_each = local.results_grants

  bucket = local.results_bucket
  role   = each.value.role
  member = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

# Tasks read the objects that started their run (GcsObject.uri).
resource "google_storage_bucket_iam_member" "worker_reads_trigger_buckets" {
  for_each = local.trigger_bucket_names

  bucket = var.create_trigger_buckets ? google_storage_bucket.trigger[each.value].name : each.value
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.function[local.wiring.worker_function].email}"
}

# What the tasks call, for every function that runs task code: the worker, and the sweeper,
# which polls deferred tasks' BigQuery jobs and Cloud Run executions (and cancels them).
resource "google_project_iam_member" "worker_extra" {
  for_each = {
    for pair in setproduct(local.wiring.task_code_functions, var.task_worker_roles) :
    "${pair[0]}/${pair[1]}" => { function = pair[0], role = pair[1] }
  }

  project = var.project
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

# The build account: write logs, push images, read the source bundle.
resource "google_project_iam_member" "build_logs" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_artifact_registry_repository_iam_member" "build_writer" {
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "build_source_reader" {
  bucket = local.source_bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}
