"""The whole pipeline through kfp.local with the smoke profile (tiny random LLM), twice.

The first run has no champion: the winner of the LLM against the baseline is
promoted. The second run finds that champion and gates against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow]


def _cohortlm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("cohortlm")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COHORTLM_CACHE": str(cwd / "cache")}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=1200, cwd=cwd, env=env)


def _smoke_run(work: Path, name: str, store: Path) -> subprocess.CompletedProcess[str]:
    """``cohortlm run --profile smoke`` into ``work/name`` with the model store ``store``; must succeed."""
    res = _cohortlm(
        "run",
        "--profile",
        "smoke",
        "--out",
        str(work / name),
        "--model-store",
        str(store),
        "--no-cache",
        cwd=work,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    work = tmp_path_factory.mktemp("pipeline")
    store = work / "models"
    first = _smoke_run(work, "run1", store)
    (work / "run1.stdout").write_text(first.stdout)
    (work / "run1.stderr").write_text(first.stderr)
    _smoke_run(work, "run2", store)
    return work / "run1", work / "run2", store


def test_run_folder_holds_everything_a_person_reads(two_runs):
    run1, _, _ = two_runs
    for item in (
        "validation/validation.html",
        "scores/baseline.parquet",
        "scores/tiny.parquet",  # the smoke profile's base model, zero-shot
        "scores/tiny+qlora.parquet",  # and fine-tuned
        "bundles/tiny+qlora/bundle.json",
        "labels.parquet",
        "decision.json",
        "outcome.json",
        "report/roc.png",
        "report/index.html",
        "report/table1.md",
        "report/metrics.json",
        "summary.json",
        "promoted/bundle.json",
        "report/tripod_ai.md",  # the TRIPOD+AI checklist
        "promoted/model_card.md",  # the model card, under the promoted bundle's manifest
        "promoted/model_card.json",
    ):
        assert (run1 / item).exists(), item
    assert (run1 / "report" / "roc.png").read_bytes()[:4] == b"\x89PNG"


def test_the_console_shows_one_line_per_step_and_no_task_output(two_runs):
    """kfp.local's executor JSON and the tasks' own output go to logs/<task>.log, not the console."""
    run1, _, _ = two_runs
    stdout = (run1.parent / "run1.stdout").read_text()
    stderr = (run1.parent / "run1.stderr").read_text()
    for text in (stdout, stderr):
        assert "executor_input" not in text and "Executing task" not in text and "Streamed logs" not in text
        assert "endpoints:" not in text  # the study YAML is not re-dumped
    summary = json.loads((run1 / "summary.json").read_text())
    steps = [line for line in stderr.splitlines() if line.startswith("step ")]
    assert len(steps) == len(summary["step_seconds"]) + len(summary.get("cached_steps", []))
    assert all(" ok " in line for line in steps)
    # the raw cohort is imported (lineage in the KFP UI) and the spec validated, in either order
    # (neither needs the other), then the cohort is featurised
    assert [s.split()[1].split("/")[0] for s in steps[:3]] == ["1", "2", "3"]
    assert {steps[0].split()[3], steps[1].split()[3]} == {"importer", "study-spec"}
    assert steps[2].split()[3] == "featurise"
    # Two screens: the step lines, the summary tables and the verdict.
    assert len(stdout.splitlines()) + len(stderr.splitlines()) <= 100
    assert "logs:" in stdout
    for task in summary["step_seconds"]:
        log = run1 / "logs" / f"{task}.log"
        assert log.exists(), task
    assert "Got executor_input" in (run1 / "logs" / "featurise.log").read_text()


def _kfp_artifacts(run: Path, task_dir: str) -> dict[str, dict]:
    """Output artifacts (name -> metadata) that kfp.local recorded for a task of the run (a glob)."""
    (found,) = (run / ".kfp").glob(f"*/{task_dir}/executor_output.json")
    artifacts = json.loads(found.read_text())["artifacts"]
    return {name: a["artifacts"][0]["metadata"] for name, a in artifacts.items()}


def test_the_kfp_ui_gets_roc_curves_confusion_matrices_and_training_metrics(two_runs):
    """What the KFP UI shows, read from the artifacts kfp.local wrote for the first run."""
    run1, _, _ = two_runs
    metrics = json.loads((run1 / "report" / "metrics.json").read_text())
    endpoints = metrics["endpoints"]
    champion = json.loads((run1 / "run.json").read_text())["champion"]
    assert champion == "baseline"
    loops = sorted((run1 / ".kfp").glob("*/for-loop-*-iteration-*/endpoint-metrics"))
    assert len(loops) == len(endpoints) == 8
    seen = set()
    for loop in loops:
        art = _kfp_artifacts(run1, f"{loop.parent.name}/endpoint-metrics")
        endpoint = art["confusion"]["endpoint"]
        seen.add(endpoint)
        rows = {r["model"]: r for r in metrics["table1"] if r["endpoint"] == endpoint}
        for slot, model in (("candidate", "tiny+qlora"), ("baseline", "baseline")):
            roc = art[f"roc_{slot}"]
            assert roc["endpoint"] == endpoint and roc["model"] == model
            assert roc["n"] == rows[model]["n"] and roc["n_cases"] == rows[model]["n_cases"]
            if 0 < roc["n_cases"] < roc["n"]:
                curve = roc["confidenceMetrics"]
                assert len(curve) >= 2 and all(0 <= p["confidenceThreshold"] <= 1 for p in curve)
                assert {p["falsePositiveRate"] for p in curve} >= {0.0, 1.0}
        # The first run has no champion: the gate's champion is the run's own baseline (its curve
        # is roc_baseline), so the champion's artifact is empty.
        assert art["roc_champion"]["model"] == "none"
        matrix = art["confusion"]["confusionMatrix"]
        assert [a["displayName"] for a in matrix["annotationSpecs"]] == ["no event", "event"]
        cand = rows[art["confusion"]["model"]]
        assert [r["row"] for r in matrix["rows"]] == [[cand["tn"], cand["fp"]], [cand["fn"], cand["tp"]]]
        assert art["confusion"]["threshold"] == cand["threshold"]
    assert seen == set(endpoints)
    (page,) = (run1 / ".kfp").glob("*/evaluate-gate/report")
    assert page.read_text().startswith("<!") and "The decision in words" in page.read_text()  # index.html
    (table,) = (run1 / ".kfp").glob("*/evaluate-gate/table1")
    assert table.read_text() == (run1 / "report" / "table1.md").read_text()
    training = _kfp_artifacts(run1, "for-loop-*-iteration-0/train-qlora")["training"]
    losses = [v for k, v in sorted(training.items()) if k.startswith("loss.step_")]
    bundle = json.loads((run1 / "bundles" / "tiny+qlora" / "bundle.json").read_text())["training"]
    assert losses == pytest.approx(bundle["losses"])
    assert training["tokens_per_s"] > 0 and training["steps"] == bundle["steps"]


def test_first_run_promotes_a_champion_into_the_smoke_store_only(two_runs):
    from cohortlm.store.registry import champion

    run1, _, store = two_runs
    summary = json.loads((run1 / "summary.json").read_text())
    assert summary["winner"] in ("candidate", "baseline")
    # the pipeline's output (dsl.OneOf of promote and keep-champion) names the version now serving
    assert summary["promoted_version"] and summary["served_version"] == summary["promoted_version"]
    smoke_champion = champion(store / "smoke-runs", "ra_iorra")
    assert smoke_champion is not None and smoke_champion.name == summary["promoted_version"]
    # What a real run (`make run`, same --model-store) gates against: nothing from a smoke run.
    assert champion(store, "ra_iorra") is None and not (store / "ra_iorra").exists()
    # The page a person opens says the AUCs mean nothing and the evaluation is small.
    page = (run1 / "report" / "index.html").read_text()
    assert "mean nothing" in page and "Small evaluation" in page and "expectations met on" in page


def test_second_run_gates_against_the_first_champion(two_runs):
    run1, run2, _ = two_runs
    first = json.loads((run1 / "summary.json").read_text())
    decision = json.loads((run2 / "decision.json").read_text())
    assert decision["champion"].startswith("champion_")
    assert first["promoted_version"] in decision["champion"]
    # A champion serves: this run's freshly trained baseline competes with the fine-tuned model,
    # and the candidate is chosen on the validation split, not the gated one.
    selection = decision["selection"]
    assert selection["contenders"] == ["tiny+qlora", "baseline"] and selection["split"] == "validation"
    assert decision["candidate"] == selection["chosen"]
    summary = json.loads((run2 / "summary.json").read_text())
    assert summary["winner"] in ("candidate", "none")
    # kept or replaced, the served version is the store's champion after the run
    expected = first["promoted_version"] if summary["winner"] == "none" else summary["promoted_version"]
    assert summary["served_version"] == expected


def test_scores_cover_the_evaluation_splits(two_runs):
    run1, _, _ = two_runs
    labels = pd.read_parquet(run1 / "labels.parquet")
    ft = pd.read_parquet(run1 / "scores" / "tiny+qlora.parquet")
    evaluated = labels[labels["split"].isin(["validation", "test"])]
    assert set(evaluated["patient_id"]) <= set(ft["patient_id"])
    endpoints = [c for c in ft.columns if c not in ("patient_id", "split")]
    assert len(endpoints) == 8
    assert ((ft[endpoints] > 0) & (ft[endpoints] < 1)).all().all()
