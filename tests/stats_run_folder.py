"""A fixture run folder with synthetic scores, in the layout cohortlm.evaluation.report documents."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from cohortlm.cohort.study import load_study, resolve_study_path

# Prevalence per RA endpoint and how much better the candidate separates cases than the champion.
_PREVALENCE = {
    "das28_esr_high": 0.08,
    "das28_esr_remission": 0.40,
    "das28_crp_high": 0.06,
    "das28_crp_remission": 0.45,
    "cdai_high": 0.07,
    "cdai_remission": 0.25,
    "jhaq_high": 0.03,
    "jhaq_low": 0.55,
}


def make_run_folder(
    root: Path,
    *,
    sizes: tuple[int, int, int] = (300, 200, 1000),
    seed: int = 0,
    candidate_gain: float = 0.6,
    missing_rate: float = 0.02,
) -> Path:
    """Write a run folder with labels, two models' scores, study.yaml and run.json.

    Args:
        root: Folder to create.
        sizes: Patients in train, validation, test.
        seed: Random seed.
        candidate_gain: Extra separation (in SD of the latent risk) of the candidate over the champion.
        missing_rate: Share of labels left empty (lost to follow-up for that index).

    Returns:
        ``root``.
    """
    rng = np.random.default_rng(seed)
    study = load_study("ra_iorra")
    n = sum(sizes)
    ids = [f"P{i:05d}" for i in range(n)]
    split = np.repeat(["train", "validation", "test"], sizes)
    labels = pd.DataFrame({study.id_column: ids, "split": split})
    champion = pd.DataFrame({study.id_column: ids})
    candidate = pd.DataFrame({study.id_column: ids})
    for ep in study.endpoint_names:
        prev = _PREVALENCE.get(ep, 0.2)
        y = (rng.random(n) < prev).astype(float)
        signal = rng.normal(size=n)
        base = -2.0 + 1.2 * y + 0.8 * signal
        # The candidate sees the same signal plus more of the truth; both map to probabilities.
        champion[ep] = 1 / (1 + np.exp(-(base + rng.normal(scale=0.9, size=n) + np.log(prev / 0.2))))
        cand = base + candidate_gain * y + rng.normal(scale=0.8, size=n) + np.log(prev / 0.2)
        candidate[ep] = 1 / (1 + np.exp(-cand))
        y[rng.random(n) < missing_rate] = np.nan
        labels[ep] = y
    root.mkdir(parents=True, exist_ok=True)
    (root / "scores").mkdir(exist_ok=True)
    labels.to_parquet(root / "labels.parquet", index=False)
    champion.to_parquet(root / "scores" / "logistic_regression.parquet", index=False)
    candidate.to_parquet(root / "scores" / "smollm2_qlora.parquet", index=False)
    shutil.copy(resolve_study_path("ra_iorra"), root / "study.yaml")
    run = {
        "candidate": "smollm2_qlora",
        "champion": "logistic_regression",
        "models": ["smollm2_qlora", "logistic_regression"],
    }
    (root / "run.json").write_text(json.dumps(run, indent=2))
    return root
