# kumoflow's own Firestore database (native mode, named var.firestore_database: a project's
# `(default)` database, an app's, is left alone; the functions open this one through
# KUMOFLOW_FIRESTORE_DATABASE) and what kumoflow's queries need (orchestrator/adapters/_firestore.py):
# a composite index for runs by flow, collection-group single-field indexes for the sweeper's
# deadline queries (timers, leases, stale dispatches), indexing exemptions for large string
# fields, and TTL policies that delete finished runs, their task records and dead letters.

resource "google_firestore_database" "db" {
  name                              = var.firestore_database
  location_id                       = local.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"

  depends_on = [google_project_service.apis]
}

resource "google_firestore_index" "composite" {
  for_each = local.wiring.firestore.indexes

  database    = google_firestore_database.db.name
  collection  = each.value.collection
  query_scope = each.value.query_scope

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path = fields.value.field_path
      order      = fields.value.order
    }
  }
}

resource "google_firestore_field" "indexed" {
  for_each = local.wiring.firestore.field_indexes

  database   = google_firestore_database.db.name
  collection = each.value.collection
  field      = each.value.field

  index_config {
    dynamic "indexes" {
      for_each = each.value.indexes
      content {
        order       = indexes.value.order
        query_scope = indexes.value.query_scope
      }
    }
  }
}

resource "google_firestore_field" "exempt" {
  for_each = local.wiring.firestore.exemptions

  database   = google_firestore_database.db.name
  collection = each.value.collection
  field      = each.value.field

  index_config {}
}

resource "google_firestore_field" "ttl" {
  for_each = local.wiring.firestore.ttl

  database   = google_firestore_database.db.name
  collection = each.value.collection
  field      = each.value.field

  # A TTL field needs no index of its own.
  index_config {}
  ttl_config {}
}
