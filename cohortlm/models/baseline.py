"""The champion to beat: logistic regression, one scikit-learn Pipeline per endpoint.

Each pipeline is::

    ColumnTransformer
      numeric, integer, binary -> median imputation (+ missing indicators) -> standard scaling
      categorical              -> most-frequent imputation -> one-hot (spec categories, unknown ignored)
    LogisticRegression (lbfgs, L2, class weighting configurable)

Missing values are handled inside the pipeline, so the same object scores
training rows, test rows and a single served request alike. Rows whose label
is missing for an endpoint are left out of that endpoint's fit only.

Bundles store the pipelines with skops (a format that lists the types it will
build, instead of executing arbitrary pickled code); loading accepts only
scikit-learn and numpy types.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from cohortlm.cohort.study import StudySpec
from cohortlm.errors import DataError, SpecError
from cohortlm.models.bundle import check_feature_rows, clip_proba, write_bundle_metadata

log = logging.getLogger(__name__)

MODEL_NAME = "logistic_regression"
MODEL_FILE = "model.skops"
SERIALIZER = "skops"
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.", "collections.")
_LIBRARIES = ("scikit-learn", "skops", "numpy", "pandas", "cohortlm")


def build_pipeline(spec: StudySpec, *, class_weight: str | None = None, seed: int = 0) -> Pipeline:
    """An unfitted pipeline for one endpoint of ``spec`` (see module docstring).

    Args:
        spec: the study; its feature types pick each column's preprocessing.
        class_weight: ``None`` or ``"balanced"`` (LogisticRegression's option).
        seed: random state of the solver (lbfgs is deterministic; kept for other solvers).
    """
    if class_weight not in (None, "balanced"):
        raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
    numeric = [f.name for f in spec.features if f.type != "categorical"]
    categorical = [f for f in spec.features if f.type == "categorical"]
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(
            (
                "numeric",
                Pipeline(
                    [
                        # keep_empty_features: a column missing in every training row
                        # stays a (constant) column, so the layout never depends on the data.
                        (
                            "impute",
                            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                        ),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        (
                            "impute",
                            SimpleImputer(
                                strategy="most_frequent", missing_values=None, keep_empty_features=True
                            ),
                        ),
                        (
                            "onehot",
                            OneHotEncoder(
                                categories=[list(f.categories or ()) for f in categorical],
                                handle_unknown="ignore",
                            ),
                        ),
                    ]
                ),
                [f.name for f in categorical],
            )
        )
    return Pipeline(
        [
            ("features", ColumnTransformer(transformers, remainder="drop")),
            ("model", LogisticRegression(C=1.0, max_iter=2000, class_weight=class_weight, random_state=seed)),
        ]
    )


def _positive_proba(pipe: Pipeline, X: pd.DataFrame) -> np.ndarray:
    classes = list(pipe.classes_)
    proba = pipe.predict_proba(X)
    if 1.0 in classes:
        return proba[:, classes.index(1.0)]
    return np.zeros(len(X))  # only negatives were seen in training


@dataclass
class BaselineModel:
    """Fitted pipelines, one per endpoint, and what training recorded.

    Attributes:
        spec: the study.
        pipelines: endpoint name -> fitted sklearn Pipeline.
        training: configuration and metrics (stored in ``bundle.json``).
    """

    spec: StudySpec
    pipelines: dict[str, Pipeline]
    training: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, df: pd.DataFrame) -> pd.DataFrame:
        """P(case) per endpoint in (0, 1); columns in spec order, index of ``df``."""
        X = check_feature_rows(df, self.spec)
        out = pd.DataFrame(index=df.index)
        for name in self.spec.endpoint_names:
            out[name] = clip_proba(_positive_proba(self.pipelines[name], X)) if len(X) else []
        return out.astype(float)

    def save(self, folder: str | Path) -> Path:
        """Write the model as a bundle (``model.skops`` + ``bundle.json`` + ``study.yaml``)."""
        import skops.io as sio

        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / (MODEL_FILE + ".tmp")
        sio.dump({name: self.pipelines[name] for name in self.spec.endpoint_names}, tmp)
        tmp.replace(root / MODEL_FILE)
        write_bundle_metadata(
            root,
            kind="baseline",
            model_name=MODEL_NAME,
            spec=self.spec,
            model_files=[MODEL_FILE],
            training={**self.training, "serializer": SERIALIZER},
            libraries=_LIBRARIES,
        )
        return root


def train_baseline(
    train_df: pd.DataFrame, spec: StudySpec, *, class_weight: str | None = None, seed: int = 0
) -> BaselineModel:
    """Fit one logistic regression pipeline per endpoint on ``train_df``.

    Args:
        train_df: training rows with the feature columns and endpoint source columns.
        spec: the study.
        class_weight: ``None`` or ``"balanced"``.
        seed: solver random state.

    Returns:
        The fitted :class:`BaselineModel`.

    Raises:
        DataError: no rows, or a required column is missing.
    """
    if len(train_df) == 0:
        raise DataError("the training split is empty; check the split sizes in the study spec")
    spec.check_columns(train_df, need_endpoints=True, what="the training table")
    X = check_feature_rows(train_df, spec)
    labels = spec.labels(train_df)
    pipelines: dict[str, Pipeline] = {}
    per_endpoint: dict[str, dict[str, Any]] = {}
    for name in spec.endpoint_names:
        y = labels[name]
        keep = y.notna().to_numpy()
        yk = y[keep].astype(float)
        pipe = build_pipeline(spec, class_weight=class_weight, seed=seed)
        if yk.nunique() < 2:
            # One class only (tiny cohorts, rare endpoints): a logistic regression is
            # undefined, so keep the constant predictor and say so in the metadata.
            log.warning("endpoint %s has one class in the training rows; it predicts a constant", name)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Skipping features without any observed values.*")
            if yk.nunique() < 2:
                from sklearn.dummy import DummyClassifier

                pipe.steps[-1] = ("model", DummyClassifier(strategy="prior"))
            pipe.fit(X[keep], yk)
        per_endpoint[name] = {
            "n": int(keep.sum()),
            "n_positive": int(yk.sum()),
            "prevalence": float(yk.mean()) if len(yk) else float("nan"),
            "constant": bool(yk.nunique() < 2),
        }
        pipelines[name] = pipe
    training = {
        "estimator": "LogisticRegression(C=1.0, lbfgs, L2)",
        "class_weight": class_weight,
        "seed": seed,
        "n_train": len(train_df),
        "endpoints": per_endpoint,
    }
    return BaselineModel(spec=spec, pipelines=pipelines, training=training)


class BaselinePredictor:
    """A baseline bundle loaded for prediction (satisfies :class:`cohortlm.models.bundle.Predictor`)."""

    kind = "baseline"

    def __init__(self, model: BaselineModel, *, path: Path, version: str, name: str = MODEL_NAME):
        self.model = model
        self.spec = model.spec
        self.path = path
        self.version = version
        self.name = name

    @classmethod
    def from_bundle(cls, folder: Path, meta: dict[str, Any], spec: StudySpec) -> BaselinePredictor:
        """Load ``model.skops`` from a bundle whose metadata was already checked."""
        import skops.io as sio

        model_path = folder / MODEL_FILE
        if not model_path.is_file():
            raise SpecError(f"bundle {folder} has no {MODEL_FILE}; the bundle is incomplete, train it again")
        untrusted = sio.get_untrusted_types(file=model_path)
        foreign = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
        if foreign:
            raise SpecError(
                f"{model_path} asks to build types outside scikit-learn and numpy "
                f"({', '.join(foreign[:3])}); refusing to load it"
            )
        pipelines = sio.load(model_path, trusted=untrusted)
        missing = [e for e in spec.endpoint_names if e not in pipelines]
        if missing:
            raise SpecError(f"{model_path} has no model for endpoint(s) {', '.join(missing)}")
        model = BaselineModel(spec=spec, pipelines=pipelines, training=meta.get("training", {}))
        return cls(model, path=folder, version=meta["model_version"], name=meta["model_name"])

    def predict_proba(self, rows: pd.DataFrame) -> pd.DataFrame:
        """P(case) per endpoint in (0, 1); columns in spec order, index of ``rows``."""
        return self.model.predict_proba(rows)


#: folds of the out-of-fold training scores (:func:`out_of_fold_proba`)
OOF_FOLDS = 5


def encoded_endpoints(
    train_df: pd.DataFrame, spec: StudySpec, *, class_weight: str | None, seed: int
) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, float]]:
    """Per endpoint: name, labelled-row mask, encoded design, outcomes and the regression's ``C``.

    The encoding is :func:`build_pipeline`'s ColumnTransformer (imputation, scaling,
    one-hot) fitted on the endpoint's labelled training rows; it uses no outcome.
    """
    X = check_feature_rows(train_df, spec)
    labels = spec.labels(train_df)
    out = []
    for name in spec.endpoint_names:
        y = labels[name]
        keep = y.notna().to_numpy()
        pipe = build_pipeline(spec, class_weight=class_weight, seed=seed)
        features, model = pipe.steps[0][1], pipe.steps[-1][1]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Skipping features without any observed values.*")
            design = features.fit_transform(X[keep])
        design = design.toarray() if hasattr(design, "toarray") else np.asarray(design, dtype=float)
        out.append((name, keep, design, y[keep].to_numpy() > 0.5, float(model.C)))
    return out


def out_of_fold_proba(
    train_df: pd.DataFrame,
    spec: StudySpec,
    *,
    class_weight: str | None = None,
    seed: int = 0,
    folds: int = OOF_FOLDS,
) -> pd.DataFrame:
    """Out-of-fold P(case) for the training rows: each row scored by a regression not fitted on it.

    Stratified folds (scikit-learn's ``StratifiedKFold``, shuffled with ``seed``);
    in each, :func:`build_pipeline`'s regression (same ``C``, class weighting) is
    refitted on the other folds by Newton–Raphson
    (:func:`cohortlm.models.logistic.fit_logistic`, scikit-learn's objective) on
    the encoded features (:func:`encoded_endpoints`: fitted once, with no
    outcome). A threshold chosen on these scores (pooled with validation's) is
    chosen on patients the scoring model never saw, which in-sample training
    scores would not be.

    Args:
        train_df: The training rows (features and endpoint sources).
        spec: The study.
        class_weight: As :func:`train_baseline`.
        seed: Seed of the fold assignment.
        folds: Folds; fewer when an endpoint has fewer cases or controls.

    Returns:
        One column per endpoint, index of ``train_df``; NaN for rows without a label,
        and for an endpoint with fewer than 2 cases or controls (no folds possible).
    """
    from scipy.special import expit
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    from cohortlm.models.logistic import balanced_weights, fit_logistic

    out = pd.DataFrame(index=train_df.index)
    for name, keep, design, y, C in encoded_endpoints(train_df, spec, class_weight=class_weight, seed=seed):
        column = np.full(len(train_df), np.nan)
        k = min(int(folds), int(y.sum()), int((~y).sum()))
        if k >= 2:
            scored = np.empty(y.shape)
            start = None
            folds_of = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(design, y)
            with threadpool_limits(1):  # small products: one BLAS thread is fastest on a busy machine
                for fit_rows, held_out in folds_of:
                    weight = balanced_weights(y[fit_rows]) if class_weight == "balanced" else None
                    start = fit_logistic(
                        design[fit_rows], y[fit_rows], C=C, sample_weight=weight, start=start
                    )
                    scored[held_out] = expit(start[0] + design[held_out] @ start[1:])
            column[keep] = clip_proba(scored)
        out[name] = column
    return out
