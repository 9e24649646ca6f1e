# Concurrency limits declared with the flows (`limits = Limits({...})`; `kumoflow deploy`
# writes var.concurrency_limits): each key's limit document and its free slot documents, in the
# shape orchestrator/adapters/_firestore_limits.py keeps them. A slot's holder and lease belong
# to the runtime, so a slot document is created once and never rewritten (ignore_changes): an
# apply never takes a slot from the attempt holding it. A lower limit removes the slots above
# it (an attempt holding one runs to its end); the deploy's apply then sets each limit through
# the store as well, which hands raised slots to the attempts waiting.

locals {
  limits_collection = "${var.name_prefix}_limits"
  limit_slots = merge([
    for key, limit in var.concurrency_limits : {
      for i in range(limit) : "${key}/${i}" => { key = key, index = i }
    }
  ]...)
}

resource "google_firestore_document" "concurrency_limit" {
  for_each = var.concurrency_limits

  project     = var.project
  database    = google_firestore_database.db.name
  collection  = local.limits_collection
  document_id = each.key
  fields = jsonencode({
    key   = { stringValue = each.key }
    limit = { integerValue = tostring(each.value) }
  })
}

resource "google_firestore_document" "concurrency_slot" {
  for_each = local.limit_slots

  project     = var.project
  database    = google_firestore_database.db.name
  collection  = "${local.limits_collection}/${each.value.key}/slots"
  document_id = tostring(each.value.index)
  fields = jsonencode({
    key    = { stringValue = each.value.key }
    index  = { integerValue = tostring(each.value.index) }
    holder = { stringValue = "" } # free: what the adapter's `in` queries match (never null)
    waited = { booleanValue = false }
  })

  lifecycle {
    ignore_changes = [fields]
  }

  depends_on = [google_firestore_document.concurrency_limit]
}
