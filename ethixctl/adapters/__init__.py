"""One client per platform API: Cloud Run v2, Secret Manager v1, Prometheus HTTP."""
