"""The names one step writes and another reads: files of a run folder, a bundle and the store, and images.

A step that writes ``thresholds.json`` and the server that reads it, or the
promote step and the store's manifest, agree only if they spell the file the
same way; each name is defined here once and imported where it is used
(``tests/architecture/test_contracts.py`` fails on a file name spelled as a
literal path anywhere else). This module is in the foundation layer: it
imports nothing, so every package (the core, components, pipelines, serving)
can import it.
"""

from __future__ import annotations

# A run folder (``cohortlm run``'s output, the pipeline's report artifact).
STUDY_FILE = "study.yaml"  # the study spec as the run read it
RUN_FILE = "run.json"  # which models ran, the candidate and champion
SUMMARY_FILE = "summary.json"  # the run's headline figures
LABELS_FILE = "labels.parquet"  # the split's labels, one row per patient
SCORES_DIR = "scores"  # scores/<model>.parquet, one table per model
SUBGROUP_LEVELS_FILE = "subgroup_levels.parquet"  # each gated patient's level in every declared subgroup
DECISION_FILE = "decision.json"  # the gate's decision (also kept beside a promoted version)
OUTCOME_FILE = "outcome.json"  # the gate's outcome: decision, operating points, validation

# A raw data folder (``cohortlm synth``, or the synthetic cohort ``cohortlm run`` makes without --data).
PROVENANCE_FILE = "provenance.json"  # where the tables came from: the generator, n, seed; no patient data

# A bundle (a trained model's folder).
BUNDLE_FILE = "bundle.json"  # what the bundle is: study, model kind, features
THRESHOLDS_FILE = "thresholds.json"  # the operating points the server applies per endpoint
MODEL_CARD_JSON = "model_card.json"
MODEL_CARD_MD = "model_card.md"

# The model store (cohortlm.store.registry).
MANIFEST_FILE = "MANIFEST.json"  # SHA-256 and size of every file of a promoted version
SIGNATURE_FILE = "MANIFEST.sig"  # cohortlm.models.bundle.sign_bundle's signature over the manifest

# Images: built from docker/Dockerfile.pipeline and docker/Dockerfile.serving.
IMAGE_REGISTRY = "ghcr.io/cohortlm"
IMAGE_TAG = "0.1.0"
PIPELINE_IMAGE = f"{IMAGE_REGISTRY}/cohortlm-pipeline:{IMAGE_TAG}"
SERVING_IMAGE = f"{IMAGE_REGISTRY}/cohortlm-serving:{IMAGE_TAG}"


def scores_file(model: str) -> str:
    """A model's scores table in a run folder, relative to it (``scores/<model>.parquet``)."""
    return f"{SCORES_DIR}/{model}.parquet"
