"""The ROC figure (seed 000, Figure 1) and a check that a drawn figure is readable.

:func:`plot_roc` draws one panel per endpoint. Each panel's legend sits below
its axes, never over the curves: one line per model with a human name
(:func:`model_label`) and its AUC (95 % CI); the legend's title gives the
panel's n and cases, in red when the endpoint has too few cases or controls to
judge (:data:`cohortlm.evaluation.report.MIN_CASES`). The figure's title names the split
and the number of patients, and a second line says when the evaluation is small
or the run is a smoke run whose AUCs mean nothing.

:func:`layout_problems` reads the drawn figure's artist boxes (legends, texts,
axes) with the renderer and lists every legend that covers a data region and
every artist cut off at the figure's edge; the figure's test fails on any.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from cohortlm.evaluation.report import (
    MIN_CASES,
    SMOKE_PROFILE,
    ReportData,
    model_label,
    panel_layout,
    small_sample_endpoints,
)

__all__ = [
    "MODEL_COLORS",
    "layout_problems",
    "model_styles",
    "plot_calibration",
    "plot_decision_curve",
    "plot_roc",
]

MODEL_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")
_WARN_COLOR = "#b00020"
#: zero-shot base models are drawn dashed in their base's colour, the fine-tuned ones solid
_ZERO_SHOT_DASH = (0, (4, 2))


def model_styles(models: Sequence[str]) -> dict[str, tuple[str, Any]]:
    """Colour and line style per model, the same in every panel.

    A base LLM and its fine-tuned form share a colour, the zero-shot one dashed
    and the fine-tuned one solid, so that a reader pairs them at a glance; every
    other model (the baseline, the champion) gets a colour of its own, solid.
    """
    from cohortlm.evaluation.comparisons import llm_pairs

    pairs = llm_pairs(list(models))
    zero_shot = {z: f for z, f in pairs}
    fine_tuned = {f: z for z, f in pairs}
    colours = iter(MODEL_COLORS * (len(models) // len(MODEL_COLORS) + 1))
    out: dict[str, tuple[str, Any]] = {}
    for m in models:
        if m in out:
            continue
        colour = next(colours)
        if m in zero_shot:
            out[m] = (colour, _ZERO_SHOT_DASH)
            out[zero_shot[m]] = (colour, "solid")
        elif m in fine_tuned:
            out[m] = (colour, "solid")
            out[fine_tuned[m]] = (colour, _ZERO_SHOT_DASH)
        else:
            out[m] = (colour, "solid")
    return out


def _panel_legend_title(n: int, n_cases: int, *, min_cases: int, has_auc: bool) -> tuple[str, bool]:
    """The legend title (n and cases) and whether it warns."""
    n_controls = n - n_cases
    text = f"n = {n}, {n_cases} cases"
    if not has_auc:
        return text + "\nAUC undefined (one class only)", True
    small = min(n_cases, n_controls) < min_cases
    if small:
        text += f" (under {min_cases}: imprecise)"
    return text + "\nAUC (95% CI)", small


def plot_roc(
    report: ReportData,
    *,
    title: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """The ROC figure: a panel per endpoint, a legend below each panel.

    Args:
        report: Output of :func:`cohortlm.evaluation.report.compute_report`.
        title: The figure's first title line; default names the split and n.
        labels: Display name per model; default :func:`model_label`.

    Returns:
        A matplotlib Figure (no pyplot state is touched; save with ``fig.savefig``).
    """

    layout = panel_layout(report.endpoints)
    nrows, ncols = len(layout), len(layout[0])
    names = {m: (labels or {}).get(m) or model_label(m) for m in report.models}
    table = report.evaluation.table1.set_index(["endpoint", "model"])
    legend_rows = len(report.models) + 2  # the title's two lines, then one line per model
    legend_h = 0.16 * legend_rows + 0.15
    # One panel alone still gets room for its legend and the title's warnings.
    width = max(3.7 * ncols, 5.5)
    fig = Figure(figsize=(width, (3.35 + legend_h) * nrows + 0.9), layout="constrained")
    grid = fig.add_gridspec(2 * nrows, ncols, height_ratios=[3.0, legend_h] * nrows)
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    for r, row in enumerate(layout):
        for c, ep in enumerate(row):
            if ep is None:
                continue
            ax = fig.add_subplot(grid[2 * r, c])
            legend_ax = fig.add_subplot(grid[2 * r + 1, c])
            legend_ax.set_axis_off()
            _draw_panel(ax, legend_ax, report, ep, table, names, title=f"({next(letters)}) ")
    n_max = int(report.evaluation.table1["n"].max()) if len(report.evaluation.table1) else 0
    split = report.evaluation.eval_split or "all rows"
    head = title or f"ROC curves on the {split} split ({n_max} patients)"
    warnings = _figure_warnings(report, small_sample_endpoints(report), split)
    # The warning is part of the title, so that no one reads the curves without it; wrapped
    # to the figure's width (about 10 characters an inch at 12 pt).
    width = max(30, int(fig.get_figwidth() * 10))
    lines = [part for line in [head, *warnings] for part in textwrap.wrap(line, width)]
    fig.suptitle("\n".join(lines), fontsize=12, color=_WARN_COLOR if warnings else "black")
    return fig


def _figure_warnings(report: ReportData, small: Sequence[Mapping[str, Any]], split: str) -> list[str]:

    lines = []
    if report.profile == SMOKE_PROFILE:
        lines.append("Smoke run: a tiny random model, for checking the pipeline. These AUCs mean nothing.")
    if small:
        lines.append(
            f"Fewer than {MIN_CASES} cases or controls on the {split} split for {len(small)} of "
            f"{len(report.endpoints)} endpoints: their AUCs are imprecise (95% CI wider than ±0.07)."
        )
    return lines


def _draw_panel(
    ax: Any,
    legend_ax: Any,
    report: ReportData,
    ep: str,
    table: Any,
    names: Mapping[str, str],
    *,
    title: str,
) -> None:

    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=0.8)
    handles, texts = [], []
    styles = model_styles(report.models)
    for model in report.models:
        color, dash = styles[model]
        pts = report.evaluation.roc.get((ep, model))
        if (ep, model) not in table.index:
            continue
        row = table.loc[(ep, model)]
        auc, lo, hi = float(row["auc"]), float(row["auc_ci_low"]), float(row["auc_ci_high"])
        if pts is None or pts.empty or not math.isfinite(auc):
            continue
        # Labelled (and its gid the model's key), so the figure's data says which curve is which.
        ax.plot(
            pts["fpr"], pts["tpr"], color=color, linestyle=dash, linewidth=1.6, label=names[model], gid=model
        )
        ci = f" ({lo:.2f}–{hi:.2f})" if math.isfinite(lo) else ""
        handles.append(Line2D([], [], color=color, linestyle=dash, linewidth=1.6))
        texts.append(f"{names[model]}  {auc:.3f}{ci}")
    first = (ep, report.models[0])
    n = int(table.loc[first]["n"]) if first in table.index else 0
    n_cases = int(table.loc[first]["n_cases"]) if n else 0
    legend_title, warn = _panel_legend_title(n, n_cases, min_cases=MIN_CASES, has_auc=bool(handles))
    _panel_legend(legend_ax, handles, texts, legend_title, warn=warn)
    ax.set_title(title + report.titles.get(ep, ep), fontsize=10, loc="left")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("1 − specificity", fontsize=9)
    ax.set_ylabel("Sensitivity", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, linewidth=0.3, alpha=0.5)


def _panel_legend(legend_ax: Any, handles: list[Line2D], texts: list[str], title: str, *, warn: bool) -> None:
    """A panel's legend, at the top of its own axes below the panel; a red title when ``warn``."""
    legend = legend_ax.legend(
        handles, texts, title=title, loc="upper center", fontsize=7.5, title_fontsize=7.5,
        frameon=False, handlelength=1.6, borderaxespad=0.0, alignment="left",
    )  # fmt: skip
    if warn:
        legend.get_title().set_color(_WARN_COLOR)


def layout_problems(fig: Figure, *, dpi: float | None = None, tolerance: float = 0.5) -> list[str]:
    """What makes a drawn figure hard to read: legends over data or labels, artists cut off.

    Draws the figure, then compares window extents (display pixels, from the
    renderer): each axes' data region (``get_window_extent``), each axes with
    its title, labels and tick labels (``get_tightbbox``), each legend, and the
    figure's own texts (title, labels).

    Args:
        fig: A matplotlib Figure (one without a canvas gets an Agg canvas).
        dpi: Draw at this resolution (the one it is saved at); default the figure's.
        tolerance: Pixels of overlap or overhang that count as touching, not a problem.

    Returns:
        One sentence per problem (empty when none): a legend over a data region,
        over another panel's title or labels, or over another legend; a legend,
        panel or text that reaches outside the figure; figure texts over a panel.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    if dpi is not None:
        fig.set_dpi(dpi)
    canvas.draw()
    renderer = canvas.get_renderer()
    frame = Bbox.from_bounds(0, 0, fig.bbox.width, fig.bbox.height).padded(tolerance)

    def overlap(a: Bbox, b: Bbox) -> bool:
        dx = min(a.x1, b.x1) - max(a.x0, b.x0)
        dy = min(a.y1, b.y1) - max(a.y0, b.y0)
        return dx > tolerance and dy > tolerance

    def inside(box: Bbox) -> bool:
        return frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1

    panels: list[tuple[str, Any, Bbox, Bbox]] = []  # (name, axes, data region, with decorations)
    legends: list[tuple[str, Any, Bbox]] = []  # (name, owner axes or None, box)
    for i, ax in enumerate(fig.axes):
        name = (ax.get_title(loc="left") or ax.get_title() or f"axes {i}").split("\n")[0]
        region = ax.get_window_extent(renderer)
        if ax.axison:
            panels.append((repr(name), ax, region, ax.get_tightbbox(renderer) or region))
        legend = ax.get_legend()
        if legend is not None:
            legends.append((f"legend of {name!r}", ax, legend.get_window_extent(renderer)))
    legends += [("figure legend", None, leg.get_window_extent(renderer)) for leg in fig.legends]
    # suptitle, supxlabel and supylabel have no public getter for their Text artists.
    sup = [getattr(fig, f"_{k}", None) for k in ("suptitle", "supxlabel", "supylabel")]
    fig_texts = [t for t in (*sup, *fig.texts) if t is not None]
    texts = [(repr(t.get_text()[:40]), t.get_window_extent(renderer)) for t in fig_texts if t.get_text()]

    problems = []
    for leg_name, owner, leg in legends:
        for ax_name, ax, region, decorated in panels:
            if overlap(leg, region):
                problems.append(f"{leg_name} overlaps the data region of {ax_name}")
            elif ax is not owner and overlap(leg, decorated):
                problems.append(f"{leg_name} overlaps the title or labels of {ax_name}")
    for i, (a_name, _, a) in enumerate(legends):
        problems += [f"{a_name} overlaps {b_name}" for b_name, _, b in legends[i + 1 :] if overlap(a, b)]
    for text_name, box in texts:
        problems += [f"figure text {text_name} overlaps {p[0]}" for p in panels if overlap(box, p[3])]
    for name, box in [*((n, b) for n, _, b in legends), *((p[0], p[3]) for p in panels), *texts]:
        if not inside(box):
            problems.append(f"{name} is clipped: it reaches outside the figure")
    return problems


# ----------------------------------------------------------------------------- calibration, decision curves


def _risk_limit(values: Sequence[Any]) -> float:
    """An axis's top for predicted risks: the highest 97.5th percentile of the models, rounded up to 0.1."""
    import numpy as np

    tops = [float(np.quantile(v, 0.975)) for v in values if len(v)]
    top = max(tops, default=1.0)
    return float(min(1.0, max(0.1, math.ceil(top * 10.0 - 1e-9) / 10.0)))


def _panels(
    report: ReportData, *, legend_rows: int, strip: bool
) -> tuple[Figure, list[tuple[str, Any, Any | None, Any]]]:
    """A figure laid out like :func:`plot_roc`'s: per endpoint its axes, an optional strip, a legend."""
    layout = panel_layout(report.endpoints)
    nrows, ncols = len(layout), len(layout[0])
    legend_h = 0.16 * legend_rows + 0.15
    strip_h = 0.55 if strip else 0.0
    width = max(3.7 * ncols, 5.5)
    fig = Figure(figsize=(width, (3.35 + strip_h + legend_h) * nrows + 0.9), layout="constrained")
    ratios = [3.0, strip_h, legend_h] if strip else [3.0, legend_h]
    per = len(ratios)
    grid = fig.add_gridspec(per * nrows, ncols, height_ratios=ratios * nrows)
    out = []
    for r, row in enumerate(layout):
        for c, ep in enumerate(row):
            if ep is None:
                continue
            ax = fig.add_subplot(grid[per * r, c])
            strip_ax = fig.add_subplot(grid[per * r + 1, c], sharex=ax) if strip else None
            legend_ax = fig.add_subplot(grid[per * r + per - 1, c])
            legend_ax.set_axis_off()
            out.append((ep, ax, strip_ax, legend_ax))
    return fig, out


def _suptitle(fig: Figure, report: ReportData, head: str) -> None:
    split = report.evaluation.eval_split or "all rows"
    warnings = _figure_warnings(report, small_sample_endpoints(report), split)
    width = max(30, int(fig.get_figwidth() * 10))
    lines = [part for line in [head, *warnings] for part in textwrap.wrap(line, width)]
    fig.suptitle("\n".join(lines), fontsize=12, color=_WARN_COLOR if warnings else "black")


def _n_title(report: ReportData, ep: str) -> tuple[str, bool]:
    table = report.evaluation.table1
    rows = table[table["endpoint"] == ep]
    if rows.empty:
        return "no patients", True
    n, cases = int(rows["n"].max()), int(rows.loc[rows["n"].idxmax(), "n_cases"])
    small = min(cases, n - cases) < MIN_CASES
    return f"n = {n}, {cases} cases" + (f" (under {MIN_CASES}: imprecise)" if small else ""), small


def plot_calibration(report: ReportData, *, labels: Mapping[str, str] | None = None) -> Figure:
    """The calibration figure: per endpoint, observed against predicted risk for every model.

    Each model has a lowess-smoothed curve (the curve behind the ICI,
    :func:`~cohortlm.evaluation.stats.calibration.smoothed_calibration`) and its risk
    deciles as points with 95 % Wilson intervals of the observed rate; the diagonal is
    perfect calibration. The strip below each panel shows the distribution of predicted
    risk per model (the share of patients per bin), so a reader sees where the curve
    rests on few patients.
    Colours and line styles are :func:`model_styles`', as in the ROC figure; the
    legend gives each model's calibration slope and ICI.
    """
    import numpy as np

    from cohortlm.evaluation.endpoint_metrics import calibration_data
    from cohortlm.evaluation.stats.calibration import smoothed_calibration

    ev = report.evaluation
    names = {m: (labels or {}).get(m) or model_label(m) for m in report.models}
    styles = model_styles(report.models)
    cal = ev.calibration_table.set_index(["endpoint", "model"]) if len(ev.calibration_table) else None
    fig, panels = _panels(report, legend_rows=len(report.models) + 2, strip=True)
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    for ep, ax, strip_ax, legend_ax in panels:
        drawn = [
            m for m in report.models if cal is not None and (ep, m) in cal.index and (ep, m) in ev.eval_arrays
        ]
        top = _risk_limit([ev.eval_arrays[(ep, m)][1] for m in drawn])
        ax.plot([0, top], [0, top], linestyle="--", color="0.6", linewidth=0.8)
        handles, texts = [], []
        bins = np.linspace(0.0, top, 26)
        for model in drawn:
            color, dash = styles[model]
            y, p = ev.eval_arrays[(ep, model)]
            lo, hi = float(np.quantile(p, 0.01)), float(np.quantile(p, 0.99))
            grid = np.linspace(lo, hi, 80)
            curve = smoothed_calibration(y, p, at=grid)
            ax.plot(grid, curve, color=color, linestyle=dash, linewidth=1.6, gid=model)
            dec = calibration_data(y, p, n_bins=10)
            err = np.vstack(
                [dec["observed_rate"] - dec["ci_low"], dec["ci_high"] - dec["observed_rate"]]
            ).clip(min=0)
            ax.errorbar(
                dec["mean_predicted"], dec["observed_rate"], yerr=err, fmt="o", markersize=2.8,
                color=color, elinewidth=0.7, capsize=1.5, alpha=0.8,
            )  # fmt: skip
            share, _ = np.histogram(np.clip(p, 0, top), bins=bins)
            if strip_ax is not None:
                strip_ax.stairs(share / max(1, p.size), bins, color=color, linestyle=dash, linewidth=1.1)
            row = cal.loc[(ep, model)] if cal is not None else None
            slope = float(row["slope"]) if row is not None else math.nan
            ici = float(row["ici"]) if row is not None else math.nan
            handles.append(Line2D([], [], color=color, linestyle=dash, linewidth=1.6))
            texts.append(f"{names[model]}  slope {slope:.2f}, ICI {ici:.3f}")
        head, warn = _n_title(report, ep)
        _panel_legend(legend_ax, handles, texts, head + "\nCalibration slope, ICI", warn=warn)
        ax.set_title(f"({next(letters)}) " + report.titles.get(ep, ep), fontsize=10, loc="left")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_aspect("equal", adjustable="box")
        ax.set_ylabel("Observed risk", fontsize=9)
        ax.tick_params(labelsize=8, labelbottom=False)
        ax.grid(True, linewidth=0.3, alpha=0.5)
        if strip_ax is not None:
            strip_ax.set_xlabel("Predicted risk", fontsize=9)
            strip_ax.set_yticks([])
            strip_ax.set_ylabel("share", fontsize=7)
            strip_ax.tick_params(labelsize=8)
    n_max = int(ev.table1["n"].max()) if len(ev.table1) else 0
    split = ev.eval_split or "all rows"
    _suptitle(
        fig,
        report,
        f"Calibration on the {split} split ({n_max} patients): lowess curve, risk deciles with 95% CI",
    )
    return fig


def plot_decision_curve(report: ReportData, *, labels: Mapping[str, str] | None = None) -> Figure:
    """The decision-curve figure: net benefit against threshold probability, per endpoint.

    Every model in :func:`model_styles`' colours and styles, treat-all (grey) and
    treat-none (black, at 0), over each endpoint's threshold range
    (:func:`cohortlm.evaluation.decision_curve.threshold_grid`); the study spec's
    declared decision threshold is a dotted vertical line. A model helps at a
    threshold where its curve is above both references.
    """
    from cohortlm.evaluation.decision_curve import TREAT_ALL, TREAT_NONE

    ev = report.evaluation
    names = {m: (labels or {}).get(m) or model_label(m) for m in report.models}
    styles = model_styles(report.models)
    curves = ev.decision_curve
    fig, panels = _panels(report, legend_rows=len(report.models) + 5, strip=False)
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    for ep, ax, _, legend_ax in panels:
        mine = curves[curves["endpoint"] == ep]
        handles, texts = [], []
        for model in [*report.models, TREAT_ALL, TREAT_NONE]:
            pts = mine[mine["model"] == model]
            if pts.empty:
                continue
            dash: Any
            if model == TREAT_ALL:
                color, dash, width, text = "0.55", "solid", 1.2, "Treat all"
            elif model == TREAT_NONE:
                color, dash, width, text = "black", "solid", 0.9, "Treat none"
            else:
                (color, dash), width, text = styles[model], 1.6, names[model]
            ax.plot(
                pts["threshold"], pts["net_benefit"], color=color, linestyle=dash, linewidth=width, gid=model
            )
            handles.append(Line2D([], [], color=color, linestyle=dash, linewidth=width))
            texts.append(text)
        declared = ev.decision_thresholds.get(ep)
        if declared is not None:
            ax.axvline(declared, color="#555555", linestyle=":", linewidth=1.2)
            handles.append(Line2D([], [], color="#555555", linestyle=":", linewidth=1.2))
            texts.append(f"Declared decision threshold {declared:g}")
        head, warn = _n_title(report, ep)
        _panel_legend(legend_ax, handles, texts, head + "\nNet benefit", warn=warn)
        if not mine.empty:
            prev = float(mine.loc[mine["model"] == TREAT_ALL, "net_benefit"].max())
            best = float(mine["net_benefit"].max())
            high = max(best, prev, 0.01) * 1.15
            ax.set_ylim(-0.25 * high, high)
            ax.set_xlim(0, float(mine["threshold"].max()))
        ax.set_title(f"({next(letters)}) " + report.titles.get(ep, ep), fontsize=10, loc="left")
        ax.set_xlabel("Threshold probability", fontsize=9)
        ax.set_ylabel("Net benefit", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.tick_params(labelsize=8)
        ax.grid(True, linewidth=0.3, alpha=0.5)
    n_max = int(ev.table1["n"].max()) if len(ev.table1) else 0
    split = ev.eval_split or "all rows"
    _suptitle(fig, report, f"Decision curves on the {split} split ({n_max} patients)")
    return fig
