"""Fixtures for the step tests: a small flat study run through the cheap steps once per module,
score tables made in the test, and a recording Pushgateway on 127.0.0.1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from flat_cohort import flat_cohort, hf_study
from steplib import fake_scores, lenient_policy_text


@dataclass
class StudyRun:
    """Files of a small flat study after the study, featurise, split and baseline steps."""

    root: Path
    spec: object
    study_yaml: str
    study_file: Path
    raw: Path
    cohort: Path
    split: Path
    baseline_bundle: Path
    baseline_scores: Path
    info: dict = field(default_factory=dict)

    def scores(self, fine_tuned: str) -> dict[str, str]:
        """Score tables for evaluate_step: baseline, a noise zero-shot ``tiny`` and a ``tiny+qlora``."""
        zs = self.root / "tiny.parquet"
        if not zs.exists():
            fake_scores(self.split, self.spec, zs, quality="noise", seed=1)
        ft = self.root / f"tiny+qlora-{fine_tuned}.parquet"
        if not ft.exists():
            fake_scores(self.split, self.spec, ft, quality=fine_tuned, seed=2)
        return {"baseline": str(self.baseline_scores), "tiny": str(zs), "tiny+qlora": str(ft)}


@pytest.fixture(scope="module")
def study_run(tmp_path_factory) -> StudyRun:
    """A 300-patient heart-failure study (two endpoints) through the cheap steps (~3 s)."""
    from cohortlm.cohort.study import load_study
    from cohortlm.run import steps

    root = tmp_path_factory.mktemp("study-run")
    raw = root / "hf.csv"
    flat_cohort(n=300, seed=3).to_csv(raw, index=False)
    text = yaml.safe_dump(hf_study())
    info = {"study": steps.study_step(text, str(root / "study.yaml"))}
    spec = load_study(root / "study.yaml")
    info["featurise"] = steps.featurise_step(str(raw), spec, str(root / "cohort.parquet"))
    info["split"] = steps.split_step(str(root / "cohort.parquet"), spec, str(root / "split.parquet"))
    info["baseline"] = steps.train_baseline_step(
        str(root / "split.parquet"), spec, str(root / "baseline"), str(root / "baseline.parquet")
    )
    return StudyRun(
        root=root,
        spec=spec,
        study_yaml=text,
        study_file=root / "study.yaml",
        raw=raw,
        cohort=root / "cohort.parquet",
        split=root / "split.parquet",
        baseline_bundle=root / "baseline",
        baseline_scores=root / "baseline.parquet",
        info=info,
    )


@pytest.fixture(scope="module")
def lenient_policy(tmp_path_factory) -> Path:
    """A policy file for the 60-patient test split (see steplib.lenient_policy_text)."""
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(lenient_policy_text())
    return path
