"""The gate step's result, typed: built once in memory, handed on as an object.

:func:`cohortlm.run.steps.evaluate_step` returns a :class:`GateOutcome`; the
report is rendered from the same objects, the evaluate-gate component logs its
KFP metrics and ROC curve from it, and it crosses the process boundary to the
promote, per-endpoint and export steps as ``outcome.json``, checked against
:data:`OUTCOME_SCHEMA` when read. Thresholds, AUCs and training figures travel
in this record, not in CSV columns that a reader has to know the names of.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cohortlm.contracts import OUTCOME_FILE
from cohortlm.errors import SpecError
from cohortlm.evaluation.cohort_counts import CohortSummary
from cohortlm.evaluation.decision_curve import DECISION_CURVE_COLUMNS, TREAT_ALL, TREAT_NONE
from cohortlm.evaluation.evaluate import COUNT_COLUMNS, TABLE1_AUC_COLUMNS, Evaluation, serving_thresholds
from cohortlm.evaluation.gate import Decision
from cohortlm.evaluation.intervals import THRESHOLD_METRICS
from cohortlm.evaluation.stats.calibration import CALIBRATION_COLUMNS
from cohortlm.evaluation.subgroups import SUBGROUP_COLUMNS
from cohortlm.models.training import TrainingFigures

__all__ = ["OUTCOME_FILE", "OUTCOME_SCHEMA", "OUTCOME_SCHEMA_VERSION", "WINNERS", "GateOutcome", "RocCurve"]

OUTCOME_SCHEMA_VERSION = 1
#: ``candidate``: promote the candidate; ``baseline``: no champion yet and the candidate
#: failed, so this run's baseline becomes the first champion; ``none``: keep the champion.
WINNERS = ("candidate", "baseline", "none")
#: Table 1 columns an operating point keeps (the rest of Table 1 is in the report).
#: (Each threshold metric with its 95 % interval too: the promoted bundle's model card reports them.)
_POINT_KEYS = (
    *TABLE1_AUC_COLUMNS,
    "threshold_source",
    *(k for m in THRESHOLD_METRICS for k in (m, f"{m}_ci_low", f"{m}_ci_high")),
    "brier",
)

_NUMBER_OR_NULL = {"type": ["number", "null"]}
#: the figures of the baseline's internal validation per endpoint (optimism.OptimismResult, test beside)
_OPTIMISM_FIGURES = (
    "auc_apparent",
    "auc_optimism",
    "auc_corrected",
    "slope_apparent",
    "slope_optimism",
    "slope_corrected",
    "seconds",
    "auc_test",
    "slope_test",
)
_ROC = {
    "type": "object",
    "required": ["endpoint", "model", "fpr", "tpr", "thresholds"],
    "properties": {
        "endpoint": {"type": "string"},
        "model": {"type": "string"},
        "fpr": {"type": "array", "items": {"type": "number"}},
        "tpr": {"type": "array", "items": {"type": "number"}},
        "thresholds": {"type": "array", "items": {"type": "number"}},
    },
    "additionalProperties": False,
}
#: JSON Schema (draft 2020-12) of ``outcome.json``.
OUTCOME_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "cohortlm gate outcome",
    "type": "object",
    "required": [
        "schema_version",
        "study",
        "endpoints",
        "eval_split",
        "winner",
        "candidate",
        "champion",
        "promoted_model",
        "models",
        "decision",
        "points",
        "serving_thresholds",
        "training",
        "roc",
    ],
    "properties": {
        "schema_version": {"const": OUTCOME_SCHEMA_VERSION},
        "study": {"type": "string", "minLength": 1},
        "endpoints": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "eval_split": {"type": "string"},
        "winner": {"enum": list(WINNERS)},
        "candidate": {"type": "string", "minLength": 1},
        "champion": {"type": "string", "minLength": 1},
        "promoted_model": {"type": "string"},
        "models": {"type": "array", "items": {"type": "string"}},
        "decision": {"type": "object", "required": ["candidate", "champion", "promote", "endpoints"]},
        "points": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        **{k: _NUMBER_OR_NULL for k in _POINT_KEYS if k != "threshold_source"},
                        "threshold_source": {"type": ["string", "null"]},
                        **{k: {"type": ["integer", "null"]} for k in COUNT_COLUMNS},
                    },
                },
            },
        },
        "serving_thresholds": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["threshold", "source", "reason"],
                "properties": {
                    "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                    "source": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
        "training": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "tokens_per_s": _NUMBER_OR_NULL,
                    "train_seconds": _NUMBER_OR_NULL,
                    "peak_memory_mib": _NUMBER_OR_NULL,
                    "losses": {"type": "array", "items": {"type": "number"}},
                },
            },
        },
        "roc": {"type": "array", "items": _ROC},
        # optional: the resolved recipe the LLMs ran (cohortlm.run.profiles.Profile.to_dict)
        "recipe": {"type": ["object", "null"]},
        # optional: per endpoint, model and declared subgroup level, n, cases, AUC with interval
        # and calibration slope (the rows of report/subgroups.csv)
        "subgroups": {
            "type": "array",
            "items": {
                "type": "object",
                "required": list(SUBGROUP_COLUMNS),
                "properties": {
                    **{k: {"type": "string"} for k in ("endpoint", "model", "subgroup", "level")},
                    **{k: {"type": "integer", "minimum": 0} for k in ("n", "cases")},
                    **{k: _NUMBER_OR_NULL for k in ("auc", "auc_ci_low", "auc_ci_high", "slope")},
                },
                "additionalProperties": False,
            },
        },
        # optional: per endpoint and model, calibration on the evaluation split
        # (report/calibration.csv's rows: CITL and slope with intervals, O/E, ICI, Brier)
        "calibration": {
            "type": "array",
            "items": {
                "type": "object",
                "required": list(CALIBRATION_COLUMNS),
                "properties": {
                    "endpoint": {"type": "string"},
                    "model": {"type": "string"},
                    **{k: {"type": "integer", "minimum": 0} for k in ("n", "cases")},
                    **{k: _NUMBER_OR_NULL for k in CALIBRATION_COLUMNS[4:]},
                },
                "additionalProperties": False,
            },
        },
        # optional: net benefit per endpoint, gated model (and treat_all, treat_none) and threshold
        "decision_curve": {
            "type": "array",
            "items": {
                "type": "object",
                "required": list(DECISION_CURVE_COLUMNS),
                "properties": {
                    "endpoint": {"type": "string"},
                    "model": {"type": "string"},
                    "threshold": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                    "net_benefit": _NUMBER_OR_NULL,
                },
                "additionalProperties": False,
            },
        },
        # optional: the baseline's bootstrap optimism correction per endpoint on the training split
        "internal_validation": {
            "type": ["object", "null"],
            "additionalProperties": {
                "type": "object",
                "required": ["n_boot", "auc_apparent", "auc_optimism", "auc_corrected", "slope_corrected"],
                "properties": {
                    **{k: {"type": "integer", "minimum": 0} for k in ("n", "cases", "n_boot")},
                    **{k: _NUMBER_OR_NULL for k in _OPTIMISM_FIGURES},
                },
            },
        },
        # optional: patients and cases per split, the study period (CohortSummary.to_dict)
        "cohort": {
            "type": ["object", "null"],
            "required": ["n", "cases", "labelled"],
            "properties": {
                "n": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                "cases": {"type": "object"},
                "labelled": {"type": "object"},
                "period": {"type": ["array", "null"], "items": {"type": "integer"}},
                "synthetic": {"type": ["boolean", "null"]},
            },
        },
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class RocCurve:
    """One model's ROC curve for one endpoint on the evaluation split."""

    endpoint: str
    model: str
    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    #: capped at 1 (scikit-learn's first point is at +inf, which JSON cannot hold)
    thresholds: tuple[float, ...]

    @classmethod
    def from_points(cls, endpoint: str, model: str, points: pd.DataFrame) -> RocCurve:
        """From :func:`cohortlm.evaluation.endpoint_metrics.roc_points`' frame."""
        return cls(
            endpoint=endpoint,
            model=model,
            fpr=tuple(round(float(v), 6) for v in points["fpr"]),
            tpr=tuple(round(float(v), 6) for v in points["tpr"]),
            thresholds=tuple(round(min(float(v), 1.0), 6) for v in points["threshold"]),
        )


def _subgroup_rows(table: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The subgroup table as JSON rows (NaN as None, counts as integers)."""
    if table is None:
        return []
    rows = []
    for rec in table.to_dict(orient="records"):
        row: dict[str, Any] = {k: str(rec[k]) for k in ("endpoint", "model", "subgroup", "level")}
        row.update({k: int(rec[k]) for k in ("n", "cases")})
        figures = ("auc", "auc_ci_low", "auc_ci_high", "slope")
        row.update({k: None if pd.isna(rec[k]) else float(rec[k]) for k in figures})
        rows.append(row)
    return rows


def _with_test_figures(
    internal: Mapping[str, Mapping[str, Any]] | None, evaluation: Evaluation
) -> dict[str, dict[str, Any]] | None:
    """The baseline's optimism correction per endpoint, its test AUC and slope beside it."""
    if internal is None:
        return None
    aucs = {r["endpoint"]: r.get("auc") for r in evaluation.table1_records() if r["model"] == "baseline"}
    slopes = {
        r["endpoint"]: r.get("slope") for r in evaluation.calibration_records() if r["model"] == "baseline"
    }
    return {
        ep: {**dict(r), "auc_test": aucs.get(ep), "slope_test": slopes.get(ep)} for ep, r in internal.items()
    }


@dataclass(frozen=True)
class GateOutcome:
    """What the gate step decided and every figure a later step needs, in one record.

    Attributes:
        study: The study's name.
        endpoints: The endpoints, in study order.
        eval_split: The split the AUCs, curves and operating points are on.
        winner: One of :data:`WINNERS`.
        candidate: The gate's candidate.
        champion: The model it was gated against.
        promoted_model: The model to promote ("" when the champion stays).
        models: Every model evaluated, in the report's legend order.
        decision: The gate's decision record.
        points: Per model and endpoint, Table 1's operating point (n, cases, AUC with CI,
            threshold chosen on validation and its source, confusion counts).
        serving_thresholds: The promoted model's threshold per endpoint with its source and
            reason, as the server applies them (empty when nothing is promoted).
        training: Per fine-tuned model, what its training measured.
        roc: The ROC curves the KFP UI shows: candidate, baseline and champion, every endpoint.
        recipe: The resolved recipe the LLM steps ran (profile with its ``--set`` overrides), when known.
        cohort: Patients and cases per split and the study period (counts only), when known.
        subgroups: Per endpoint, model and declared subgroup level: n, cases, AUC with
            interval and calibration slope (``report/subgroups.csv``'s rows); the gate's
            test per level is in ``decision.subgroups``.
        calibration: Per endpoint and model, ``report/calibration.csv``'s row.
        decision_curve: Net benefit per endpoint and threshold of the gated models (candidate,
            baseline, champion), treat-all and treat-none (``report/decision_curve.csv``'s rows).
        internal_validation: The baseline's bootstrap optimism correction per endpoint (apparent,
            optimism and corrected AUC and slope), with its test AUC and slope beside them.
    """

    study: str
    endpoints: tuple[str, ...]
    eval_split: str
    winner: str
    candidate: str
    champion: str
    promoted_model: str
    models: tuple[str, ...]
    decision: Decision
    points: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    serving_thresholds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    training: Mapping[str, TrainingFigures] = field(default_factory=dict)
    roc: tuple[RocCurve, ...] = ()
    recipe: Mapping[str, Any] = field(default_factory=dict)
    cohort: CohortSummary | None = None
    subgroups: tuple[Mapping[str, Any], ...] = ()
    calibration: tuple[Mapping[str, Any], ...] = ()
    decision_curve: tuple[Mapping[str, Any], ...] = ()
    internal_validation: Mapping[str, Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.winner not in WINNERS:
            raise ValueError(f"winner must be one of {', '.join(WINNERS)}, got {self.winner!r}")
        if (self.winner == "none") != (self.promoted_model == ""):
            raise ValueError("promoted_model must be empty exactly when the winner is 'none'")

    @classmethod
    def build(
        cls,
        *,
        study: str,
        endpoints: list[str],
        decision: Decision,
        evaluation: Evaluation,
        models: list[str],
        first_champion: bool,
        training: Mapping[str, TrainingFigures] | None = None,
        recipe: Mapping[str, Any] | None = None,
        cohort: CohortSummary | None = None,
        subgroups: pd.DataFrame | None = None,
        internal_validation: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> GateOutcome:
        """The outcome of a decision and the evaluation it was reported with.

        Args:
            study: The study's name.
            endpoints: The endpoints in study order.
            decision: The gate's record.
            evaluation: The report's evaluation (Table 1, ROC points) of every model.
            models: Every model, in legend order.
            first_champion: No champion serves yet (the baseline stands in for one).
            training: Training figures per fine-tuned model.
            recipe: The resolved recipe (:meth:`cohortlm.run.profiles.Profile.to_dict`).
            cohort: Patients and cases per split (:func:`cohortlm.evaluation.cohort_counts.cohort_summary`).
            subgroups: The subgroup table (:func:`cohortlm.evaluation.subgroups.subgroup_table`).
            internal_validation: The baseline's optimism correction
                (:func:`cohortlm.models.baseline.internal_validation`).
        """
        if decision.promote:
            winner, promoted = "candidate", decision.candidate
        elif first_champion:
            winner, promoted = "baseline", "baseline"
        else:
            winner, promoted = "none", ""
        points: dict[str, dict[str, dict[str, Any]]] = {}
        for row in evaluation.table1_records():
            point = {k: row.get(k) for k in _POINT_KEYS}
            point.update({k: None if row.get(k) is None else int(row[k]) for k in COUNT_COLUMNS})
            points.setdefault(str(row["model"]), {})[str(row["endpoint"])] = point
        thresholds = serving_thresholds(evaluation.table1, promoted, endpoints)[1] if promoted else {}
        gated = dict.fromkeys([decision.candidate, "baseline", decision.champion])
        roc = tuple(
            RocCurve.from_points(ep, model, evaluation.roc[(ep, model)])
            for ep in endpoints
            for model in gated
            if (ep, model) in evaluation.roc and len(evaluation.roc[(ep, model)])
        )
        return cls(
            study=study,
            endpoints=tuple(endpoints),
            eval_split=evaluation.eval_split or "test",
            winner=winner,
            candidate=decision.candidate,
            champion=decision.champion,
            promoted_model=promoted,
            models=tuple(models),
            decision=decision,
            points=points,
            serving_thresholds=thresholds,
            training=dict(training or {}),
            roc=roc,
            recipe=dict(recipe or {}),
            cohort=cohort,
            subgroups=tuple(_subgroup_rows(subgroups)),
            calibration=tuple(
                {**r, "n": int(r["n"]), "cases": int(r["cases"])} for r in evaluation.calibration_records()
            ),
            decision_curve=tuple(
                r
                for r in evaluation.decision_curve_records()
                if r["model"] in gated or r["model"] in (TREAT_ALL, TREAT_NONE)
            ),
            internal_validation=_with_test_figures(internal_validation, evaluation),
        )

    @property
    def promote(self) -> bool:
        """Whether the candidate replaces the champion."""
        return bool(self.decision.promote)

    def aucs(self) -> dict[str, dict[str, float]]:
        """AUC per model and endpoint on the evaluation split (endpoints without one left out)."""
        return {
            model: {ep: float(p["auc"]) for ep, p in eps.items() if p.get("auc") is not None}
            for model, eps in self.points.items()
        }

    def roc_of(self, model: str, endpoint: str) -> RocCurve | None:
        """One curve of :attr:`roc`, or None."""
        return next((c for c in self.roc if c.model == model and c.endpoint == endpoint), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (:data:`OUTCOME_SCHEMA`)."""
        return {
            "schema_version": OUTCOME_SCHEMA_VERSION,
            "study": self.study,
            "endpoints": list(self.endpoints),
            "eval_split": self.eval_split,
            "winner": self.winner,
            "candidate": self.candidate,
            "champion": self.champion,
            "promoted_model": self.promoted_model,
            "models": list(self.models),
            "decision": self.decision.to_dict(),
            "points": {m: {e: dict(p) for e, p in eps.items()} for m, eps in self.points.items()},
            "serving_thresholds": {e: dict(t) for e, t in self.serving_thresholds.items()},
            "training": {m: t.to_dict() for m, t in self.training.items()},
            "roc": [
                {
                    "endpoint": c.endpoint,
                    "model": c.model,
                    "fpr": list(c.fpr),
                    "tpr": list(c.tpr),
                    "thresholds": list(c.thresholds),
                }
                for c in self.roc
            ],
            "recipe": dict(self.recipe) or None,
            "cohort": self.cohort.to_dict() if self.cohort is not None else None,
            "subgroups": [dict(r) for r in self.subgroups],
            "calibration": [dict(r) for r in self.calibration],
            "decision_curve": [dict(r) for r in self.decision_curve],
            "internal_validation": (
                {ep: dict(r) for ep, r in self.internal_validation.items()}
                if self.internal_validation is not None
                else None
            ),
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "outcome record") -> GateOutcome:
        """Rebuild an outcome, checked against :data:`OUTCOME_SCHEMA` first.

        Raises:
            SpecError: The record does not match the schema (the message names the field).
        """
        import jsonschema

        errors = sorted(
            jsonschema.Draft202012Validator(OUTCOME_SCHEMA).iter_errors(data), key=lambda e: list(e.path)
        )
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(top level)"
            # The validator's message quotes the offending value; the field and rule are enough.
            rule = errors[0].validator
            raise SpecError(
                f"{source} is not a gate outcome: {where} breaks the schema's '{rule}' rule; "
                "re-run the gate step"
            )
        return cls(
            study=data["study"],
            endpoints=tuple(data["endpoints"]),
            eval_split=data["eval_split"],
            winner=data["winner"],
            candidate=data["candidate"],
            champion=data["champion"],
            promoted_model=data["promoted_model"],
            models=tuple(data["models"]),
            decision=Decision.from_dict(data["decision"]),
            points=data["points"],
            serving_thresholds=data["serving_thresholds"],
            training={m: TrainingFigures.from_record(t) for m, t in data["training"].items()},
            roc=tuple(
                RocCurve(
                    endpoint=c["endpoint"],
                    model=c["model"],
                    fpr=tuple(c["fpr"]),
                    tpr=tuple(c["tpr"]),
                    thresholds=tuple(c["thresholds"]),
                )
                for c in data["roc"]
            ),
            recipe=dict(data.get("recipe") or {}),
            cohort=CohortSummary.from_dict(data["cohort"]) if data.get("cohort") else None,
            subgroups=tuple(data.get("subgroups") or ()),
            calibration=tuple(data.get("calibration") or ()),
            decision_curve=tuple(data.get("decision_curve") or ()),
            internal_validation=data.get("internal_validation"),
        )

    def write(self, folder: str | Path) -> Path:
        """Write ``outcome.json`` into ``folder`` (created); returns its path."""
        path = Path(folder) / OUTCOME_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))
        return path

    @classmethod
    def read(cls, folder: str | Path) -> GateOutcome:
        """Read ``folder/outcome.json`` (a gate step's output).

        Raises:
            SpecError: It is missing, not JSON, or not a gate outcome.
        """
        path = Path(folder) / OUTCOME_FILE
        if not path.is_file():
            raise SpecError(f"{path} is missing: the folder is not a gate step's output")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path} is not JSON (line {exc.lineno}); re-run the gate step") from None
        return cls.from_dict(data, source=str(path))
