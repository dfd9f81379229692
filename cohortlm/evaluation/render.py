"""A report's files: the ROC figure, Table 1, metrics, summary, decision record and HTML page.

The top of the evaluation layer: it draws with :mod:`~cohortlm.evaluation.figures`,
lays out the page with :mod:`~cohortlm.evaluation.report_html`, and both of them
read :mod:`~cohortlm.evaluation.report` (what a report holds), never this module.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cohortlm.contracts import DECISION_FILE, OUTCOME_FILE
from cohortlm.evaluation.cohort_counts import CohortSummary
from cohortlm.evaluation.comparisons import family_records
from cohortlm.evaluation.figures import plot_roc
from cohortlm.evaluation.report import (
    MIN_CASES,
    ReportData,
    compute_report,
    small_sample_endpoints,
    small_sample_warnings,
    summary_markdown,
    table1_best,
    table1_markdown,
)
from cohortlm.evaluation.report_html import render_html
from cohortlm.evaluation.run_folder import RunData, read_run_dir
from cohortlm.evaluation.tripod import (
    TRIPOD_FILE,
    ChecklistEntry,
    report_evidence,
    tripod_checklist,
    tripod_html,
    tripod_markdown,
)

__all__ = ["ReportPaths", "render_report", "write_report"]


@dataclass(frozen=True)
class ReportPaths:
    """Where :func:`render_report` put each output."""

    roc_png: Path
    index_html: Path
    table1_md: Path
    table1_csv: Path
    metrics_json: Path
    summary_md: Path
    decision_json: Path | None


def _json_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts (NaN as None)."""
    rows = table.astype(object).where(table.notna(), None).to_dict(orient="records")
    return [{k: (bool(v) if isinstance(v, (bool, np.bool_)) else v) for k, v in r.items()} for r in rows]


def write_report(
    run_dir: str | Path, *, out_dir: str | Path | None = None, threshold_method: str | float = "youden"
) -> ReportPaths:
    """Re-render a finished run's report from its folder (``cohortlm report RUN_DIR``).

    The pipeline does not come this way: its gate step renders what it has just
    computed, from memory (:func:`render_report`). This reads the files a run left.

    Args:
        run_dir: The run folder (layout in the module docstring).
        out_dir: Where to write; default ``RUN_DIR/report``.
        threshold_method: See :func:`cohortlm.evaluation.endpoint_metrics.choose_threshold`.

    Returns:
        The paths written.
    """
    run = read_run_dir(run_dir)
    report = compute_report(
        run.labels,
        run.scores,
        run.split,
        endpoints=run.endpoints,
        study=run.study,
        candidate=run.candidate,
        champion=run.champion,
        policy=run.policy,
        decision=run.decision,
        threshold_method=threshold_method,
        profile=(run.run_info or {}).get("profile"),
        threshold_pool=run.threshold_pool,
    )
    report = replace(report, internal_validation=_outcome_internal_validation(Path(run_dir)))
    if run.subgroup_levels is not None:
        report = replace(report, subgroups=_subgroups(run, report, run.subgroup_levels))
    cohort = _outcome_cohort(Path(run_dir))
    if cohort is not None:
        report = replace(report, cohort=cohort)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    return render_report(
        report,
        out,
        run_info=run.run_info,
        validation=run.validation,
        study_name=run.study.name if run.study is not None else None,
    )


def _subgroups(run: RunData, report: ReportData, levels: pd.DataFrame) -> pd.DataFrame:
    """``subgroups.csv``'s rows from the run folder, on the split the gate step reported them."""
    from cohortlm.evaluation.subgroups import subgroup_table

    split = report.evaluation.eval_split or (report.decision.policy.split if report.decision else "test")
    rows = run.split.index[run.split == split]
    scores = {m: run.scores[m] for m in report.models}
    return subgroup_table(run.labels, scores, levels, endpoints=report.endpoints, rows=rows)


def _outcome_internal_validation(run_dir: Path) -> dict[str, Any] | None:
    """The regression's optimism correction the gate step recorded in ``outcome.json`` (if any)."""
    path = run_dir / OUTCOME_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    found = data.get("internal_validation") if isinstance(data, dict) else None
    if not isinstance(found, dict):
        return None
    # The test figures are the report's own (Table 1, calibration): not carried over.
    return {
        ep: {k: v for k, v in r.items() if k not in ("auc_test", "slope_test")} for ep, r in found.items()
    }


def _outcome_cohort(run_dir: Path) -> CohortSummary | None:
    """The split sizes the gate step recorded in ``outcome.json`` (absent in older runs)."""
    try:
        data = json.loads((run_dir / OUTCOME_FILE).read_text())
        return CohortSummary.from_dict(data["cohort"]) if data.get("cohort") else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def render_report(
    report: ReportData,
    out_dir: str | Path,
    *,
    run_info: Mapping[str, Any] | None = None,
    validation: Mapping[str, Any] | None = None,
    study_name: str | None = None,
) -> ReportPaths:
    """Write a report's files (figure, Table 1, metrics, summary, decision, HTML page).

    Args:
        report: What :func:`~cohortlm.evaluation.report.compute_report` computed.
        out_dir: The report folder (created).
        run_info: ``run.json``'s fields, for the page's header.
        validation: The validation report, for the page's data-quality section.
        study_name: The study's name, for the page's title.

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(
        roc_png=out / "roc.png",
        index_html=out / "index.html",
        table1_md=out / "table1.md",
        table1_csv=out / "table1.csv",
        metrics_json=out / "metrics.json",
        summary_md=out / "summary.md",
        decision_json=out / DECISION_FILE if report.decision is not None else None,
    )
    fig = plot_roc(report)
    png = io.BytesIO()
    fig.savefig(png, dpi=150, format="png")
    paths.roc_png.write_bytes(png.getvalue())
    # The CSV names, per row, the metrics in which the model is its endpoint's best (bold in the .md).
    report.evaluation.table1.assign(best=table1_best(report.evaluation.table1)).to_csv(
        paths.table1_csv, index=False
    )
    paths.table1_md.write_text(
        table1_markdown(report.evaluation.table1, conf_level=report.evaluation.conf_level)
    )
    paths.summary_md.write_text(summary_markdown(report))
    metrics = report.evaluation.to_dict()
    metrics["models"] = report.models
    metrics["endpoints"] = report.endpoints
    metrics["decision"] = report.decision.to_dict() if report.decision is not None else None
    metrics["notes"] = report.notes
    metrics["profile"] = report.profile
    metrics["small_sample"] = {
        "min_cases": MIN_CASES,
        "endpoints": small_sample_endpoints(report),
        "warnings": small_sample_warnings(report),
    }
    metrics["vs_baseline"] = _json_records(report.vs_baseline) if report.vs_baseline is not None else None
    metrics["fine_tuning"] = _json_records(report.fine_tuning) if report.fine_tuning is not None else None
    metrics["families"] = family_records(report.families)
    if report.fine_tuning is not None:
        report.fine_tuning.to_csv(out / "fine_tuning.csv", index=False)
    if report.families:
        pd.concat(report.families.values(), ignore_index=True).to_csv(out / "families.csv", index=False)
    metrics["subgroups"] = _json_records(report.subgroups) if report.subgroups is not None else None
    if report.subgroups is not None:
        report.subgroups.to_csv(out / "subgroups.csv", index=False)
    clinical_figures = _write_clinical_evidence(report, out, metrics)
    paths.metrics_json.write_text(json.dumps(metrics, indent=2, ensure_ascii=False, allow_nan=False))
    if paths.decision_json is not None and report.decision is not None:
        paths.decision_json.write_text(report.decision.to_json())
    # Last before the page: the checklist cites the files written above (and the page itself).
    tripod = _write_tripod(report, out, validation=validation, metrics_keys=metrics, study_name=study_name)
    paths.index_html.write_text(
        render_html(
            report,
            figure_png=png.getvalue(),
            run_info=dict(run_info) if run_info is not None else None,
            validation=dict(validation) if validation is not None else None,
            study_name=study_name,
            tripod=tripod_html(tripod),
            figures=clinical_figures,
        ),
        encoding="utf-8",
    )
    return paths


def _write_tripod(
    report: ReportData,
    out: Path,
    *,
    validation: Mapping[str, Any] | None,
    metrics_keys: Mapping[str, Any],
    study_name: str | None,
) -> list[ChecklistEntry]:
    """Write ``tripod_ai.md`` (TRIPOD+AI, item by item) into the report folder; return its entries."""
    # Paths in the checklist are relative to the run folder, whose report folder this is.
    run_dir, prefix = (out.parent, "report/") if out.name == "report" else (out, "")
    evidence = report_evidence(
        report,
        run_dir,
        validation=validation,
        metrics_keys=metrics_keys,
        written=[f"{prefix}index.html", f"{prefix}{TRIPOD_FILE}"],
        small_sample=[str(r["endpoint"]) for r in small_sample_endpoints(report)],
    )
    entries = tripod_checklist(evidence)
    (out / TRIPOD_FILE).write_text(tripod_markdown(entries, study=study_name), encoding="utf-8")
    return entries


def _write_clinical_evidence(report: ReportData, out: Path, metrics: dict[str, Any]) -> dict[str, bytes]:
    """Calibration and decision curves (CSV + figure) and the internal validation into ``out``, ``metrics``.

    ``metrics`` already holds ``calibration`` and ``decision_curve`` (:meth:`Evaluation.to_dict`);
    this adds ``internal_validation``. Returns the figures' PNG bytes by name, for the page.
    """
    from cohortlm.evaluation.figures import plot_calibration, plot_decision_curve

    ev = report.evaluation
    ev.calibration_table.to_csv(out / "calibration.csv", index=False)
    ev.decision_curve.to_csv(out / "decision_curve.csv", index=False)
    metrics["internal_validation"] = report.internal_validation
    figures: dict[str, bytes] = {}
    for name, plot in (("calibration", plot_calibration), ("decision_curve", plot_decision_curve)):
        buffer = io.BytesIO()
        plot(report).savefig(buffer, dpi=150, format="png")
        (out / f"{name}.png").write_bytes(buffer.getvalue())
        figures[name] = buffer.getvalue()
    return figures
