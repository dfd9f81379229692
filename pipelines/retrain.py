"""Retraining runs the monitor asks for: the training pipeline submitted through the KFP API.

Registered as the ``cohortlm.retrain`` entry point ``kfp`` (``pyproject.toml``);
``serving.monitor.kfp_submitter`` finds it there, so the model server's image needs
neither the KFP SDK nor this package.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Unpack

if TYPE_CHECKING:
    from serving.monitor import RetrainRequest


def kfp_submitter(host: str, **request: Unpack[RetrainRequest]) -> Callable[[list[str]], str]:
    """A ``submit(reasons) -> run_id`` that starts the training pipeline through the KFP API."""
    namespace = request["namespace"]

    def submit(why: list[str]) -> str:
        import kfp

        from pipelines.train_evaluate_promote import (
            DEFAULT_PUSHGATEWAY,
            MODEL_STORE_MOUNT,
            train_evaluate_promote,
        )

        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        # the kfp client prints links on stdout; --json's stdout holds one object only
        with contextlib.redirect_stdout(sys.stderr):
            client = kfp.Client(host=host, existing_token=request["token"], namespace=namespace or "kubeflow")
            result = client.create_run_from_pipeline_func(
                train_evaluate_promote,
                arguments={
                    "raw_data": request["raw_data"],
                    "study_yaml": request["study_text"],
                    "profile": "paper",
                    "model_store": MODEL_STORE_MOUNT,
                    "isvc_namespace": namespace or "cohortlm",
                    "pushgateway": request["pushgateway"] or DEFAULT_PUSHGATEWAY,
                },
                run_name=f"retrain-{stamp}",
                experiment_name="cohortlm-retraining",
                namespace=namespace,
                enable_caching=False,
            )
        return str(result.run_id)

    return submit
