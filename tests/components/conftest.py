"""Fixtures for the component tests: the pipeline's components called as Python functions
(``component.python_func``) on real kfp.dsl artifacts in tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from componentlib import Chain, Gate, ds, run_gate
from flat_cohort import flat_cohort, hf_study
from kfp.dsl import HTML, Artifact, Dataset, Metrics, Model
from steplib import fake_scores

from components.featurise.component import featurise
from components.split.component import split
from components.study_spec.component import study_spec
from components.train_baseline.component import train_baseline
from components.validate.component import validate


@pytest.fixture(autouse=True)
def _unsigned(monkeypatch) -> None:
    """Promotions here are unsigned unless a test gives a key."""
    monkeypatch.delenv("COHORTLM_SIGNING_KEY", raising=False)


@pytest.fixture(scope="session")
def chain(tmp_path_factory) -> Chain:
    """study_spec, featurise, split and train_baseline on a 300-patient flat study (~3 s)."""
    root = tmp_path_factory.mktemp("components")
    flat_cohort(n=300, seed=3).to_csv(root / "hf.csv", index=False)
    study = Artifact(uri=str(root / "study" / "spec.yaml"))
    study_spec.python_func(study_yaml=yaml.safe_dump(hf_study()), spec=study)
    raw = Dataset(uri=str(root / "hf.csv"))
    cohort = Dataset(uri=str(root / "cohort.parquet"))
    featurise.python_func(raw=raw, study=study, cohort=cohort)
    split_table = Dataset(uri=str(root / "split.parquet"))
    split.python_func(table=cohort, study=study, split_override={}, split_table=split_table)
    bundle, scores = Model(uri=str(root / "baseline")), Dataset(uri=str(root / "baseline.parquet"))
    train_baseline.python_func(split_table=split_table, study=study, bundle=bundle, scores=scores)
    validation = Artifact(uri=str(root / "validation"))
    page, metrics = HTML(uri=str(root / "validation.html")), Metrics(uri=str(root / "m"))
    validate.python_func(
        cohort=cohort, study=study, pushgateway="", run_id="r1", job_id="",
        report=page, details=validation, metrics=metrics,
    )  # fmt: skip
    return Chain(root, study, raw, cohort, split_table, bundle, scores, validation)


@pytest.fixture(scope="session")
def first_gate(chain, tmp_path_factory) -> Gate:
    """No champion yet and a fine-tuned model of noise: the baseline becomes the first champion."""
    out = tmp_path_factory.mktemp("gate")
    ft = fake_scores(
        Path(chain.split_table.path), chain.study_spec, out / "ft.parquet", quality="noise", seed=2
    )
    return run_gate(chain, out, fine_tuned=ds(ft, model="tiny+qlora"))
