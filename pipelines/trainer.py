"""The Kubeflow Trainer hand-off, defined in :mod:`components.trainer` (the component that calls it
must not import ``pipelines``); re-exported here for the pipeline's readers and callers."""

from components.trainer import (
    SHARED_VOLUME,
    TRAINER_RUNTIME,
    build_options,
    build_trainer,
    run_trainjob,
    trainjob_entry,
)

__all__ = [
    "SHARED_VOLUME",
    "TRAINER_RUNTIME",
    "build_options",
    "build_trainer",
    "run_trainjob",
    "trainjob_entry",
]
