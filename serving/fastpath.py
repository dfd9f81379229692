"""A numpy fast path for the logistic-regression baseline, checked against scikit-learn at load.

scikit-learn's per-call overhead (input validation, ColumnTransformer
dispatch) costs about 4 ms per pipeline for a single row, and the baseline has
one pipeline per endpoint: ~30 ms a request, for arithmetic that takes
microseconds. The baseline pipeline is affine up to the sigmoid:

    median imputation (+ missing indicators) -> standard scaling  (numeric)
    most-frequent imputation -> one-hot                            (categorical)
    logistic regression

so :func:`compile_baseline` reads the fitted parameters into arrays and
evaluates the same formula with numpy. It is used only when (1) every pipeline
has exactly that structure and (2) on a set of synthetic rows built from the
spec (every category, missing values where allowed, random values across each
range) its probabilities equal scikit-learn's to 1e-9; otherwise the server
keeps calling scikit-learn. The bundle on disk is not changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cohortlm.cohort.study import StudySpec
from cohortlm.models.bundle import PROBA_EPS, Predictor

log = logging.getLogger("cohortlm.serving")

TOLERANCE = 1e-9


@dataclass(frozen=True)
class _Endpoint:
    median: np.ndarray  # (k,) fill for missing numeric values
    indicator_idx: np.ndarray  # numeric columns that get a missing indicator
    center: np.ndarray  # (k + m,) StandardScaler mean (0 when not centring)
    scale: np.ndarray  # (k + m,)
    w_numeric: np.ndarray  # (k + m,)
    cat_fill: tuple[str, ...]  # per categorical feature: the most frequent category
    cat_weights: tuple[dict[str, float], ...]  # per categorical feature: category -> weight
    intercept: float


class CompiledBaseline:
    """The baseline's probabilities from numpy arrays (a :class:`cohortlm.models.bundle.Predictor`)."""

    def __init__(
        self, source: Predictor, numeric: list[str], categorical: list[str], endpoints: list[_Endpoint]
    ):
        self.source = source
        self.spec: StudySpec = source.spec
        self.kind: str = source.kind
        self.version: str = source.version
        self.path: Path = source.path
        self.name: str = source.name
        self._numeric = numeric
        self._categorical = categorical
        self._endpoints = endpoints

    def predict_proba(self, rows: pd.DataFrame) -> pd.DataFrame:
        """P(case) per endpoint in (0, 1), as the scikit-learn pipelines would give."""
        x = rows[self._numeric].to_numpy(dtype=float)
        cats = [rows[c].tolist() for c in self._categorical]
        out = self._proba(x, cats)
        return pd.DataFrame(out, columns=self.spec.endpoint_names, index=rows.index)

    def predict_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Probabilities (rows x endpoints, spec order) from checked columns; no DataFrame on the way."""
        x = np.column_stack([columns[c] for c in self._numeric]).astype(float, copy=False)
        return self._proba(x, [columns[c].tolist() for c in self._categorical])

    def _proba(self, x: np.ndarray, cats: list[list[Any]]) -> np.ndarray:
        missing = np.isnan(x)
        out = np.empty((x.shape[0], len(self._endpoints)))
        for j, ep in enumerate(self._endpoints):
            z = np.where(missing, ep.median, x)
            if len(ep.indicator_idx):
                z = np.hstack([z, missing[:, ep.indicator_idx].astype(float)])
            logit = ((z - ep.center) / ep.scale) @ ep.w_numeric + ep.intercept
            for values, fill, weights in zip(cats, ep.cat_fill, ep.cat_weights, strict=True):
                logit = logit + np.array(
                    [weights.get(fill if v is None or v != v else v, 0.0) for v in values]
                )
            out[:, j] = 1.0 / (1.0 + np.exp(-logit))
        return np.clip(out, PROBA_EPS, 1.0 - PROBA_EPS)


def _read_pipeline(pipe: Any, numeric: list[str], categorical: list[str]) -> _Endpoint | None:
    """The arrays of one fitted pipeline, or None when its structure is not the known one."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if not isinstance(pipe, Pipeline) or len(pipe.steps) != 2:
        return None
    ct, lr = pipe.steps[0][1], pipe.steps[1][1]
    if not isinstance(ct, ColumnTransformer) or not isinstance(lr, LogisticRegression):
        return None
    if list(lr.classes_) != [0.0, 1.0] or lr.coef_.shape[0] != 1:
        return None
    blocks = {name: (trans, cols) for name, trans, cols in ct.transformers_ if name != "remainder"}
    if set(blocks) - {"numeric", "categorical"}:
        return None
    coef = lr.coef_[0]
    k = len(numeric)
    num, num_cols = blocks.get("numeric", (None, []))
    if list(num_cols) != numeric or not isinstance(num, Pipeline) or len(num.steps) != 2:
        return None
    imp, scaler = num.steps[0][1], num.steps[1][1]
    if not isinstance(imp, SimpleImputer) or not isinstance(scaler, StandardScaler):
        return None
    if not (isinstance(imp.missing_values, float) and np.isnan(imp.missing_values)):
        return None
    ind = imp.indicator_.features_ if imp.add_indicator else np.array([], dtype=int)
    width = k + len(ind)
    center = scaler.mean_ if scaler.with_mean else np.zeros(width)
    scale = scaler.scale_ if scaler.with_std else np.ones(width)
    if len(center) != width or len(scale) != width:
        return None
    sl = ct.output_indices_["numeric"]
    if sl.stop - sl.start != width:
        return None
    w_numeric = coef[sl]
    cat_fill: list[str] = []
    cat_weights: list[dict[str, float]] = []
    if categorical:
        cat, cat_cols = blocks.get("categorical", (None, []))
        if list(cat_cols) != categorical or not isinstance(cat, Pipeline) or len(cat.steps) != 2:
            return None
        cimp, onehot = cat.steps[0][1], cat.steps[1][1]
        if not isinstance(cimp, SimpleImputer) or not isinstance(onehot, OneHotEncoder):
            return None
        if (
            cimp.missing_values is not None
            or onehot.drop_idx_ is not None
            or onehot.handle_unknown != "ignore"
        ):
            return None
        if getattr(cimp, "add_indicator", False):
            return None
        w_cat = coef[ct.output_indices_["categorical"]]
        pos = 0
        for fill, categories in zip(cimp.statistics_, onehot.categories_, strict=True):
            cat_fill.append(str(fill))
            cat_weights.append({str(c): float(w_cat[pos + i]) for i, c in enumerate(categories)})
            pos += len(categories)
        if pos != len(w_cat):
            return None
    return _Endpoint(
        median=np.asarray(imp.statistics_, dtype=float),
        indicator_idx=np.asarray(ind, dtype=int),
        center=np.asarray(center, dtype=float),
        scale=np.asarray(scale, dtype=float),
        w_numeric=np.asarray(w_numeric, dtype=float),
        cat_fill=tuple(cat_fill),
        cat_weights=tuple(cat_weights),
        intercept=float(lr.intercept_[0]),
    )


def probe_rows(spec: StudySpec, *, n_random: int = 64, seed: int = 0) -> pd.DataFrame:
    """Synthetic rows that exercise every code path: each category, missing values, random in-range values."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n_random):
        row: dict[str, Any] = {}
        for f in spec.features:
            if f.type == "categorical":
                cats = list(f.categories or ())
                row[f.name] = cats[i % len(cats)] if cats else None
            elif f.type == "binary":
                row[f.name] = float(rng.integers(0, 2))
            else:
                lo = f.min if f.min is not None else -10.0
                hi = f.max if f.max is not None else lo + 20.0
                v = float(rng.uniform(lo, hi))
                row[f.name] = float(round(v)) if f.type == "integer" else v
            if f.max_missing > 0 and i % 3 == 0:
                row[f.name] = None if f.type == "categorical" else np.nan
        rows.append(row)
    frame = pd.DataFrame(rows, columns=spec.feature_names)
    for f in spec.features:
        frame[f.name] = frame[f.name].astype(object if f.type == "categorical" else float)
    return frame


def compile_baseline(predictor: Predictor) -> Predictor:
    """A numpy twin of a baseline predictor when it reproduces scikit-learn exactly; else the predictor."""
    pipelines = getattr(getattr(predictor, "model", None), "pipelines", None)
    if predictor.kind != "baseline" or not isinstance(pipelines, dict):
        return predictor
    spec = predictor.spec
    numeric = [f.name for f in spec.features if f.type != "categorical"]
    categorical = [f.name for f in spec.features if f.type == "categorical"]
    endpoints = []
    for name in spec.endpoint_names:
        ep = _read_pipeline(pipelines.get(name), numeric, categorical)
        if ep is None:
            log.info("baseline fast path off: the pipeline of %s has another structure", name)
            return predictor
        endpoints.append(ep)
    compiled = CompiledBaseline(predictor, numeric, categorical, endpoints)
    probe = probe_rows(spec)
    try:
        want = predictor.predict_proba(probe).to_numpy(dtype=float)
        got = compiled.predict_proba(probe).to_numpy(dtype=float)
    except Exception as exc:
        log.info("baseline fast path off: the check could not run (%s)", type(exc).__name__)
        return predictor
    diff = float(np.max(np.abs(want - got)))
    if not diff <= TOLERANCE:
        log.warning("baseline fast path off: it differs from scikit-learn by %.3g", diff)
        return predictor
    return compiled
