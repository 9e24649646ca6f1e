terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 7.21 is the first google (not google-beta) with iap_enabled on google_cloud_run_v2_service
      # (the dashboard's direct IAP; 6.x has it in google-beta only). The 7.0 upgrade guide's
      # breaking changes miss everything here (storage_notification's topic is a topic's id).
      version = ">= 7.21.0, < 8.0.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region

  default_labels = {
    managed-by = "kumoflow"
  }
}
