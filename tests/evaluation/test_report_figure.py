"""The ROC figure is readable: legends off the data, nothing cut off, models by human names,
n and cases on every panel; and small evaluations are said to be small (issue 17, items 6, 7).

The layout check reads the drawn figure's artist boxes with the renderer
(cohortlm.evaluation.figures.layout_problems); the first tests show that it catches what the
old figure did (a legend over the curves, a legend cut off at the edge).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from stats_run_folder import make_run_folder

from cohortlm.evaluation.figures import layout_problems, plot_roc
from cohortlm.evaluation.render import write_report
from cohortlm.evaluation.report import (
    MIN_CASES,
    compute_report,
    model_label,
    small_sample_endpoints,
    summary_markdown,
)
from cohortlm.evaluation.run_folder import read_run_dir


def _report(root: Path, *, sizes=(300, 200, 1000), profile=None, rename=None):
    run = read_run_dir(make_run_folder(root, sizes=sizes))
    scores = run.scores if rename is None else {rename.get(k, k): v for k, v in run.scores.items()}
    return compute_report(
        run.labels, scores, run.split, endpoints=run.endpoints, study=run.study, profile=profile
    )


def test_layout_check_catches_a_legend_over_the_curves_and_one_cut_off() -> None:
    fig = Figure(figsize=(4, 4))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], label="a model: AUC 0.750 (0.70–0.80)")
    ax.legend(loc="lower right")
    problems = layout_problems(fig)
    assert problems and "overlaps the data region" in problems[0]

    fig = Figure(figsize=(4, 4))  # no layout engine: nothing makes room for the legend
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], label="a long legend entry that does not fit")
    ax.legend(loc="center right", bbox_to_anchor=(-0.05, 0.5))  # the old figure's left edge
    assert any("is clipped" in p for p in layout_problems(fig))


@pytest.mark.parametrize(
    ("sizes", "rename"),
    [
        ((300, 200, 1000), None),
        # The pipeline's names, a stored champion among them, and one endpoint with no cases.
        (
            (40, 30, 25),
            {"smollm2_qlora": "fine_tuned", "logistic_regression": "champion_baseline_33ada0e3f430"},
        ),
    ],
)
def test_roc_figure_has_no_overlap_and_nothing_clipped(tmp_path: Path, sizes, rename) -> None:
    report = _report(tmp_path / "run", sizes=sizes, rename=rename)
    fig = plot_roc(report)
    assert layout_problems(fig, dpi=150) == []
    assert layout_problems(fig, dpi=72) == []
    texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]
    assert not any("champion_baseline_" in t or "_qlora" in t for t in texts)
    if rename:
        assert any(t.startswith("Champion (LR, 33ada0e)") for t in texts)
        assert any(t.startswith("LLM fine-tuned") for t in texts)
    # Every panel names its n and cases (in its legend's title).
    titles = [ax.get_legend().get_title().get_text() for ax in fig.axes if ax.get_legend() is not None]
    assert len(titles) == len(report.endpoints)
    assert all(t.startswith("n = ") and " cases" in t for t in titles)


@pytest.mark.parametrize("endpoints", [["readmitted"], ["a", "b", "c"], ["x_high", "x_remission", "y_high"]])
def test_other_studies_figures_are_readable_too(endpoints: list[str]) -> None:
    """One panel, a plain grid and paired panels, five models (one with a long name of the user's)."""
    rng = np.random.default_rng(0)
    ids = [f"P{i}" for i in range(400)]
    labels = pd.DataFrame({e: (rng.random(400) < 0.3).astype(float) for e in endpoints}, index=ids)
    split = pd.Series(np.where(np.arange(400) < 150, "validation", "test"), index=ids)
    models = ["baseline", "zero_shot", "fine_tuned", "champion_llm_abcdef0123456789", "a_users_own_model_v2"]
    scores = {m: pd.DataFrame({e: rng.random(400) for e in endpoints}, index=ids) for m in models}
    report = compute_report(labels, scores, split, endpoints=endpoints, profile="smoke")
    fig = plot_roc(report)
    assert layout_problems(fig, dpi=150) == []
    assert "These AUCs mean nothing" in fig.get_suptitle().replace("\n", " ")


def test_model_labels() -> None:
    assert model_label("baseline") == "Logistic regression"
    assert model_label("zero_shot") == "LLM zero-shot"
    assert model_label("fine_tuned") == "LLM fine-tuned"
    assert model_label("champion_llm_0123456789ab") == "Champion (LLM, 0123456)"
    assert model_label("my_model") == "my model"


def test_small_evaluation_is_named_in_the_figure_summary_and_metrics(tmp_path: Path) -> None:
    root = make_run_folder(tmp_path / "run", sizes=(40, 60, 63))
    (root / "summary.json").write_text(json.dumps({"run_id": "r1", "profile": "smoke", "study": "ra_iorra"}))
    paths = write_report(root)
    metrics = json.loads(paths.metrics_json.read_text())
    small = metrics["small_sample"]
    assert small["min_cases"] == MIN_CASES == 100
    assert [s["endpoint"] for s in small["endpoints"]] == metrics["endpoints"]  # 63 patients: all small
    assert all(s["n_cases"] + s["n_controls"] == s["n"] <= 63 for s in small["endpoints"])
    assert "mean nothing" in small["warnings"][0] and "Small evaluation: 8 of 8" in small["warnings"][1]
    summary = paths.summary_md.read_text()
    assert "mean nothing" in summary and "Small evaluation" in summary
    # The gate's verdict names its n: in the headline and per endpoint.
    assert re.search(
        r"smollm2 qlora vs logistic regression on the test split, 6\d patients, \d+–\d+ cases", summary
    )
    assert "| Endpoint | n (cases) | ΔAUC (CI)" in summary
    page = paths.index_html.read_text()
    assert "mean nothing" in page and "Small evaluation" in page


def test_a_large_evaluation_has_no_warning(tmp_path: Path) -> None:
    report = _report(tmp_path / "run", sizes=(300, 300, 6000))
    assert small_sample_endpoints(report) == []
    assert "Warning" not in summary_markdown(report)
    title = plot_roc(report).get_suptitle()
    assert re.fullmatch(r"ROC curves on the test split \(\d{4} patients\)", title), title


def test_the_threshold_is_one_count_below_or_above(tmp_path: Path) -> None:
    report = _report(tmp_path / "run", sizes=(300, 300, 6000))
    table = report.evaluation.table1
    rows = table[table["endpoint"] == "jhaq_high"]
    cases = int(rows["n_cases"].max())
    assert [s["endpoint"] for s in small_sample_endpoints(report, min_cases=cases)] == []
    assert "jhaq_high" in [s["endpoint"] for s in small_sample_endpoints(report, min_cases=cases + 1)]
