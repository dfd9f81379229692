"""Bundles by kind: the one module that knows every model kind a bundle can hold.

:mod:`cohortlm.models.bundle` is the format and names no kind; each kind's
class (``from_bundle(folder, meta, spec)``) is registered in :data:`LOADERS`
and imported only when a bundle of that kind is loaded, so that serving a
baseline never imports torch. :func:`score_table` scores any model on a table.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pandas as pd

from cohortlm.cohort.study import StudySpec
from cohortlm.errors import SpecError, UsageError
from cohortlm.models.bundle import Predictor, bundle_spec, read_bundle_metadata

#: ``kind`` in ``bundle.json`` -> ``module:class`` of the class that loads it.
LOADERS: dict[str, str] = {
    "baseline": "cohortlm.models.baseline:BaselinePredictor",
    "llm": "cohortlm.models.llm.scoring:LLMPredictor",
}


def loader_for(kind: str, folder: Path) -> Any:
    """The class that loads a bundle of ``kind``."""
    if kind not in LOADERS:
        raise SpecError(
            f"bundle {folder} holds a model of kind {kind!r}, which this cohortlm cannot load; "
            f"known kinds: {', '.join(LOADERS)}"
        )
    module, _, name = LOADERS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def load_bundle(path: str | Path, *, spec: StudySpec | None = None) -> Predictor:
    """Load a baseline or LLM bundle as a :class:`Predictor`.

    Args:
        path: the bundle folder.
        spec: the study the caller will use the model for. When given, the
            bundle must have been trained for exactly this spec (same
            ``spec_hash``); when omitted, the bundle's own copy is used.

    Raises:
        SpecError: unknown format version, or the bundle's study differs from ``spec``.
        UsageError: the folder is not a bundle.
    """
    folder = Path(path)
    meta = read_bundle_metadata(folder)
    if spec is not None and spec.spec_hash != meta["study_hash"]:
        raise SpecError(
            f"bundle {folder} was trained for study '{meta['study'].get('name', '?')}' "
            f"(spec hash {meta['study_hash'][:12]}), not for study '{spec.name}' "
            f"(spec hash {spec.spec_hash[:12]}); features or endpoints differ. "
            "Train a model for this spec, or use the spec the bundle was trained with"
        )
    bundle_study = bundle_spec(meta, path=folder)
    use_spec = spec if spec is not None else bundle_study
    return loader_for(meta["kind"], folder).from_bundle(folder, meta, use_spec)


def score_table(
    model_or_bundle: Any,
    df: pd.DataFrame,
    spec: StudySpec,
    *,
    batch_size: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """A scores table: ``[id column, "split" (when ``df`` has one), *endpoints]``.

    Args:
        model_or_bundle: a bundle folder, a :class:`~cohortlm.models.bundle.Predictor`,
            an :class:`~cohortlm.models.llm.scoring.LLMScorer` (e.g. zero-shot) or anything
            with ``predict_proba(df)``.
        df: rows with the id column and the feature columns.
        spec: the study.
        batch_size: patients per forward pass (LLM scorers; default theirs).
        progress: show a progress bar (LLM scorers).
    """
    if isinstance(model_or_bundle, (str, Path)):
        model_or_bundle = load_bundle(model_or_bundle, spec=spec)
    # An LLM bundle's predictor scores through its scorer, with batches and progress.
    model_or_bundle = getattr(model_or_bundle, "scorer", model_or_bundle)
    if callable(getattr(model_or_bundle, "score", None)):
        sizes = {} if batch_size is None else {"batch_size": batch_size}
        probs = model_or_bundle.score(df, progress=progress, **sizes)
    elif isinstance(model_or_bundle, Predictor) or hasattr(model_or_bundle, "predict_proba"):
        probs = model_or_bundle.predict_proba(df)
    else:
        raise UsageError(f"cannot score with a {type(model_or_bundle).__name__}")
    if spec.id_column not in df.columns:
        raise UsageError(f"the rows lack the id column '{spec.id_column}'")
    out = pd.DataFrame({spec.id_column: df[spec.id_column].to_numpy()}, index=df.index)
    if "split" in df.columns:
        out["split"] = df["split"].to_numpy()
    for name in spec.endpoint_names:
        out[name] = probs[name].to_numpy(dtype=float)
    return out.reset_index(drop=True)
