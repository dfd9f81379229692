"""The container image every component runs in (built from docker/Dockerfile.pipeline)."""

PIPELINE_IMAGE = "ghcr.io/cohortlm/cohortlm-pipeline:0.1.0"
