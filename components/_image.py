"""The container image every component runs in (built from docker/Dockerfile.pipeline; named in
:mod:`cohortlm.contracts`)."""

from cohortlm.contracts import PIPELINE_IMAGE

__all__ = ["PIPELINE_IMAGE"]
