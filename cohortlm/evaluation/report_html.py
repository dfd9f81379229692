"""``report/index.html``: the run's report as one self-contained page to open in a browser.

One file, nothing fetched: the figure is an inline PNG (``data:`` URI), the
style is inline and there is no script. Top to bottom: the verdict with its n,
the warnings (a smoke run, endpoints too small to judge), the ROC figure, the
gate per endpoint, the comparison families, Table 1, the validation summary and
the notes. Everything comes from :class:`cohortlm.evaluation.report.ReportData` and the run
folder's optional ``summary.json`` and ``validation/validation.json``; the page
holds model and endpoint names, counts and statistics, never a patient's value.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from cohortlm.evaluation.report import (
    FINE_TUNING_ALPHA,
    ReportData,
    _num,
    _p,
    decision_headline,
    decision_reasons,
    model_label,
    small_sample_warnings,
    table1_cells,
)

__all__ = ["render_html"]

_STYLE = """
body{font-family:"Liberation Sans",Arial,Helvetica,sans-serif;margin:0 auto;padding:1em 2em;
max-width:1600px;color:#222;line-height:1.4}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
.meta{color:#555;margin:.2em 0 .8em}
.verdict{border:2px solid;border-radius:6px;padding:.5em 1em;margin:.5em 0}
.verdict .word{font-size:1.6em;font-weight:bold;letter-spacing:.03em}
.promote{border-color:#1b7f3b;background:#eef8f0}.promote .word{color:#1b7f3b}
.keep{border-color:#8a6d00;background:#fdf8e6}.keep .word{color:#8a6d00}
.none{border-color:#777;background:#f4f4f4}
.warn{border-left:6px solid #b00020;background:#fdecee;padding:.4em 1em;margin:.5em 0}
.warn p{margin:.3em 0}
figure{margin:.5em 0}figure img{width:100%;height:auto;display:block}
figcaption{color:#555;font-size:.9em}
table{border-collapse:collapse;font-size:13px;margin:.3em 0 1em}
th,td{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th{background:#f2f2f2}td:first-child,th:first-child,td.l,th.l{text-align:left}
.sig{font-weight:bold}.small{color:#b00020}.ok{color:#1b7f3b}.bad{color:#b00020}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


#: a cell text starting with this is shown bold (Table 1's best values)
BOLD = "\x02"


def _cell(text: str) -> str:
    return f"<b>{_e(text[1:])}</b>" if text.startswith(BOLD) else _e(text)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1, classes=None) -> str:
    """An HTML table; the first ``left`` columns are text (left-aligned), the rest numbers."""
    th = "".join(f"<th{' class=l' if i < left else ''}>{_e(h)}</th>" for i, h in enumerate(head))
    body = []
    for r, row in enumerate(rows):
        css = f" class='{classes[r]}'" if classes and classes[r] else ""
        cells = "".join(f"<td{' class=l' if i < left else ''}>{_cell(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _verdict(report: ReportData) -> str:

    d = report.decision
    if d is None:
        return (
            "<section id='verdict' class='verdict none'><div class='word'>NO GATE DECISION</div>"
            "<p>decision.json is absent and run.json names no candidate and champion.</p></section>"
        )
    css, word = ("promote", "PROMOTE") if d.promote else ("keep", "KEEP CHAMPION")
    return (
        f"<section id='verdict' class='verdict {css}'><div class='word'>{word}</div>"
        f"<p>{_e(decision_headline(report))}.</p><p>{_e(decision_reasons(d)[0]) if d.reasons else ''}</p>"
        "</section>"
    )


def _warnings(report: ReportData) -> str:

    lines = small_sample_warnings(report)
    if not lines:
        return ""
    return "<section id='warnings' class='warn'>" + "".join(f"<p>{_e(w)}</p>" for w in lines) + "</section>"


def _figure(report: ReportData, png: bytes) -> str:
    ev = report.evaluation
    data = base64.b64encode(png).decode("ascii")
    alt = f"ROC curves, one panel per endpoint, on the {ev.eval_split or 'evaluated'} split"
    return (
        f"<figure id='roc'><img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"
        f"<figcaption>One panel per endpoint; each legend gives the panel's n and cases and each "
        f"model's AUC with its {ev.conf_level * 100:g}% confidence interval (logit DeLong).</figcaption>"
        "</figure>"
    )


def _gate(report: ReportData) -> str:

    d = report.decision
    if d is None:
        return ""

    head = [
        "Endpoint", "n (cases)", f"AUC {model_label(d.candidate)}", f"AUC {model_label(d.champion)}",
        "ΔAUC (CI)", "z", "p better (adj.)", "p worse (adj.)", "Verdict",
    ]  # fmt: skip
    rows, classes = [], []
    for v in d.endpoints:
        rows.append(
            [
                v.endpoint, f"{v.n} ({v.n_cases})", _num(v.auc_candidate), _num(v.auc_champion),
                f"{_num(v.delta)} ({_num(v.ci_delta[0])} to {_num(v.ci_delta[1])})", _num(v.z, 2),
                f"{_num(v.p_better, 4)} ({_num(v.p_better_adjusted, 4)})",
                f"{_num(v.p_worse, 4)} ({_num(v.p_worse_adjusted, 4)})", v.verdict,
            ]
        )  # fmt: skip
        classes.append("small" if v.insufficient else "")

    reasons = "".join(f"<li>{_e(r)}</li>" for r in decision_reasons(d))
    notes = "".join(f"<li>{_e(n)}</li>" for n in d.notes)
    per_endpoint = "".join(f"<li>{_e(r)}</li>" for v in d.endpoints for r in v.reasons)
    return (
        f"<section id='gate'><h2>The decision in words</h2><ul>{reasons}</ul>"
        + (f"<p>Notes on the design:</p><ul>{notes}</ul>" if notes else "")
        + f"<h2>The gate per endpoint (paired DeLong, {_e(d.policy.split)} split, look {d.look})</h2>"
        + _table(head, rows, classes=classes)
        + f"<details><summary>Each endpoint's verdict in words</summary><ul>{per_endpoint}</ul></details>"
        + "</section>"
    )


def _family(family: str, table: pd.DataFrame) -> str:
    from cohortlm.evaluation.comparisons import FAMILIES

    title, what, _ = FAMILIES[family]
    head = ["Model A", "Model B", "Endpoint", "n (cases)", "AUC A", "AUC B", "ΔAUC A−B (95% CI)", "z", "p",
            "p (Holm)"]  # fmt: skip
    rows, classes = [], []
    for r in table.to_dict(orient="records"):
        rows.append(
            [
                model_label(str(r["model_a"])), model_label(str(r["model_b"])), r["endpoint"],
                f"{r['n']} ({r['n_cases']})", _num(r["auc_a"]), _num(r["auc_b"]),
                f"{_num(r['delta'])} ({_num(r['ci_low'])} to {_num(r['ci_high'])})", _num(r["z"], 2),
                _p(r["p"]), _p(r["p_adjusted"]) + (" *" if r["significant"] else ""),
            ]
        )  # fmt: skip
        classes.append("sig" if r["significant"] else "")
    n_sig = int(table["significant"].sum())
    return (
        f"<h3>{_e(title)}</h3><p>{_e(what)}; Holm over the family's {len(table)} tests, "
        f"α {FINE_TUNING_ALPHA:g}. <b>Significant in {n_sig} of {len(table)}</b> (marked *).</p>"
        + _table(head, rows, left=3, classes=classes)
    )


def _families(report: ReportData) -> str:
    if not report.families:
        return ""
    body = "".join(_family(family, table) for family, table in report.families.items())
    return (
        "<section id='families'><h2>Comparison families</h2><p>Seed 000's families, each adjusted on "
        "its own: base vs base (zero-shot), fine-tuned vs its own base, fine-tuned vs this run's "
        "logistic regression; candidate vs champion is the gate above. A run with one base model "
        "has no base-vs-base family.</p>"
        f"{body}</section>"
    )


def _table1(report: ReportData) -> str:

    ev = report.evaluation
    head, rows = table1_cells(ev.table1, conf_level=ev.conf_level, bold=lambda t: BOLD + t)
    return (
        f"<section id='table1'><h2>Table 1</h2><p>Thresholds chosen by {_e(ev.threshold_method)} on "
        f"the {_e(ev.threshold_split or 'evaluated')} split and applied to the "
        f"{_e(ev.eval_split or 'same')} split; a patient is predicted a case when score ≥ threshold. "
        "Bold: each endpoint's best value per metric (higher; Brier: lower).</p>"
        + _table(head, rows, left=2)
        + "</section>"
    )


def _subgroups(report: ReportData) -> str:
    """Per endpoint and declared subgroup level: every model's AUC (CI) and slope, and the gate's test."""
    table = report.subgroups
    if table is None or table.empty:
        return ""
    models = list(dict.fromkeys(table["model"]))
    tested = report.decision.subgroups if report.decision is not None else ()
    gate = {(v.endpoint, v.subgroup, v.level): v for v in tested}
    head = [
        "Endpoint",
        "Subgroup",
        "Level",
        "n (cases)",
        *(f"AUC {model_label(m)} (CI); slope" for m in models),
    ]
    head += ["Gate: ΔAUC, p worse (adj.)"] if gate else []
    rows, classes = [], []
    for (ep, sub, level), group in table.groupby(["endpoint", "subgroup", "level"], sort=False):
        by_model = {r["model"]: r for r in group.to_dict(orient="records")}
        first = next(iter(by_model.values()))
        row = [str(ep), str(sub), str(level), f"{first['n']} ({first['cases']})"]
        for m in models:
            r = by_model.get(m)
            row.append(
                "n/a" if r is None else
                f"{_num(r['auc'])} ({_num(r['auc_ci_low'])}–{_num(r['auc_ci_high'])}); {_num(r['slope'], 2)}"
            )  # fmt: skip
        v = gate.get((str(ep), str(sub), str(level)))
        if gate:
            row.append("" if v is None else f"{_num(v.delta)}, {_num(v.p_worse_adjusted, 4)}: {v.verdict}")
        rows.append(row)
        classes.append("" if v is None else ("small" if not v.tested else ("sig" if v.worse else "")))
    return (
        "<section id='subgroups'><h2>Subgroups</h2><p>Every model in each level of the subgroups the "
        "study declares, on the evaluation split (subgroups.csv). The gate tests the candidate against "
        "the champion in each level with enough cases and controls (one-sided paired DeLong, adjusted "
        "over the levels tested): a level where it is shown worse blocks promotion.</p>"
        + _table(head, rows, left=3, classes=classes)
        + "</section>"
    )


_FIGURE_TEXT = {
    "calibration": (
        "Calibration curves, one panel per endpoint",
        "Observed against predicted risk per endpoint: each model's lowess-smoothed curve (the curve "
        "behind the ICI) and its risk deciles with 95% Wilson intervals; the dashed diagonal is perfect "
        "calibration; the strip below each panel shows how predicted risk is distributed.",
    ),
    "decision_curve": (
        "Decision curves, one panel per endpoint",
        "Net benefit (TP/n − FP/n · t/(1 − t)) against the threshold probability t, for every model, "
        "treating all and treating none; a dotted line marks the study's declared decision threshold. "
        "A model helps where its curve lies above both references (decision_curve.csv).",
    ),
}


def _clinical(report: ReportData, figures: Mapping[str, bytes]) -> str:
    """Calibration (table and figure), decision curves and the baseline's internal validation."""
    ev = report.evaluation
    parts = []
    cal = ev.calibration_table
    if len(cal):
        pct = f"{ev.conf_level * 100:g}%"
        head = [
            "Endpoint",
            "Model",
            "n (cases)",
            f"CITL ({pct} CI)",
            f"Slope ({pct} CI)",
            "O/E",
            "ICI",
            "Brier",
        ]
        rows = [
            [str(r["endpoint"]), model_label(str(r["model"])), f"{int(r['n'])} ({int(r['cases'])})",
             f"{_num(r['citl'])} ({_num(r['citl_ci_low'])} to {_num(r['citl_ci_high'])})",
             f"{_num(r['slope'])} ({_num(r['slope_ci_low'])} to {_num(r['slope_ci_high'])})",
             _num(r["oe_ratio"]), _num(r["ici"], 4), _num(r["brier"], 4)]
            for r in cal.to_dict(orient="records")
        ]  # fmt: skip
        parts.append(
            "<section id='calibration-table'><h2>Calibration</h2><p>Calibration-in-the-large (CITL, 0 is "
            "ideal; below 0 the model over-predicts) and slope (1 is ideal; below 1 the predictions are "
            "too extreme) from a logistic recalibration with Wald intervals; O/E is observed over "
            "expected cases; ICI the mean gap between predicted and smoothed observed risk (Austin "
            "&amp; Steyerberg 2019) (calibration.csv).</p>" + _table(head, rows, left=2) + "</section>"
        )
    for name, png in figures.items():
        alt, caption = _FIGURE_TEXT.get(name, (name, ""))
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<figure id='{_e(name)}'><img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    iv = report.internal_validation
    if iv:
        head = ["Endpoint", "n (cases)", "Resamples", "AUC apparent", "AUC optimism", "AUC corrected",
                "AUC test", "Slope apparent", "Slope corrected", "Slope test"]  # fmt: skip
        table = ev.table1.set_index(["endpoint", "model"]) if len(ev.table1) else None
        cal_ix = cal.set_index(["endpoint", "model"]) if len(cal) else None
        rows = []
        for ep, r in iv.items():
            test_auc = (
                table.loc[(ep, "baseline"), "auc"]
                if table is not None and (ep, "baseline") in table.index
                else None
            )
            test_slope = (
                cal_ix.loc[(ep, "baseline"), "slope"]
                if cal_ix is not None and (ep, "baseline") in cal_ix.index
                else None
            )
            rows.append(
                [str(ep), f"{r.get('n')} ({r.get('cases')})", str(r.get("n_boot")),
                 _num(r.get("auc_apparent")),
                 _num(r.get("auc_optimism")), _num(r.get("auc_corrected")), _num(test_auc),
                 _num(r.get("slope_apparent")), _num(r.get("slope_corrected")), _num(test_slope)]
            )  # fmt: skip
        parts.append(
            "<section id='internal-validation'><h2>Internal validation of the logistic regression</h2>"
            "<p>Harrell's bootstrap optimism correction on the training split: the regression refitted "
            "on each resample, its AUC and calibration slope on the resample minus on the training "
            "patients averaged into the optimism; corrected = apparent − optimism, beside the test "
            f"split's figures ({_e(ev.eval_split or 'evaluated')}).</p>"
            + _table(head, rows, left=1)
            + "</section>"
        )
    return "".join(parts)


def _validation(validation: Mapping[str, Any] | None) -> str:
    if validation is None:
        return (
            "<section id='validation'><h2>Validation</h2><p>No validation report in this run "
            "folder (validation/validation.json).</p></section>"
        )
    failed = [e for e in validation.get("expectations", []) if not e.get("success")]
    ok = bool(validation.get("success"))
    n_exp = validation.get("n_expectations", len(validation.get("expectations", [])))
    gx = validation.get("great_expectations")
    head = (
        f"<p class='{'ok' if ok else 'bad'}'><b>{'Passed' if ok else 'Failed'}</b>: "
        f"{int(n_exp) - len(failed)} of {n_exp} expectations met on {validation.get('n_rows', '?')} rows "
        f"and {validation.get('n_columns', '?')} columns"
        + (f" (Great Expectations {_e(gx)})" if gx else "")
        + ". Full report: <a href='../validation/validation.html'>validation/validation.html</a>.</p>"
    )
    table = ""
    if failed:
        rows = [
            [str(e.get("name", "")), str(e.get("unexpected_count") or e.get("note") or "failed"),
             str(e.get("description", ""))]
            for e in failed
        ]  # fmt: skip
        table = _table(["Expectation", "Failing rows", "What it checks"], rows, left=3)
    return f"<section id='validation'><h2>Validation</h2>{head}{table}</section>"


def render_html(
    report: ReportData,
    *,
    figure_png: bytes,
    run_info: Mapping[str, Any] | None = None,
    validation: Mapping[str, Any] | None = None,
    study_name: str | None = None,
    tripod: str = "",
    figures: Mapping[str, bytes] | None = None,
) -> str:
    """The report page: verdict, warnings, figure, gate, comparison families, Table 1, validation.

    Args:
        report: Output of :func:`cohortlm.evaluation.report.compute_report`.
        figure_png: The ROC figure as PNG bytes (inlined).
        run_info: The run folder's ``summary.json`` (run id, study, profile, wall time), if any.
        validation: The run folder's ``validation/validation.json``, if any.
        study_name: The study's name when ``run_info`` does not give it.
        tripod: The TRIPOD+AI checklist's section (:func:`cohortlm.evaluation.tripod.tripod_html`).
        figures: The calibration and decision-curve figures as PNG bytes (``calibration``,
            ``decision_curve``), inlined after Table 1 with the calibration table and the
            baseline's internal validation.

    Returns:
        One HTML document that needs no other file.
    """
    info = dict(run_info or {})
    study = info.get("study") or study_name or (validation or {}).get("study") or "study"
    meta = [f"study {study}"]
    if info.get("run_id"):
        meta.append(f"run {info['run_id']}")
    if report.profile:
        meta.append(f"profile {report.profile}")
    if isinstance(info.get("wall_seconds"), (int, float)):
        meta.append(f"wall time {info['wall_seconds']:.0f} s")
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # No favicon request: the page must load with nothing else fetched.
        "<link rel='icon' href='data:,'>"
        f"<title>cohortlm report · {_e(study)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>Run report: {_e(study)}</h1><p class='meta'>{_e(' · '.join(meta))}</p></header>"
        + _verdict(report)
        + _warnings(report)
        + _figure(report, figure_png)
        + _gate(report)
        + _families(report)
        + _table1(report)
        + _clinical(report, figures or {})
        + _subgroups(report)
        + _validation(validation)
        + tripod
        + (f"<section id='notes'><h2>Notes</h2><ul>{notes}</ul></section>" if notes else "")
        + "</body></html>\n"
    )
