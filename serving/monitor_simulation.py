"""Simulated deployments of a champion: a shifted population, and the monitor's operating characteristics.

The reference is the synthetic RA cohort (:mod:`cohortlm.cohort.synthetic`); the shifted
population is the same generator with patients ``age_shift`` years older and the
enrolment period ``era_shift_years`` later (more biologics and JAK inhibitors at
baseline), the outcomes being the ones the generator knows.

* :func:`build_champion` trains the baseline on the reference cohort's training rows,
  gates it on its test rows with the project's gate (:func:`cohortlm.evaluation.gate.decide`;
  a first run, where the baseline becomes the champion) and promotes it with that
  decision record into a model store, as a pipeline run would.
* :func:`operating_characteristics` draws repeated windows of served patients, with and
  without the shift, and counts how often the monitor (:func:`serving.monitor.assess`,
  the same function ``cohortlm monitor`` calls) raises any alarm (an endpoint degraded
  or a feature drifted): the false-alarm rate and the detection rate.

Used by tests/monitoring/test_simulated_deployment.py and benchmarks/bench_monitor.py.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cohortlm.cohort.featurise import featurise
from cohortlm.cohort.study import StudySpec, load_study
from cohortlm.cohort.synthetic import generate_cohort
from cohortlm.monitoring.bins import spec_bins
from serving.monitor import assess

AGE_SHIFT = 10.0
ERA_SHIFT_YEARS = 8.0


@dataclass(frozen=True)
class Champion:
    """A promoted baseline with its gate record, and the cohort it came from."""

    pointer: Path  # <store>/<study>/champion
    spec: StudySpec
    train: pd.DataFrame  # the training reference (its bins are the drift reference)
    test: pd.DataFrame
    decision: dict[str, Any]


def population(
    n: int,
    seed: int,
    *,
    shifted: bool,
    age_shift: float = AGE_SHIFT,
    era_shift_years: float = ERA_SHIFT_YEARS,
) -> pd.DataFrame:
    """A featurised synthetic cohort of ``n`` registry patients (fewer rows: eligibility), shifted or not."""
    spec = load_study("ra_iorra")
    kw = {"age_shift": age_shift, "era_shift_years": era_shift_years} if shifted else {}
    with tempfile.TemporaryDirectory(prefix="cohortlm-sim-") as tmp:
        generate_cohort(n=n, seed=seed, **kw).write(tmp)
        return featurise(tmp, spec).table.reset_index(drop=True)


def build_champion(workdir: str | Path, *, n: int = 4000, seed: int = 0) -> Champion:
    """Train, gate and promote the baseline of a reference cohort (see the module docstring)."""
    from cohortlm.evaluation.gate import decide
    from cohortlm.models.baseline import train_baseline
    from cohortlm.models.loaders import load_bundle
    from cohortlm.store.registry import promote

    work = Path(workdir)
    spec = load_study("ra_iorra")
    table = population(n, seed, shifted=False)
    order = np.random.default_rng(seed).permutation(len(table))
    cut = int(0.6 * len(table))
    train, test = table.iloc[order[:cut]].copy(), table.iloc[order[cut:]].copy()
    bundle = work / "bundle"
    train_baseline(train, spec).save(bundle)
    scores = load_bundle(bundle).predict_proba(test[spec.feature_names])
    ids = test[spec.id_column].to_numpy()
    labels = spec.labels(test).set_index(pd.Index(ids))
    scores = pd.DataFrame(
        np.asarray(scores[spec.endpoint_names], dtype=float), index=labels.index, columns=spec.endpoint_names
    )
    decision = decide(labels, scores, scores, candidate_name="baseline", champion_name="baseline").to_dict()
    store = work / "models"
    promote(bundle, store, decision=decision)
    return Champion(store / spec.name / "champion", spec, train, test, decision)


def window_frame(spec: StudySpec, table: pd.DataFrame, proba: np.ndarray) -> pd.DataFrame:
    """What the log holds for a window once every outcome arrived (the monitor's input)."""
    labels = spec.labels(table).to_numpy(dtype=float)
    n, k = proba.shape
    return pd.DataFrame(
        {
            "pseudonym": np.repeat(table[spec.id_column].astype(str).to_numpy(), k),
            "endpoint": np.tile(np.array(spec.endpoint_names, dtype=object), n),
            "probability": proba.reshape(-1),
            "served_at": np.zeros(n * k),
            "outcome": labels.reshape(-1),
        }
    )


def bin_counts(spec: StudySpec, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Counts per feature bin of a table, as the server keeps them."""
    from serving.monitor import reference_counts

    return reference_counts(spec, table)


def operating_characteristics(
    champion: Champion,
    *,
    windows: int = 40,
    window_size: int = 2000,
    seed: int = 1,
    time_limit_s: float = 1800.0,
) -> dict[str, Any]:
    """Alarm rates over repeated windows without and with the shift.

    Each condition draws one large pool (a fresh seed, so no patient of the champion's
    cohort) and cuts it into disjoint windows of ``window_size`` served patients.

    Returns:
        ``{"null": {...}, "shifted": {...}}`` with windows, alarms, the rate and its Wilson
        95 % interval, and which endpoints/features raised them.
    """
    from cohortlm.models.loaders import load_bundle

    spec = champion.spec
    predictor = load_bundle(champion.pointer.resolve())
    reference = bin_counts(spec, champion.train)
    deadline = time.monotonic() + time_limit_s
    out: dict[str, Any] = {}
    for name, shifted in (("null", False), ("shifted", True)):
        # about 0.79 featurised rows per generated patient (eligibility)
        pool = population(
            int(windows * window_size / 0.75) + 500, seed + (1000 if shifted else 0), shifted=shifted
        )
        pool = pool.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        n_win = min(windows, len(pool) // window_size)
        alarms, degraded, drifted = 0, [], []
        done = 0
        for w in range(n_win):
            if time.monotonic() > deadline:
                break
            rows = pool.iloc[w * window_size : (w + 1) * window_size]
            proba = np.asarray(
                predictor.predict_proba(rows[spec.feature_names])[spec.endpoint_names], dtype=float
            )
            result = assess(
                spec, champion.decision, window_frame(spec, rows, proba), bin_counts(spec, rows), reference
            )
            done += 1
            if result["degraded"] or result["drifted"]:
                alarms += 1
            degraded += result["degraded_endpoints"]
            drifted += result["drifted_features"]
        out[name] = {
            "windows": done,
            "alarms": alarms,
            "rate": alarms / done if done else math.nan,
            "rate_ci95": wilson(alarms, done),
            "degraded_endpoints": pd.Series(degraded, dtype=object).value_counts().to_dict(),
            "drifted_features": pd.Series(drifted, dtype=object).value_counts().to_dict(),
        }
    out["window_size"] = window_size
    out["bins"] = len(spec_bins(spec))
    return out


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))
