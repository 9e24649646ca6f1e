# Buckets: uniform bucket-level access, public access prevention, no versioning (results are
# written once, with if_generation_match=0), no soft delete (deleted objects would be billed for
# a week: $0 at idle), a lifecycle rule for old results. Each is created only when no existing
# bucket is given (var.results_bucket, var.source_bucket).

resource "google_storage_bucket" "results" {
  #checkov:skip=CKV_GCP_78:Results are write-once (generation preconditions); versions would only keep dead cache entries.
  #checkov:skip=CKV_GCP_62:Access logs would need a second bucket and billed storage; Cloud Audit Logs cover data access if enabled.
  count = var.results_bucket == "" ? 1 : 0

  name                        = "${var.project}-${var.name_prefix}-results"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = false
  }

  soft_delete_policy {
    retention_duration_seconds = 0
  }

  lifecycle_rule {
    condition {
      age = var.results_retention_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_78:Bundles are content-addressed objects; a changed bundle is a new object, never an overwrite.
  #checkov:skip=CKV_GCP_62:Access logs would need a second bucket and billed storage; Cloud Audit Logs cover data access if enabled.
  count = var.source_bucket == "" ? 1 : 0

  name                        = "${var.project}-${var.name_prefix}-source"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = false
  }

  soft_delete_policy {
    retention_duration_seconds = 0
  }

  depends_on = [google_project_service.apis]
}

# Only with create_trigger_buckets: the buckets of on_gcs_finalize usually hold someone's data.
resource "google_storage_bucket" "trigger" {
  #checkov:skip=CKV_GCP_78:Uploads that start runs; versioning is the data owner's choice, off by default here.
  #checkov:skip=CKV_GCP_62:Access logs would need a second bucket and billed storage; Cloud Audit Logs cover data access if enabled.
  for_each = var.create_trigger_buckets ? local.trigger_bucket_names : toset([])

  name                        = each.value
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = false
  }

  depends_on = [google_project_service.apis]
}
