# The task job: a `runtime="job"` task's attempt runs as one execution of it, so no function
# waits for work longer than a function may run (the task worker starts the execution with the
# attempt's identity as env overrides and parks the attempt; the sweeper checks and cancels it).
# One per installation, from the task worker's own image (the one Cloud Functions built from
# the bundle: read from the function's Cloud Run service), as the task worker's account, with
# its env. Its entrypoint is the bundle's `python -m orchestrator.functions.job`, started
# through the buildpacks launcher so the image's Python and packages are on the path.

locals {
  task_job_name = "${var.name_prefix}-tasks"
  task_job      = "projects/${var.project}/locations/${var.region}/jobs/${local.task_job_name}"
  task_worker   = local.wiring.worker_function
}

data "google_cloud_run_v2_service" "task_worker" {
  name     = google_cloudfunctions2_function.fn[local.task_worker].service_config[0].service
  location = var.region
}

resource "google_cloud_run_v2_job" "tasks" {
  name                = local.task_job_name
  location            = var.region
  deletion_protection = false

  template {
    task_count = 1

    template {
      service_account = google_service_account.function[local.task_worker].email
      timeout         = "${var.task_job.timeout_s}s"
      # A failed execution fails its attempt; the task's own retries make a new attempt.
      max_retries = 0

      containers {
        image   = data.google_cloud_run_v2_service.task_worker.template[0].containers[0].image
        command = ["/cnb/lifecycle/launcher"]
        args    = ["python", "-m", "orchestrator.functions.job"]

        resources {
          limits = {
            cpu    = var.task_job.cpu
            memory = var.task_job.memory
          }
        }

        # The task worker's env (its database, bucket, prefix, granted topics), and the job's
        # own limit: a task's timeout_seconds bounds its attempt below it.
        dynamic "env" {
          for_each = merge(
            google_cloudfunctions2_function.fn[local.task_worker].service_config[0].environment_variables,
            { KUMOFLOW_JOB_TIMEOUT_S = tostring(var.task_job.timeout_s) },
          )
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }

  depends_on = [google_project_service.apis]
}

# The functions that run task code start executions with overrides (the worker) and read and
# cancel them (the worker and the sweeper): on this job only, not project-wide.
resource "google_cloud_run_v2_job_iam_member" "task_job_runner" {
  for_each = toset(local.wiring.task_code_functions)

  location = google_cloud_run_v2_job.tasks.location
  name     = google_cloud_run_v2_job.tasks.name
  role     = "roles/run.jobsExecutorWithOverrides"
  member   = "serviceAccount:${google_service_account.function[each.value].email}"
}
