"""A study that declares subgroups: the gate step writes report/subgroups.csv, its metrics.json entry,
the outcome's rows, the decision's per-level verdicts and the page's section, all the same numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from flat_cohort import flat_cohort, hf_study
from steplib import fake_scores, lenient_policy_text

from cohortlm.cohort.study import load_study
from cohortlm.evaluation.subgroups import SUBGROUP_COLUMNS
from cohortlm.run import steps
from cohortlm.run.outcome import GateOutcome

SUBGROUPS = [
    {"name": "sex", "feature": "sex"},
    {"name": "age_band", "feature": "age", "cuts": [65]},
    {"name": "diabetes", "feature": "diabetes"},
]


@pytest.fixture(scope="module")
def gated(tmp_path_factory) -> tuple[GateOutcome, Path]:
    root = tmp_path_factory.mktemp("subgroups")
    flat_cohort(n=300, seed=3).to_csv(root / "hf.csv", index=False)
    study = hf_study()
    study["subgroups"] = SUBGROUPS
    steps.study_step(yaml.safe_dump(study), str(root / "study.yaml"))
    spec = load_study(root / "study.yaml")
    steps.featurise_step(str(root / "hf.csv"), spec, str(root / "cohort.parquet"))
    steps.split_step(str(root / "cohort.parquet"), spec, str(root / "split.parquet"))
    steps.train_baseline_step(str(root / "split.parquet"), spec, str(root / "bl"), str(root / "bl.parquet"))
    fake_scores(root / "split.parquet", spec, root / "tiny.parquet", quality="noise", seed=1)
    fake_scores(root / "split.parquet", spec, root / "ft.parquet", quality="good", seed=2)
    (root / "policy.yaml").write_text(lenient_policy_text())
    scores = {
        "baseline": str(root / "bl.parquet"),
        "tiny": str(root / "tiny.parquet"),
        "tiny+qlora": str(root / "ft.parquet"),
    }
    out = root / "run"
    outcome = steps.evaluate_step(
        str(root / "split.parquet"), spec, scores, str(out), policy_path=str(root / "policy.yaml")
    )
    return outcome, out


def test_subgroups_csv_metrics_and_outcome_agree(gated: tuple[GateOutcome, Path]) -> None:
    outcome, out = gated
    table = pd.read_csv(out / "report" / "subgroups.csv", keep_default_na=False, na_values=[""])
    assert tuple(table.columns) == SUBGROUP_COLUMNS
    # 2 endpoints × 3 models × (2 + 2 + 2) levels
    assert len(table) == 2 * 3 * 6
    assert set(table["subgroup"]) == {"sex", "age_band", "diabetes"}
    assert set(table[table.subgroup == "age_band"]["level"]) == {"<65", ">=65"}
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert len(metrics["subgroups"]) == len(table)
    read = GateOutcome.read(out)  # checked against the outcome's JSON schema
    assert read.subgroups == outcome.subgroups and len(read.subgroups) == len(table)
    first = read.subgroups[0]
    row = table.iloc[0]
    assert (first["endpoint"], first["model"], first["n"], first["cases"]) == (
        row.endpoint,
        row.model,
        row.n,
        row.cases,
    )
    # Every level of one subgroup together is every test patient with the feature known.
    one = table[(table.endpoint == "readmitted") & (table.model == "baseline") & (table.subgroup == "sex")]
    assert one.n.sum() == outcome.points["baseline"]["readmitted"]["n"]


def test_the_decision_records_each_level_and_the_page_shows_them(gated: tuple[GateOutcome, Path]) -> None:
    outcome, out = gated
    levels = outcome.decision.subgroups
    assert len(levels) == 2 * 6
    assert {v.verdict for v in levels} <= {"worse", "not shown worse", "not tested"}
    assert any("subgroup level" in r for r in outcome.decision.reasons)
    page = (out / "report" / "index.html").read_text()
    assert "<section id='subgroups'>" in page and "age_band" in page


def test_a_report_re_rendered_from_the_run_folder_has_the_same_subgroups(
    gated: tuple[GateOutcome, Path], tmp_path: Path
) -> None:
    from cohortlm.contracts import SUBGROUP_LEVELS_FILE
    from cohortlm.evaluation.render import write_report

    _, out = gated
    levels = pd.read_parquet(out / SUBGROUP_LEVELS_FILE)
    assert list(levels.columns) == ["subject", "sex", "age_band", "diabetes"]  # levels, never values
    assert set(levels["age_band"].dropna()) <= {"<65", ">=65"}
    write_report(out, out_dir=tmp_path / "again")
    assert (tmp_path / "again" / "subgroups.csv").read_bytes() == (
        out / "report" / "subgroups.csv"
    ).read_bytes()
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["subgroups"] == json.loads((out / "report" / "metrics.json").read_text())["subgroups"]
