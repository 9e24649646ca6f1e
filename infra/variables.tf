# Written by `kumoflow deploy FILE --target gcp` into terraform.tfvars.json: project, region,
# source_archive and the triggers. Everything else has a default; override it there or with -var.

variable "project" {
  description = "Google Cloud project id to deploy kumoflow into (several installations fit, each with its own name_prefix and firestore_database)."
  type        = string
}

variable "name_prefix" {
  description = "Starts the name of every resource this module names (topics, subscriptions, functions, service accounts, Scheduler jobs, buckets it creates, secrets, the Artifact Registry repository, the dashboard): a second installation in the same project takes another."
  type        = string
  default     = "kumoflow"

  validation {
    # Service account ids are 6-30 characters: "<prefix>-dead-letter-sink" is the longest.
    condition     = can(regex("^[a-z]([a-z0-9-]{0,11}[a-z0-9])?$", var.name_prefix))
    error_message = "name_prefix: 1-13 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "firestore_database" {
  description = "Id of kumoflow's own Firestore database, created here beside any other (an app's (default) is left alone). Every function's Firestore role is limited to it."
  type        = string
  default     = "kumoflow"

  validation {
    # A named database only: (default) may hold someone else's data and is not deletable-safe.
    condition     = can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_database))
    error_message = "firestore_database: 4-63 lowercase letters, digits and hyphens, starting with a letter; (default) is not accepted."
  }
}

variable "region" {
  description = "Region of the functions, buckets, Artifact Registry repository and Scheduler jobs."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "Firestore location (a region such as asia-northeast1, or a multi-region such as nam5). Empty: var.region."
  type        = string
  default     = ""
}

variable "source_archive" {
  description = "The function source bundle (zip) written by `kumoflow deploy`; relative paths are relative to this root module."
  type        = string
  default     = "function-source.zip"
}

variable "python_runtime" {
  description = "Cloud Run functions runtime of every function."
  type        = string
  default     = "python312"
}

variable "function_defaults" {
  description = "Settings of every function: min/max instances, concurrent requests per instance, vCPU and memory. min_instances 0 is what makes idle cost $0."
  type = object({
    min_instances = optional(number, 0)
    max_instances = optional(number, 20)
    concurrency   = optional(number, 16)
    cpu           = optional(string, "1")
    memory        = optional(string, "512Mi")
  })
  default = {}

  validation {
    condition     = var.function_defaults.concurrency >= 1 && var.function_defaults.concurrency <= 1000
    error_message = "concurrency must be between 1 and 1000 (more than 1 needs at least 1 vCPU)."
  }
}

variable "functions" {
  description = "Per-function overrides of function_defaults and of the timeout (seconds), keyed by function (run_starter, task_worker, orchestrator, sweeper, dead_letter_sink)."
  type = map(object({
    min_instances = optional(number)
    max_instances = optional(number)
    concurrency   = optional(number)
    cpu           = optional(string)
    memory        = optional(string)
    timeout_s     = optional(number)
  }))
  default = {}
}

variable "task_job" {
  description = "The task job that runtime=\"job\" tasks run in: vCPU, memory, and its timeout in seconds (24 h by default; Cloud Run allows up to 7 days). `kumoflow deploy` refuses a job-run task whose timeout_seconds exceeds 24 h."
  type = object({
    cpu       = optional(string, "1")
    memory    = optional(string, "2Gi")
    timeout_s = optional(number, 86400)
  })
  default = {}

  validation {
    condition     = var.task_job.timeout_s >= 1 && var.task_job.timeout_s <= 604800
    error_message = "task_job.timeout_s must be between 1 and 604800 (Cloud Run jobs' 7-day limit)."
  }
}

variable "environment" {
  description = "Extra environment variables for every function (for the flows' own settings; never secrets: use Secret Manager)."
  type        = map(string)
  default     = {}
}

variable "results_bucket" {
  description = "An existing bucket for results (used as it is: its lifecycle and retention stay its owner's). Empty: this module creates \"<project>-<name_prefix>-results\"."
  type        = string
  default     = ""
}

variable "source_bucket" {
  description = "An existing bucket for the function source bundle. Empty: this module creates \"<project>-<name_prefix>-source\"."
  type        = string
  default     = ""
}

variable "results_retention_days" {
  description = "Results (and cache entries) older than this are deleted by a lifecycle rule (on the results bucket this module creates)."
  type        = number
  default     = 30
}

variable "retention_days" {
  description = "Firestore TTL: finished runs, their task records and dead letters are deleted this many days after their last write. Keep it above your longest run."
  type        = number
  default     = 30
}

variable "max_map_width" {
  description = "The widest run-time map (a .map over a task's result): a longer list fails its map node with a MapError. Every function gets the same value."
  type        = number
  default     = 10000
}

variable "tick_schedule" {
  description = "Cron of the sweeper's tick (retry delays, timeouts, expired leases): the finest timer resolution in the cloud."
  type        = string
  default     = "* * * * *"
}

variable "timer_queue" {
  description = "The timers' Cloud Tasks queue: its dispatch rate limits, attempts per push (the tick fires a timer whose push gave up) and the share of task operations logged."
  type = object({
    max_dispatches_per_second = optional(number, 100)
    max_concurrent_dispatches = optional(number, 100)
    max_attempts              = optional(number, 20)
    log_sampling_ratio        = optional(number, 0)
  })
  default = {}
}

variable "alert_notification_channels" {
  description = "Cloud Monitoring notification channels (projects/P/notificationChannels/ID) the alert policies notify: dead letters waiting, failed runs per hour, a run older than its timeout. Empty: the policies open incidents that notify nobody."
  type        = list(string)
  default     = []
}

variable "alerts_enabled" {
  description = "Whether the alert policies are on."
  type        = bool
  default     = true
}

variable "alert_failed_runs_per_hour" {
  description = "The failed-runs policy fires when more runs than this fail in an hour (0: any failure)."
  type        = number
  default     = 0
}

variable "notify" {
  description = "Notification blocks (KIND/NAME, saved with `kumoflow block`) told of every flow's failures, beside those a flow declares (KUMOFLOW_NOTIFY)."
  type        = list(string)
  default     = []
}

variable "scheduler_region" {
  description = "Region of the Cloud Scheduler jobs. Empty: var.region."
  type        = string
  default     = ""
}

variable "task_worker_roles" {
  description = "Extra project roles for the accounts that run task code, the task_worker's and the sweeper's (it polls deferred tasks' BigQuery jobs and Cloud Run executions): whatever your tasks call (e.g. roles/bigquery.jobUser)."
  type        = list(string)
  default     = []
}

variable "gcs_triggers" {
  description = "GCS notifications (OBJECT_FINALIZE) into <name_prefix>-gcs-notifications, one per bucket and prefix of every on_gcs_finalize. The buckets must exist unless create_trigger_buckets."
  type = list(object({
    bucket = string
    prefix = string
  }))
  default = []
}

variable "create_trigger_buckets" {
  description = "Create the buckets of gcs_triggers (hardened like the results bucket) instead of expecting them to exist."
  type        = bool
  default     = false
}

variable "pubsub_triggers" {
  description = "Topics of every on_pubsub: each gets a push subscription into the run starter."
  type        = list(string)
  default     = []
}

variable "pubsub_trigger_filters" {
  description = "Pub/Sub filter of a trigger topic's subscription (the attributes its flows' on_pubsub(attributes=...) require), by topic; a topic not listed takes every message."
  type        = map(string)
  default     = {}
}

variable "create_trigger_topics" {
  description = "Create the topics of pubsub_triggers (false: they exist already, e.g. owned by another team)."
  type        = bool
  default     = true
}

variable "schedules" {
  description = "Cloud Scheduler jobs of every on_schedule, keyed by job name: cron, IANA time zone and the flow it starts."
  type = map(object({
    cron      = string
    time_zone = string
    flow      = string
  }))
  default = {}
}

variable "flows" {
  description = "The flows this deploy registers (names only, informational: versions live in Firestore)."
  type        = list(string)
  default     = []
}

variable "dashboard_enabled" {
  description = "Deploy `kumoflow ui` as a Cloud Run service behind IAP (dashboard.tf). Off: nothing of it exists."
  type        = bool
  default     = false
}

variable "dashboard_image" {
  description = "Container image of the dashboard: Python with kumoflow installed (docs/deploy.md, \"The dashboard\"). Required with dashboard_enabled."
  type        = string
  default     = ""
}

variable "dashboard_operators" {
  description = "Emails (alice@example.com) that may retry and cancel runs in the dashboard, as proven by IAP's signed assertion; they pass IAP too. Empty: the dashboard is read-only."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.dashboard_operators : can(regex("^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}$", e))])
    error_message = "dashboard_operators are plain emails (alice@example.com), without a user: prefix."
  }
}

variable "dashboard_viewers" {
  description = "Principals IAP lets read the dashboard: user:EMAIL, group:EMAIL or domain:DOMAIN."
  type        = list(string)
  default     = []

  validation {
    # People and groups only, never everyone: the dashboard shows every run's parameters and logs.
    condition     = alltrue([for p in var.dashboard_viewers : can(regex("^(user|group):[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}$|^domain:[A-Za-z0-9.-]+\\.[A-Za-z]{2,}$", p))])
    error_message = "dashboard_viewers are user:EMAIL, group:EMAIL or domain:DOMAIN: people and groups, never everyone."
  }
}

variable "block_secrets" {
  description = "Secret Manager secrets of the blocks' secret fields, keyed by secret id without the name prefix (written by kumoflow deploy: the blocks the flows load, and --block ones): the block (KIND/NAME) and field each holds. `kumoflow block save` adds their versions."
  type = map(object({
    block = string
    field = string
  }))
  default = {}
}

variable "protect_block_secrets" {
  description = "Refuse to destroy a block's secret (its key exists nowhere else): a deploy that drops the last flow loading a block then fails until you remove the secret from the state yourself (docs/deploy.md)."
  type        = bool
  default     = true
}

variable "retained_code" {
  description = "Earlier code bundles that runs still use, by digest: the zip of each (kept by `kumoflow deploy`). Each gets a task worker of its own until its runs end; `kumoflow deploy` sets it."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for digest in keys(var.retained_code) : can(regex("^[0-9a-f]{12}$", digest))])
    error_message = "retained_code keys are 12-hex-digit code digests, as kumoflow deploy writes them."
  }
}

variable "concurrency_limits" {
  description = "Concurrency limits by key (`@task(concurrency=KEY)`): how many attempts of each key run at once. `kumoflow deploy` writes the ones the flows' files declare (Limits); `kumoflow limits set` changes one between deploys."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for key in keys(var.concurrency_limits) : can(regex("^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$", key))])
    error_message = "concurrency_limits keys: 1-100 letters, digits or . _ : -, starting with a letter or digit."
  }

  validation {
    condition     = alltrue([for limit in values(var.concurrency_limits) : limit >= 1 && floor(limit) == limit])
    error_message = "concurrency_limits values are whole numbers >= 1."
  }
}

variable "callback_enabled" {
  description = "Deploy the public function that opens signed pause links (callback.tf): pass its URL (output callback_url) to resume_url. Off: nothing of it exists."
  type        = bool
  default     = false
}

variable "callback_resume_key_block" {
  description = "The ResumeKey block whose key signs the links (`kumoflow block save`, or ResumeKey(...).save(NAME)); the callback function may read its secret only."
  type        = string
  default     = "kumoflow-resume"
}
