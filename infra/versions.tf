terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.14.0, < 7.0.0"
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
