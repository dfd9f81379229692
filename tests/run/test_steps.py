"""Every pipeline step of cohortlm.run.steps (and the feature-store step) on tiny files in tmp_path.

The steps are plain functions over paths; each test calls one with real inputs
made by the earlier steps (``study_run`` in conftest.py) and checks what it
returns, what it writes, and how it refuses a bad input.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from flat_cohort import flat_cohort, hf_study

from cohortlm.cohort.study import load_study, study_from_dict
from cohortlm.errors import DataError, SpecError, UsageError
from cohortlm.models.training import TrainingFigures
from cohortlm.run import steps
from cohortlm.run.outcome import GateOutcome


def _timed(info: dict) -> None:
    assert isinstance(info["seconds"], float) and info["seconds"] >= 0


# ----------------------------------------------------------------------------- study


def test_study_step_writes_the_spec_and_names_it(tmp_path):
    text = yaml.safe_dump(hf_study())
    out = tmp_path / "deep" / "study.yaml"
    info = steps.study_step(text, str(out))
    spec = study_from_dict(hf_study())
    assert info == {"study": "hf_readmission", "version": 2, "spec_hash": spec.spec_hash}
    assert load_study(out).spec_hash == spec.spec_hash
    assert out.read_text() == steps.study_text(spec)


def test_study_step_refuses_a_bad_spec_naming_the_key(tmp_path):
    bad = hf_study()
    bad["endpoints"][0]["operator"] = "=>"
    with pytest.raises(SpecError, match="operator") as exc:
        steps.study_step(yaml.safe_dump(bad), str(tmp_path / "study.yaml"))
    assert "study_yaml" in str(exc.value)
    assert not (tmp_path / "study.yaml").exists()


# ----------------------------------------------------------------------------- data


def test_featurise_step_on_a_flat_file(study_run):
    info = study_run.info["featurise"]
    _timed(info)
    assert info["n_input"] == info["n_included"] == 300
    table = pd.read_parquet(study_run.cohort)
    assert len(table) == 300
    assert set(study_run.spec.feature_names) <= set(table.columns)


def test_featurise_step_on_raw_registry_tables_counts_exclusions(small_raw, ra_spec, tmp_path):
    info = steps.featurise_step(str(small_raw), ra_spec, str(tmp_path / "cohort.parquet"))
    _timed(info)
    table = pd.read_parquet(tmp_path / "cohort.parquet")
    assert info["n_included"] == len(table) and 0 < len(table) <= info["n_input"] == 600
    exclusions = {k: v for k, v in info.items() if k not in {"n_input", "n_included", "seconds", "synthetic"}}
    assert exclusions and all(isinstance(v, int) and v >= 0 for v in exclusions.values())
    assert table[ra_spec.id_column].is_unique


def test_featurise_step_refuses_a_file_without_a_spec_column(study_run, tmp_path):
    flat_cohort(n=20).drop(columns=["ef"]).to_csv(tmp_path / "hf.csv", index=False)
    with pytest.raises(DataError, match=r"\bef\b"):
        steps.featurise_step(str(tmp_path / "hf.csv"), study_run.spec, str(tmp_path / "cohort.parquet"))
    assert not (tmp_path / "cohort.parquet").exists()


def test_validate_step_passes_a_clean_cohort_and_writes_its_report(study_run, tmp_path):
    info = steps.validate_step(str(study_run.cohort), study_run.spec, str(tmp_path / "report"))
    _timed(info)
    assert info["failed"] == 0 and info["rows"] == 300 and info["expectations"] > 0
    report = json.loads((tmp_path / "report" / "validation.json").read_text())
    assert report["success"] is True and report["n_rows"] == 300
    assert len(report["expectations"]) == info["expectations"]
    assert (tmp_path / "report" / "validation.html").is_file()


def test_validate_step_fails_bad_rows_by_rule_and_still_writes_the_report(study_run, tmp_path, gateway):
    table = pd.read_parquet(study_run.cohort)
    table.loc[:4, "age"] = 150.0  # the study allows 18-110
    table.to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(DataError, match=r"validation failed: .*age.*\(5 rows\)") as exc:
        steps.validate_step(str(tmp_path / "bad.parquet"), study_run.spec, str(tmp_path / "report"))
    assert "150" not in str(exc.value)  # counts, never values
    report = json.loads((tmp_path / "report" / "validation.json").read_text())
    assert report["success"] is False
    failures = steps.validation_failures(report)
    assert [n for rule, n in failures.items() if n] == [5]
    # ... and the validation metrics step pushes those counts.
    assert steps.push_validation_step(str(tmp_path / "report"), study_run.spec, gateway.url, "r1") == "pushed"
    push = gateway.only()
    assert push.method == "PUT" and push.path == "/metrics/job/cohortlm-validation/study/hf_readmission"
    (rule,) = [r for r, n in failures.items() if n]
    assert push.value("cohortlm_validation_failures_total", rule=rule) == 5
    assert push.value("cohortlm_run_info", run_id="r1") == 1


def test_push_validation_step_without_a_report_or_a_gateway(study_run, tmp_path, gateway):
    assert steps.push_validation_step(str(tmp_path), study_run.spec, gateway.url, "r1") == "no report"
    (tmp_path / "validation.json").write_text(json.dumps({"n_rows": 3, "expectations": []}))
    assert steps.push_validation_step(str(tmp_path), study_run.spec, "", "r1") == "skipped"
    assert gateway.pushes == []


def test_split_step_uses_the_specs_sizes(study_run):
    info = study_run.info["split"]
    _timed(info)
    assert (info["train"], info["validation"], info["test"]) == (180, 60, 60)  # 0.6 / 0.2 / 0.2
    df = pd.read_parquet(study_run.split)
    assert df["split"].value_counts().to_dict() == {"train": 180, "validation": 60, "test": 60}
    assert len(df) == 300 and set(pd.read_parquet(study_run.cohort).columns) < set(df.columns)


def test_split_step_override_replaces_the_sizes(study_run, tmp_path):
    override = {"train": 0.5, "validation": 0.1, "test": 0.4}
    info = steps.split_step(
        str(study_run.cohort), study_run.spec, str(tmp_path / "s.parquet"), split_override=override
    )
    _timed(info)
    assert (info["train"], info["validation"], info["test"]) == (150, 30, 120)
    assert pd.read_parquet(tmp_path / "s.parquet")["split"].value_counts()["test"] == 120
    # The same call twice writes the same split (seeded).
    again = steps.split_step(
        str(study_run.cohort), study_run.spec, str(tmp_path / "t.parquet"), split_override=override
    )
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in info.items() if k != "seconds"
    }
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "s.parquet"), pd.read_parquet(tmp_path / "t.parquet")
    )


@pytest.mark.parametrize(
    "override", [{"train": 0.7, "validation": 0.2, "test": 0.3}, {"train": 0.5, "validation": 0.5}]
)
def test_split_step_refuses_a_bad_override(study_run, tmp_path, override):
    with pytest.raises(SpecError, match="split_override"):
        steps.split_step(
            str(study_run.cohort), study_run.spec, str(tmp_path / "s.parquet"), split_override=override
        )
    assert not (tmp_path / "s.parquet").exists()


# ----------------------------------------------------------------------------- baseline and scoring


def test_train_baseline_step_writes_bundle_and_scores_for_every_split(study_run):
    info = study_run.info["baseline"]
    _timed(info)
    assert {k: info[k] for k in ("kind", "model", "n_train")} == {
        "kind": "baseline",
        "model": "baseline",
        "n_train": 180,
    }
    meta = json.loads((study_run.baseline_bundle / "bundle.json").read_text())
    assert meta["kind"] == "baseline" and meta["study"]["name"] == "hf_readmission"
    scores = pd.read_parquet(study_run.baseline_scores)
    assert list(scores.columns) == ["subject", "split", "readmitted", "low_ef_1y"]
    assert len(scores) == 300 and scores[["readmitted", "low_ef_1y"]].stack().between(0, 1).all()


def test_train_baseline_step_refuses_a_table_without_the_endpoint_column(study_run, tmp_path):
    pd.read_parquet(study_run.split).drop(columns=["ef_1y"]).to_parquet(tmp_path / "s.parquet")
    with pytest.raises(DataError, match="ef_1y"):
        steps.train_baseline_step(
            str(tmp_path / "s.parquet"), study_run.spec, str(tmp_path / "b"), str(tmp_path / "x.parquet")
        )


def test_score_bundle_step_rescores_the_baseline_bundle(study_run, tmp_path):
    info = steps.score_bundle_step(
        str(study_run.baseline_bundle), str(study_run.split), str(tmp_path / "s.parquet"), "smoke"
    )
    _timed(info)
    meta = json.loads((study_run.baseline_bundle / "bundle.json").read_text())
    assert info["n_scored"] == 120 and info["model_version"] == meta["model_version"]  # validation + test
    got = pd.read_parquet(tmp_path / "s.parquet").set_index("subject")
    assert set(got["split"]) == {"validation", "test"}
    trained = pd.read_parquet(study_run.baseline_scores).set_index("subject").loc[got.index]
    pd.testing.assert_frame_equal(got[["readmitted", "low_ef_1y"]], trained[["readmitted", "low_ef_1y"]])


def test_score_bundle_step_refuses_a_missing_bundle(study_run, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        steps.score_bundle_step(
            str(tmp_path / "nothing"), str(study_run.split), str(tmp_path / "s.parquet"), "smoke"
        )


# ----------------------------------------------------------------------------- evaluate and gate


@pytest.fixture(scope="module")
def promoted_run(study_run, lenient_policy, tmp_path_factory):
    """The gate on a fine-tuned model whose scores track the labels: the candidate is promoted."""
    out = tmp_path_factory.mktemp("gate") / "run"
    training = {
        "tiny+qlora": TrainingFigures(tokens_per_s=812.5, train_seconds=2.0, steps=8, losses=(0.7, 0.5))
    }
    outcome = steps.evaluate_step(
        str(study_run.split),
        study_run.spec,
        study_run.scores("good"),
        str(out),
        policy_path=str(lenient_policy),
        training=training,
    )
    return outcome, out


@pytest.fixture(scope="module")
def first_run(study_run, lenient_policy, tmp_path_factory):
    """The gate on a fine-tuned model of noise, no champion yet: the baseline becomes the first champion."""
    out = tmp_path_factory.mktemp("gate") / "run"
    outcome = steps.evaluate_step(
        str(study_run.split),
        study_run.spec,
        study_run.scores("noise"),
        str(out),
        policy_path=str(lenient_policy),
    )
    return outcome, out


def test_evaluate_step_promotes_a_better_candidate(promoted_run):
    outcome, _ = promoted_run
    assert outcome.decision.promote is True and outcome.promote is True
    assert (outcome.winner, outcome.candidate, outcome.promoted_model) == (
        "candidate",
        "tiny+qlora",
        "tiny+qlora",
    )
    assert outcome.champion == "baseline" and outcome.study == "hf_readmission"
    assert outcome.endpoints == ("readmitted", "low_ef_1y")
    assert outcome.models == ("baseline", "tiny", "tiny+qlora")
    assert outcome.training["tiny+qlora"].tokens_per_s == 812.5


def test_evaluate_step_makes_the_baseline_the_first_champion_when_the_candidate_fails(first_run):
    outcome, _ = first_run
    assert outcome.decision.promote is False
    assert (outcome.winner, outcome.promoted_model) == ("baseline", "baseline")
    assert outcome.training == {}
    assert set(outcome.serving_thresholds) == set(outcome.endpoints)


@pytest.mark.parametrize("which", ["promoted_run", "first_run"])
def test_evaluate_step_outcome_is_what_it_wrote(which, request, study_run):
    outcome, out = request.getfixturevalue(which)
    assert GateOutcome.read(out) == outcome
    written = json.loads((out / "decision.json").read_text())
    assert written["promote"] == outcome.decision.promote and written["candidate"] == outcome.candidate
    run = json.loads((out / "run.json").read_text())
    assert run["candidate"] == outcome.candidate and run["models"] == list(outcome.models)
    assert run["llms"] == [{"zero_shot": "tiny", "fine_tuned": "tiny+qlora"}]
    assert {p.name for p in (out / "scores").iterdir()} == {f"{m}.parquet" for m in outcome.models}
    assert load_study(out / "study.yaml").spec_hash == study_run.spec.spec_hash
    for name in ("index.html", "table1.csv", "table1.md"):
        assert (out / "report" / name).is_file()


@pytest.mark.parametrize("which", ["promoted_run", "first_run"])
def test_evaluate_step_aucs_and_thresholds_match_table1(which, request):
    outcome, out = request.getfixturevalue(which)
    table1 = pd.read_csv(out / "report" / "table1.csv")
    expected: dict[str, dict[str, float]] = {}
    for row in table1.itertuples():
        if not math.isnan(row.auc):
            expected.setdefault(row.model, {})[row.endpoint] = row.auc
    got = outcome.aucs()
    assert got.keys() == expected.keys() == set(outcome.models)
    for model, eps in expected.items():
        assert got[model] == pytest.approx(eps)
    promoted = table1[table1["model"] == outcome.promoted_model].set_index("endpoint")
    assert set(outcome.serving_thresholds) == set(outcome.endpoints)
    for ep, record in outcome.serving_thresholds.items():
        assert record["threshold"] == pytest.approx(promoted.loc[ep, "threshold"])
        assert record["source"] == promoted.loc[ep, "threshold_source"]
        if outcome.promoted_model == "baseline":  # its out-of-fold training scores are pooled in
            assert record["source"] == "validation+train (out-of-fold)"
    # The candidate's ROC curve is there for every endpoint (the KFP UI shows it).
    for ep in outcome.endpoints:
        curve = outcome.roc_of(outcome.candidate, ep)
        assert curve is not None and curve.fpr[0] == 0 and curve.tpr[-1] == 1


def test_evaluate_step_against_a_serving_champion_keeps_it(study_run, lenient_policy, tmp_path):
    from cohortlm.store.registry import champion_version, looks, promote

    store = tmp_path / "models"
    version = promote(study_run.baseline_bundle, store)
    outcome = steps.evaluate_step(
        str(study_run.split), study_run.spec, study_run.scores("noise"), str(tmp_path / "run"),
        model_store=str(store), policy_path=str(lenient_policy),
    )  # fmt: skip
    assert outcome.champion == f"champion_baseline_{version}"
    assert outcome.decision.promote is False
    assert (outcome.winner, outcome.promoted_model, dict(outcome.serving_thresholds)) == ("none", "", {})
    # Two contenders (the fine-tuned model and this run's baseline), chosen on validation.
    assert outcome.decision.selection["split"] == "validation"
    assert set(outcome.decision.selection["contenders"]) == {"tiny+qlora", "baseline"}
    assert outcome.candidate == outcome.decision.selection["chosen"]
    assert len(looks(store, "hf_readmission")) == 1
    assert champion_version(store, "hf_readmission") == version
    with pytest.raises(DataError, match="promoted nothing"):
        steps.promote_step(str(study_run.baseline_bundle), str(store), outcome)


@pytest.mark.parametrize(
    ("drop", "message"),
    [("tiny+qlora", "no fine-tuned model to gate"), ("baseline", "no champion to gate against")],
)
def test_evaluate_step_refuses_scores_without_a_pair_or_a_champion(study_run, tmp_path, drop, message):
    scores = study_run.scores("noise")
    del scores[drop]
    with pytest.raises(DataError, match=message):
        steps.evaluate_step(str(study_run.split), study_run.spec, scores, str(tmp_path / "run"))


# ----------------------------------------------------------------------------- promote and export


def _check_promoted(store: Path, outcome: GateOutcome, info: dict, bundle: Path) -> None:
    from cohortlm.store.registry import champion, champion_version

    assert info["model"] == outcome.promoted_model and info["model_store"] == str(store)
    assert champion_version(store, outcome.study) == info["model_version"]
    served = champion(store, outcome.study)
    thresholds = json.loads((served / "thresholds.json").read_text())
    assert thresholds == {ep: r["threshold"] for ep, r in outcome.serving_thresholds.items()}
    assert list(thresholds) == list(outcome.endpoints)
    assert json.loads((served / "thresholds_record.json").read_text()) == {
        ep: dict(r) for ep, r in outcome.serving_thresholds.items()
    }
    assert json.loads((served / "decision.json").read_text()) == outcome.decision.to_dict()
    assert not (bundle / "thresholds.json").exists()  # the input is not modified


def test_promote_step_writes_the_outcomes_thresholds(first_run, study_run, tmp_path):
    outcome, _ = first_run
    store = tmp_path / "models"
    info = steps.promote_step(str(study_run.baseline_bundle), str(store), outcome)
    _check_promoted(store, outcome, info, study_run.baseline_bundle)
    # A retried promotion of the same bundle is harmless: same version, same champion.
    again = steps.promote_step(str(study_run.baseline_bundle), str(store), outcome)
    assert again == info


def test_export_metrics_step_pushes_the_outcome(promoted_run, gateway):
    outcome, _ = promoted_run
    assert steps.export_metrics_step(outcome, gateway.url, "run-7") == "pushed"
    push = gateway.only()
    assert push.method == "PUT" and push.path == "/metrics/job/cohortlm/study/hf_readmission"
    assert push.value("cohortlm_training_tokens_per_second") == 812.5
    assert push.value("cohortlm_gate_promoted") == 1
    assert push.value("cohortlm_run_info", run_id="run-7") == 1
    for model, eps in outcome.aucs().items():
        for ep, auc in eps.items():
            assert push.value("cohortlm_run_auc", model=model, endpoint=ep) == pytest.approx(auc)
    assert not [k for k in push.samples() if k[0] == "cohortlm_validation_failures_total"]


def test_export_metrics_step_without_training_or_gateway(first_run, gateway):
    outcome, _ = first_run
    assert steps.export_metrics_step(outcome, "", "") == "skipped"
    assert gateway.pushes == []
    assert steps.export_metrics_step(outcome, gateway.url, "") == "pushed"
    push = gateway.only()
    assert push.value("cohortlm_gate_promoted") == 0
    assert push.value("cohortlm_run_info", run_id="local") == 1
    assert not [k for k in push.samples() if k[0] == "cohortlm_training_tokens_per_second"]


def test_report_run_outcome_step(gateway):
    text = yaml.safe_dump(hf_study())
    assert steps.report_run_outcome_step("succeeded", text, "", "r1") == "skipped SUCCEEDED"
    assert steps.report_run_outcome_step("FAILED", text, gateway.url, "r1") == "pushed FAILED"
    push = gateway.only()
    assert push.method == "POST" and push.path == "/metrics/job/cohortlm-run/study/hf_readmission"
    assert push.value("cohortlm_run_failed") == 1
    assert not [k for k in push.samples() if k[0] == "cohortlm_run_last_success_timestamp_seconds"]
    # A study that never parsed still gets its outcome pushed, under "unknown".
    assert (
        steps.report_run_outcome_step("SUCCEEDED", "- not a study", gateway.url, "r2") == "pushed SUCCEEDED"
    )
    last = gateway.pushes[-1]
    assert last.path.endswith("/study/unknown") and last.value("cohortlm_run_failed") == 0
    assert last.value("cohortlm_run_last_success_timestamp_seconds") > 0


# ----------------------------------------------------------------------------- feature store


@pytest.mark.slow
def test_training_table_step_reads_the_cohort_back_from_feast(study_run, tmp_path):
    from featurestore.pipeline import training_table_step

    info = training_table_step(
        str(study_run.cohort), study_run.spec, str(tmp_path / "repo"), str(tmp_path / "t.parquet")
    )
    _timed(info)
    assert info["rows"] == 300 and info["missing_feature_rows"] == 0
    assert info["feature_repo"] == str(tmp_path / "repo") and info["feature_service"].startswith("hf_")
    assert (tmp_path / "repo" / "feature_store.yaml").is_file()
    got = pd.read_parquet(tmp_path / "t.parquet").set_index("subject").sort_index()
    cohort = pd.read_parquet(study_run.cohort).set_index("subject").sort_index()
    cols = [*study_run.spec.feature_names, *study_run.spec.endpoint_columns]
    pd.testing.assert_frame_equal(got[cols], cohort[cols], check_dtype=False)


# ----------------------------------------------------------------------------- LLM steps (tiny model)


@pytest.fixture(scope="module")
def tiny_fine_tune(study_run, tmp_path_factory):
    """A real fine-tune of the smoke profile's tiny random Llama (built in code).

    5-6 s on an idle 2-core machine, torch's import included; 15-20 s under load, hence
    the slow marks of the tests that use it.
    """
    root = tmp_path_factory.mktemp("llm")
    info = steps.train_llm_step(
        str(study_run.split), study_run.spec, "smoke", "", str(root / "bundle"), str(root / "work")
    )
    return root, info


@pytest.fixture(scope="module")
def tiny_scores(tiny_fine_tune, study_run):
    """The tiny model's zero-shot scores and its fine-tuned bundle's scores (~10 s on 2 cores)."""
    root, _ = tiny_fine_tune
    split = str(study_run.split)
    zero_shot = steps.score_zero_shot_step(split, study_run.spec, "smoke", "", str(root / "tiny.parquet"))
    scored = steps.score_bundle_step(str(root / "bundle"), split, str(root / "ft.parquet"), "smoke")
    return zero_shot, scored


@pytest.mark.slow
def test_train_llm_step_writes_a_bundle_with_its_training_figures(tiny_fine_tune):
    root, info = tiny_fine_tune
    _timed(info)
    figures = TrainingFigures.from_bundle(root / "bundle")
    assert info["kind"] == "llm" and info["model"] == "tiny+qlora" and info["model_version"]
    assert {k: info[k] for k in figures.scalars()} == figures.scalars()
    assert figures.steps == 8 and figures.n_train == 32 and len(figures.losses) == 8  # the smoke profile
    assert figures.train_seconds > 0 and figures.peak_memory_mib > 0
    # Trained in the work folder (where a retried task resumes), then copied out.
    work = root / "work" / "tiny" / "bundle"
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == sorted(
        p.relative_to(root / "bundle") for p in (root / "bundle").rglob("*")
    )


def test_train_llm_step_refuses_an_unknown_profile(study_run, tmp_path):
    with pytest.raises(UsageError, match="unknown profile 'tiny'"):
        steps.train_llm_step(
            str(study_run.split), study_run.spec, "tiny", "", str(tmp_path / "b"), str(tmp_path / "w")
        )


@pytest.mark.slow
def test_a_real_tiny_fine_tune_pushes_its_tokens_per_second(
    tiny_fine_tune, study_run, lenient_policy, tmp_path, gateway
):
    """Regression: a fine-tune's tokens/s reach the Pushgateway.

    Writer and reader once spelt the key differently, so the metric was never pushed.
    The gate here promotes the fine-tuned model (scores that track the labels stand
    in for the tiny model's), so the export takes the candidate's figures.
    """
    root, info = tiny_fine_tune
    figures = TrainingFigures.from_bundle(root / "bundle")
    assert figures.tokens_per_s is not None and figures.tokens_per_s > 0
    assert info["tokens_per_s"] == figures.tokens_per_s
    outcome = steps.evaluate_step(
        str(study_run.split), study_run.spec, study_run.scores("good"), str(tmp_path / "run"),
        policy_path=str(lenient_policy), training={info["model"]: figures},
    )  # fmt: skip
    assert outcome.candidate == "tiny+qlora" and outcome.training["tiny+qlora"] == figures
    read = GateOutcome.read(tmp_path / "run")  # what the export component reads
    assert read.training["tiny+qlora"].tokens_per_s == figures.tokens_per_s
    assert steps.export_metrics_step(read, gateway.url, "tiny-run") == "pushed"
    pushed = gateway.only().value("cohortlm_training_tokens_per_second")
    assert pushed > 0 and pushed == pytest.approx(figures.tokens_per_s)


@pytest.mark.slow
def test_promote_step_promotes_a_fine_tuned_bundle(tiny_fine_tune, promoted_run, tmp_path):
    root, info = tiny_fine_tune
    outcome, _ = promoted_run  # its promoted model is tiny+qlora
    store = tmp_path / "models"
    promoted = steps.promote_step(str(root / "bundle"), str(store), outcome)
    assert promoted["model_version"] == info["model_version"]
    _check_promoted(store, outcome, promoted, root / "bundle")


@pytest.mark.slow
def test_score_zero_shot_step_scores_validation_and_the_profiles_test_rows(tiny_fine_tune, tiny_scores):
    root, _ = tiny_fine_tune
    info, _ = tiny_scores
    _timed(info)
    assert info["model"] == "tiny" and info["n_scored"] == 60 + 60  # smoke scores at most 64 test rows
    assert info["base_model"].endswith("(zero-shot)")
    scores = pd.read_parquet(root / "tiny.parquet")
    assert list(scores.columns) == ["subject", "split", "readmitted", "low_ef_1y"]
    assert scores["split"].value_counts().to_dict() == {"validation": 60, "test": 60}
    assert scores[["readmitted", "low_ef_1y"]].stack().between(0, 1).all()


@pytest.mark.slow
def test_score_bundle_step_scores_with_the_fine_tuned_bundle(tiny_fine_tune, tiny_scores):
    root, info = tiny_fine_tune
    _, scored = tiny_scores
    _timed(scored)
    assert scored["n_scored"] == 120 and scored["model_version"] == info["model_version"]
    scores = pd.read_parquet(root / "ft.parquet")
    assert list(scores.columns) == ["subject", "split", "readmitted", "low_ef_1y"]
    assert scores[["readmitted", "low_ef_1y"]].stack().between(0, 1).all()
    # The same patients as the zero-shot scores (the gate compares them on exactly these).
    assert set(scores["subject"]) == set(pd.read_parquet(root / "tiny.parquet")["subject"])


@pytest.mark.slow
def test_evaluate_step_on_the_tiny_models_own_scores(
    tiny_fine_tune, tiny_scores, study_run, lenient_policy, tmp_path, gateway
):
    root, info = tiny_fine_tune
    figures = TrainingFigures.from_bundle(root / "bundle")
    scores = {
        "baseline": str(study_run.baseline_scores),
        "tiny": str(root / "tiny.parquet"),
        "tiny+qlora": str(root / "ft.parquet"),
    }
    outcome = steps.evaluate_step(
        str(study_run.split), study_run.spec, scores, str(tmp_path / "run"),
        policy_path=str(lenient_policy), training={info["model"]: figures},
    )  # fmt: skip
    assert outcome.models == ("baseline", "tiny", "tiny+qlora")
    assert (outcome.winner == "candidate") is outcome.promote
    assert outcome.aucs()["tiny+qlora"].keys() == {"readmitted", "low_ef_1y"}
    assert steps.export_metrics_step(GateOutcome.read(tmp_path / "run"), gateway.url, "r") == "pushed"
    assert gateway.only().value("cohortlm_training_tokens_per_second") == pytest.approx(figures.tokens_per_s)
