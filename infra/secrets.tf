# Blocks' secret fields (a GcpCredentials key) live in Secret Manager: one secret per field of
# every block a deploy knows of (var.block_secrets), named as the block store names it
# (orchestrator/adapters/_names.py: <name_prefix>-block-KIND-NAME-FIELD). `kumoflow block save`
# adds versions; only the functions that load blocks may read them, secret by secret.

locals {
  # Blocks are loaded where task code runs: the worker (a task's arguments) and the sweeper (a
  # deferred task's checks and cancels); never by the starter, the orchestrator or the sink.
  secret_grants = {
    for pair in setproduct(keys(var.block_secrets), local.wiring.task_code_functions) :
    "${pair[0]}/${pair[1]}" => { secret = pair[0], function = pair[1] }
  }
}

resource "google_secret_manager_secret" "block" {
  for_each = var.block_secrets

  secret_id           = "${var.name_prefix}-${each.key}"
  deletion_protection = var.protect_block_secrets

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "block_accessor" {
  for_each = local.secret_grants

  secret_id = google_secret_manager_secret.block[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.value.function].email}"
}
