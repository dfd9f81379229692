"""Seed 000's whole comparison in one run: two base LLMs, each zero-shot and fine-tuned, and the baseline.

Two tiny random Llamas (different seeds) built in the test stand for Llama-2 and
Meditron; the run goes through kfp.local with the smoke profile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

FIVE = ["baseline", "tiny-a", "tiny-a+qlora", "tiny-b", "tiny-b+qlora"]


def _cohortlm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("cohortlm")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COHORTLM_CACHE": str(cwd / "cache")}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=1200, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> tuple[Path, Path]:
    from cohortlm.cohort.study import load_study
    from cohortlm.models.llm.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("bases")
    spec = load_study("ra_iorra")
    return build_tiny_model(spec, root / "a", seed=1), build_tiny_model(spec, root / "b", seed=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory, bases) -> Path:
    work = tmp_path_factory.mktemp("two-bases")
    a, b = bases
    res = _cohortlm(
        "run", "--profile", "smoke", "--base-model", f"tiny-a={a}", "--base-model", f"tiny-b={b}",
        "--out", str(work / "run"), "--model-store", str(work / "models"), "--no-cache", cwd=work,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (work / "stdout").write_text(res.stdout)
    (work / "stderr").write_text(res.stderr)
    return work / "run"


def test_five_models_are_scored_on_the_same_patients(run):
    import pandas as pd

    assert sorted(p.stem for p in (run / "scores").glob("*.parquet")) == FIVE
    ids = [set(pd.read_parquet(run / "scores" / f"{m}.parquet")["patient_id"]) for m in FIVE]
    assert all(i == ids[0] for i in ids)
    assert sorted(p.name for p in (run / "bundles").iterdir()) == ["baseline", "tiny-a+qlora", "tiny-b+qlora"]
    assert json.loads((run / "run.json").read_text())["models"] == FIVE


def test_the_decision_record_holds_the_three_families_and_how_the_candidate_was_chosen(run):
    decision = json.loads((run / "decision.json").read_text())
    families = decision["comparisons"]
    assert set(families) == {"base_vs_base", "fine_tuned_vs_base", "fine_tuned_vs_baseline"}
    pairs = {f: {(r["model_a"], r["model_b"]) for r in rows} for f, rows in families.items()}
    assert pairs["base_vs_base"] == {("tiny-a", "tiny-b")}
    assert pairs["fine_tuned_vs_base"] == {("tiny-a+qlora", "tiny-a"), ("tiny-b+qlora", "tiny-b")}
    assert pairs["fine_tuned_vs_baseline"] == {("tiny-a+qlora", "baseline"), ("tiny-b+qlora", "baseline")}
    assert all(len(rows) == 8 * len(pairs[f]) for f, rows in families.items())
    # Holm within the family: an adjusted p is never below its raw p, and never above 1.
    for rows in families.values():
        for r in rows:
            if r["p"] is not None:
                assert r["p"] <= r["p_adjusted"] <= 1
    selection = decision["selection"]
    assert selection["split"] == "validation" and selection["gating_split"] == "test"
    assert selection["contenders"] == ["tiny-a+qlora", "tiny-b+qlora"]
    best = max(selection["contenders"], key=lambda m: selection["mean_auc"][m])
    assert decision["candidate"] == selection["chosen"] == best
    assert decision["reasons"][0].startswith(f"Candidate {best}: highest mean AUC")


def test_every_panel_draws_five_curves_with_stable_colours(run):
    from cohortlm.evaluation.figures import plot_roc
    from cohortlm.evaluation.report import compute_report, model_label
    from cohortlm.evaluation.run_folder import read_run_dir

    data = read_run_dir(run)
    report = compute_report(
        data.labels, data.scores, data.split, endpoints=data.endpoints, decision=data.decision
    )
    fig = plot_roc(report)
    colours: dict[str, set] = {}  # (colour, dashed) per model
    panels = 0
    for ax in fig.axes:
        curves = [ln for ln in ax.get_lines() if ln.get_gid() in FIVE]
        assert all(ln.get_label() == model_label(ln.get_gid()) for ln in curves)
        for ln in curves:
            colours.setdefault(ln.get_gid(), set()).add((ln.get_color(), ln.get_linestyle()))
        if curves:
            panels += 1
            assert sorted(ln.get_label() for ln in curves) == sorted(model_label(m) for m in FIVE)
    assert panels >= 7  # J-HAQ high may have no case in the smoke cohort
    # The same look in every panel; each look names one model; a base and its fine-tune share a
    # colour, the zero-shot one dashed.
    assert all(len(c) == 1 for c in colours.values())
    look = {m: next(iter(c)) for m, c in colours.items()}
    assert len(set(look.values())) == 5
    for base in ("tiny-a", "tiny-b"):
        assert look[base][0] == look[f"{base}+qlora"][0]
        assert look[base][1] == "--" and look[f"{base}+qlora"][1] == "-"
    assert look["baseline"][0] not in {look["tiny-a"][0], look["tiny-b"][0]}


def test_table1_bolds_the_best_value_per_metric(run):
    import pandas as pd

    md = (run / "report" / "table1.md").read_text()
    assert "**" in md and "Bold: the best value" in md
    table = pd.read_csv(run / "report" / "table1.csv")
    assert set(table["model"]) == set(FIVE)
    for endpoint, rows in table.groupby("endpoint"):
        if rows["auc"].notna().any():
            winner = rows.loc[rows["auc"].idxmax()]
            assert "auc" in str(winner["best"]).split(";"), endpoint
    html = (run / "report" / "index.html").read_text()
    assert "<td><b>" in html and "Base vs base (zero-shot)" in html


def test_the_console_names_each_family(run):
    out = (run.parent / "stdout").read_text()
    assert "tiny-a+qlora significantly better than tiny-a on" in out
    assert "Base vs base (zero-shot)" in out and "Fine-tuned vs logistic regression" in out


def test_bad_bases_stop_the_run_before_any_step(tmp_path, bases):
    import numpy as np
    from gguf import GGUFWriter

    a, _ = bases
    t5 = tmp_path / "t5.gguf"
    writer = GGUFWriter(str(t5), "t5")
    writer.add_tensor("x", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    not_gguf = tmp_path / "fake.gguf"
    not_gguf.write_bytes(b"not a model")
    cases = {
        ("--base-model", f"x={a}", "--base-model", f"x={a}"): "two base models are named 'x'",
        ("--base-model", f"y={tmp_path / 'missing'}"): f"{tmp_path / 'missing'}) does not exist",
        ("--base-model", f"z={t5}"): "GGUF architecture 't5' is not a causal LM",
        ("--base-model", f"w={not_gguf}"): "not a GGUF file",
    }
    for args, message in cases.items():
        out = tmp_path / "run"
        res = _cohortlm("run", "--profile", "smoke", *args, "--out", str(out), cwd=tmp_path)
        assert res.returncode == 2, (args, res.stderr[-2000:])
        assert message in res.stderr, (args, res.stderr[-2000:])
        assert "Traceback" not in res.stderr
        assert not out.exists()  # refused before the run folder, let alone training
