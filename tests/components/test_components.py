"""Each component's Python function (``component.python_func``) on real kfp.dsl artifacts.

The artifacts point at files in tmp_path that the earlier components wrote, so
the chain study_spec -> featurise -> validate -> split -> train_baseline ->
evaluate_gate -> per-endpoint metrics -> promote / keep_champion -> export runs
as the pipeline runs it, minus the cluster. The metadata asserted here is what
the KFP UI shows and what later tasks read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from flat_cohort import flat_cohort, hf_study
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model
from steplib import fake_scores, lenient_policy_text

from cohortlm.errors import DataError, SpecError
from cohortlm.run.outcome import GateOutcome
from components.endpoint_metrics.component import endpoint_metrics, gate_endpoints
from components.evaluate_gate.component import evaluate_gate
from components.export_metrics.component import export_metrics
from components.feature_store.component import feature_store
from components.featurise.component import featurise
from components.keep_champion.component import keep_champion
from components.materialize_online.component import materialize_online
from components.promote.component import promote
from components.report_run_outcome.component import report_run_outcome
from components.score_fine_tuned.component import score_fine_tuned
from components.score_zero_shot.component import score_zero_shot
from components.split.component import split
from components.study_spec.component import study_spec
from components.train_baseline.component import train_baseline
from components.train_qlora.component import train_qlora
from components.validate.component import validate

ENDPOINTS = ["readmitted", "low_ef_1y"]


def _ds(path: Path, **metadata) -> Dataset:
    d = Dataset(uri=str(path))
    d.metadata.update(metadata)
    return d


@dataclass
class Chain:
    root: Path
    study: Artifact
    raw: Dataset
    cohort: Dataset
    split_table: Dataset
    bundle: Model
    scores: Dataset
    validation: Artifact

    @property
    def study_spec(self):
        """The study as the components read it (the study_spec artifact)."""
        from cohortlm.cohort.study import load_study

        return load_study(self.study.path)


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Chain:
    """study_spec, featurise, split and train_baseline on a 300-patient flat study (~3 s)."""
    root = tmp_path_factory.mktemp("components")
    flat_cohort(n=300, seed=3).to_csv(root / "hf.csv", index=False)
    study = Artifact(uri=str(root / "study" / "spec.yaml"))
    study_spec.python_func(study_yaml=yaml.safe_dump(hf_study()), spec=study)
    raw = Dataset(uri=str(root / "hf.csv"))
    cohort = Dataset(uri=str(root / "cohort.parquet"))
    featurise.python_func(raw=raw, study=study, cohort=cohort)
    split_table = Dataset(uri=str(root / "split.parquet"))
    split.python_func(table=cohort, study=study, split_override={}, split_table=split_table)
    bundle, scores = Model(uri=str(root / "baseline")), Dataset(uri=str(root / "baseline.parquet"))
    train_baseline.python_func(split_table=split_table, study=study, bundle=bundle, scores=scores)
    validation = Artifact(uri=str(root / "validation"))
    page, metrics = HTML(uri=str(root / "validation.html")), Metrics(uri=str(root / "m"))
    validate.python_func(
        cohort=cohort, study=study, pushgateway="", run_id="r1", job_id="",
        report=page, details=validation, metrics=metrics,
    )  # fmt: skip
    return Chain(root, study, raw, cohort, split_table, bundle, scores, validation)


@dataclass
class Gate:
    verdict: str
    decision: Artifact
    winner: Model
    metrics: Metrics
    roc: ClassificationMetrics
    report: HTML
    table1: Markdown

    @property
    def outcome(self) -> GateOutcome:
        return GateOutcome.read(self.decision.path)


def run_gate(chain: Chain, out: Path, *, fine_tuned: Dataset, llm_bundles=(), model_store: str = "") -> Gate:
    """evaluate_gate with the chain's baseline, a noise zero-shot ``tiny`` and ``fine_tuned``."""
    zero_shot = out / "tiny.parquet"
    out.mkdir(parents=True, exist_ok=True)
    fake_scores(Path(chain.split_table.path), chain.study_spec, zero_shot, quality="noise", seed=1)
    gate = Gate(
        "",
        Artifact(uri=str(out / "decision")),
        Model(uri=str(out / "winner")),
        Metrics(uri=str(out / "metrics")),
        ClassificationMetrics(uri=str(out / "roc")),
        HTML(uri=str(out / "report.html")),
        Markdown(uri=str(out / "table1.md")),
    )
    gate.verdict = evaluate_gate.python_func(
        split_table=chain.split_table,
        baseline_scores=chain.scores,
        baseline_bundle=chain.bundle,
        zero_shot_scores=[_ds(zero_shot, model="tiny")],
        fine_tuned_scores=[fine_tuned],
        llm_bundles=list(llm_bundles),
        study=chain.study,
        validation=chain.validation,
        model_store=model_store,
        policy_yaml=lenient_policy_text(),
        profile="smoke",
        run_id="run-7",
        decision=gate.decision,
        winner=gate.winner,
        metrics=gate.metrics,
        roc=gate.roc,
        report=gate.report,
        table1=gate.table1,
    )
    return gate


@pytest.fixture(scope="module")
def first_gate(chain, tmp_path_factory) -> Gate:
    """No champion yet and a fine-tuned model of noise: the baseline becomes the first champion."""
    out = tmp_path_factory.mktemp("gate")
    ft = fake_scores(
        Path(chain.split_table.path), chain.study_spec, out / "ft.parquet", quality="noise", seed=2
    )
    return run_gate(chain, out, fine_tuned=_ds(ft, model="tiny+qlora"))


# ----------------------------------------------------------------------------- data


def test_study_spec_names_the_study_in_its_metadata(chain):
    from cohortlm.cohort.study import study_from_dict

    spec = study_from_dict(hf_study())
    assert chain.study.metadata == {"study": "hf_readmission", "version": 2, "spec_hash": spec.spec_hash}
    assert chain.study_spec.spec_hash == spec.spec_hash


def test_study_spec_refuses_a_bad_spec(tmp_path):
    bad = hf_study()
    del bad["id_column"]
    out = Artifact(uri=str(tmp_path / "spec.yaml"))
    with pytest.raises(SpecError, match="id_column"):
        study_spec.python_func(study_yaml=yaml.safe_dump(bad), spec=out)
    assert out.metadata == {} and not (tmp_path / "spec.yaml").exists()


def test_featurise_records_counts_on_the_cohort(chain):
    meta = chain.cohort.metadata
    assert meta["n_input"] == meta["n_included"] == 300 and meta["seconds"] >= 0
    assert len(pd.read_parquet(chain.cohort.path)) == 300


def test_validate_logs_metrics_and_copies_the_report(chain, tmp_path):
    report, details, metrics = (
        HTML(uri=str(tmp_path / "report.html")),
        Artifact(uri=str(tmp_path / "details")),
        Metrics(uri=str(tmp_path / "m")),
    )
    validate.python_func(
        cohort=chain.cohort, study=chain.study, pushgateway="", run_id="", job_id="job-1",
        report=report, details=details, metrics=metrics,
    )  # fmt: skip
    assert metrics.metadata["failed"] == 0 and metrics.metadata["rows"] == 300
    assert metrics.metadata["expectations"] > 0
    assert details.metadata == metrics.metadata  # the same summary, seconds included
    assert Path(report.path).read_text() == (Path(details.path) / "validation.html").read_text()
    assert json.loads((Path(details.path) / "validation.json").read_text())["success"] is True


def test_validate_pushes_the_failing_rows_before_it_fails(chain, tmp_path, gateway):
    bad = pd.read_parquet(chain.cohort.path)
    bad.loc[:2, "ef"] = 99  # the study allows 5-80
    bad.to_parquet(tmp_path / "bad.parquet", index=False)
    report, details, metrics = (
        HTML(uri=str(tmp_path / "report.html")),
        Artifact(uri=str(tmp_path / "details")),
        Metrics(uri=str(tmp_path / "m")),
    )
    with pytest.raises(DataError, match=r"ef.*\(3 rows\)"):
        validate.python_func(
            cohort=_ds(tmp_path / "bad.parquet"), study=chain.study, pushgateway=gateway.url, run_id="",
            job_id="job-2", report=report, details=details, metrics=metrics,
        )  # fmt: skip
    assert Path(report.path).is_file()  # the failed run still shows its report
    assert metrics.metadata == {} and details.metadata == {}
    push = gateway.only()
    assert push.path == "/metrics/job/cohortlm-validation/study/hf_readmission"
    assert push.value("cohortlm_run_info", run_id="job-2") == 1
    failing = {
        dict(k[1])["rule"]: v
        for k, v in push.samples().items()
        if k[0] == "cohortlm_validation_failures_total" and v
    }
    assert list(failing.values()) == [3] and "ef" in next(iter(failing))


def test_split_counts_and_override(chain, tmp_path):
    assert {k: chain.split_table.metadata[k] for k in ("train", "validation", "test")} == {
        "train": 180, "validation": 60, "test": 60,
    }  # fmt: skip
    out = Dataset(uri=str(tmp_path / "s.parquet"))
    split.python_func(
        table=chain.cohort,
        study=chain.study,
        split_override={"train": 0.5, "validation": 0.25, "test": 0.25},
        split_table=out,
    )
    assert {k: out.metadata[k] for k in ("train", "validation", "test")} == {
        "train": 150,
        "validation": 75,
        "test": 75,
    }
    with pytest.raises(SpecError, match="split_override"):
        split.python_func(
            table=chain.cohort,
            study=chain.study,
            split_override={"train": 2.0},
            split_table=Dataset(uri=str(tmp_path / "t.parquet")),
        )


def test_train_baseline_metadata(chain):
    assert {k: chain.bundle.metadata[k] for k in ("kind", "model", "n_train")} == {
        "kind": "baseline",
        "model": "baseline",
        "n_train": 180,
    }
    assert chain.bundle.metadata["seconds"] >= 0
    assert chain.scores.metadata == {"model": "baseline"}
    assert (Path(chain.bundle.path) / "bundle.json").is_file()
    assert len(pd.read_parquet(chain.scores.path)) == 300


def test_materialize_online_is_a_no_op_without_a_config(chain):
    assert json.loads(
        materialize_online.python_func(cohort=chain.cohort, study=chain.study, online_store_config="")
    ) == {"skipped": True}


@pytest.mark.slow
def test_feature_store_reads_the_training_table_back(chain, tmp_path):
    out = Dataset(uri=str(tmp_path / "t.parquet"))
    feature_store.python_func(
        cohort=chain.cohort, study=chain.study, feature_repo=str(tmp_path / "repo"), training_table=out
    )
    assert out.metadata["rows"] == 300 and out.metadata["missing_feature_rows"] == 0
    assert out.metadata["feature_repo"] == str(tmp_path / "repo") and out.metadata["seconds"] >= 0
    got = pd.read_parquet(out.path).set_index("subject").sort_index()
    want = pd.read_parquet(chain.cohort.path).set_index("subject").sort_index()
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)


# ----------------------------------------------------------------------------- gate


def test_evaluate_gate_first_run_makes_the_baseline_the_winner(first_gate, chain):
    gate, outcome = first_gate, first_gate.outcome
    assert gate.verdict == "baseline" == outcome.winner
    assert gate.winner.metadata == {"model": "baseline", "verdict": "baseline"}
    assert json.loads((Path(gate.winner.path) / "bundle.json").read_text()) == json.loads(
        (Path(chain.bundle.path) / "bundle.json").read_text()
    )
    meta = gate.decision.metadata
    assert {k: meta[k] for k in ("winner", "promote", "candidate", "champion", "promoted_model")} == {
        "winner": "baseline", "promote": False, "candidate": "tiny+qlora", "champion": "baseline",
        "promoted_model": "baseline",
    }  # fmt: skip
    assert meta["seconds"] > 0
    assert gate.metrics.metadata["promote"] == 0.0
    for ep in outcome.decision.endpoints:
        assert gate.metrics.metadata[f"{ep.endpoint}.auc_candidate"] == pytest.approx(ep.auc_candidate)
    curve = outcome.roc_of("tiny+qlora", ENDPOINTS[0])
    assert [p["recall"] for p in gate.roc.metadata["confidenceMetrics"]] == list(curve.tpr)
    page = Path(gate.report.path).read_text()
    assert page.lstrip().lower().startswith("<!doctype html")
    # The page is complete when the gate writes it: the run, its profile and the validation summary.
    assert "run run-7" in page and "mean nothing" in page and "expectations met on 300 rows" in page
    assert "readmitted" in Path(gate.table1.path).read_text()


def test_evaluate_gate_refuses_a_repeated_model_name(chain, tmp_path):
    ft = fake_scores(Path(chain.split_table.path), chain.study_spec, tmp_path / "ft.parquet", quality="noise")
    with pytest.raises(ValueError, match="repeated model name 'tiny'"):
        run_gate(chain, tmp_path, fine_tuned=_ds(ft, model="tiny"))
    with pytest.raises(ValueError, match="missing or repeated model name ''"):
        run_gate(chain, tmp_path, fine_tuned=_ds(ft))


def test_gate_endpoints_and_endpoint_metrics(first_gate, tmp_path):
    outcome = first_gate.outcome
    endpoints = gate_endpoints.python_func(decision=first_gate.decision)
    assert endpoints == ENDPOINTS
    for ep in endpoints:
        slots = {
            n: ClassificationMetrics(uri=str(tmp_path / f"{ep}-{n}"))
            for n in ("cand", "base", "champ", "conf")
        }
        endpoint_metrics.python_func(
            decision=first_gate.decision, endpoint=ep, roc_candidate=slots["cand"],
            roc_baseline=slots["base"], roc_champion=slots["champ"], confusion=slots["conf"],
        )  # fmt: skip
        for slot, model in (("cand", "tiny+qlora"), ("base", "baseline")):
            meta = slots[slot].metadata
            point = outcome.points[model][ep]
            assert {k: meta[k] for k in ("endpoint", "model", "split", "n", "n_cases")} == {
                "endpoint": ep, "model": model, "split": "test", "n": point["n"], "n_cases": point["n_cases"],
            }  # fmt: skip
            fpr = [p["falsePositiveRate"] for p in meta["confidenceMetrics"]]
            assert fpr == list(outcome.roc_of(model, ep).fpr)
        # A first run has no champion: its slot is empty.
        assert slots["champ"].metadata == {"endpoint": ep, "model": "none", "split": "test"}
        conf = slots["conf"].metadata
        point = outcome.points["tiny+qlora"][ep]
        rows = [r["row"] for r in conf["confusionMatrix"]["rows"]]
        assert rows == [[point["tn"], point["fp"]], [point["fn"], point["tp"]]]
        assert sum(map(sum, rows)) == point["n"] and point["tp"] + point["fn"] == point["n_cases"]
        assert conf["threshold"] == point["threshold"] and conf["threshold_source"] == "validation"


def _promote(gate: Gate, store: Path, tmp_path: Path) -> tuple[str, Model]:
    """The promote component on the gate's winner (unsigned, no InferenceService): version and record."""
    promoted = Model(uri=str(tmp_path / "promoted.json"))
    version = promote.python_func(
        bundle=gate.winner, decision=gate.decision, model_store=str(store), isvc_namespace="",
        signing_key_file="", promoted=promoted,
    )  # fmt: skip
    return version, promoted


def test_promote_the_first_champion(first_gate, tmp_path):
    from cohortlm.store.registry import champion, champion_version

    store = tmp_path / "models"
    version, promoted = _promote(first_gate, store, tmp_path)
    assert champion_version(store, "hf_readmission") == version
    record = json.loads(Path(promoted.path).read_text())
    assert {k: record[k] for k in ("model_version", "study", "signed", "model", "promote", "candidate")} == {
        "model_version": version, "study": "hf_readmission", "signed": False, "model": "baseline",
        "promote": False, "candidate": "tiny+qlora",
    }  # fmt: skip
    assert len(record["manifest_sha256"]) == 64 and version in record["storage_uri"]
    assert promoted.metadata["model_version"] == version and "reasons" not in promoted.metadata
    thresholds = json.loads((champion(store, "hf_readmission") / "thresholds.json").read_text())
    assert thresholds == {ep: r["threshold"] for ep, r in first_gate.outcome.serving_thresholds.items()}


def test_promote_refuses_a_bundle_the_gate_did_not_choose(first_gate, tmp_path):
    other = Model(uri=first_gate.winner.uri)
    other.metadata["model"] = "tiny+qlora"
    with pytest.raises(ValueError, match="the bundle to promote is tiny\\+qlora, the gate promoted baseline"):
        promote.python_func(
            bundle=other, decision=first_gate.decision, model_store=str(tmp_path / "m"), isvc_namespace="",
            signing_key_file="", promoted=Model(uri=str(tmp_path / "p.json")),
        )  # fmt: skip
    (tmp_path / "key.pem").write_text("REPLACE_ME with the signing key\n")
    with pytest.raises(ValueError, match="placeholder"):
        promote.python_func(
            bundle=first_gate.winner, decision=first_gate.decision, model_store=str(tmp_path / "m"),
            isvc_namespace="", signing_key_file=str(tmp_path / "key.pem"),
            promoted=Model(uri=str(tmp_path / "p.json")),
        )  # fmt: skip
    assert not (tmp_path / "m").exists()


def test_keep_champion_names_the_serving_version(chain, tmp_path):
    from cohortlm.store.registry import promote as store_promote

    store = tmp_path / "models"
    version = store_promote(chain.bundle.path, store)
    ft = fake_scores(
        Path(chain.split_table.path), chain.study_spec, tmp_path / "ft.parquet", quality="noise", seed=2
    )
    gate = run_gate(chain, tmp_path / "gate", fine_tuned=_ds(ft, model="tiny+qlora"), model_store=str(store))
    assert gate.verdict == "none" and gate.winner.metadata == {"model": "none", "verdict": "none"}
    assert list(Path(gate.winner.path).iterdir()) == []
    assert gate.outcome.champion == f"champion_baseline_{version}"
    assert keep_champion.python_func(decision=gate.decision, model_store=str(store)) == version
    with pytest.raises(ValueError, match=r"study hf_readmission, but .* has none"):
        keep_champion.python_func(decision=gate.decision, model_store=str(tmp_path / "empty"))


def test_export_metrics(first_gate, gateway):
    assert (
        export_metrics.python_func(decision=first_gate.decision, pushgateway="", run_id="", job_id="j")
        == "skipped"
    )
    assert (
        export_metrics.python_func(
            decision=first_gate.decision, pushgateway=gateway.url, run_id="", job_id="job-3"
        )
        == "pushed"
    )
    push = gateway.only()
    assert push.path == "/metrics/job/cohortlm/study/hf_readmission"
    assert push.value("cohortlm_run_info", run_id="job-3") == 1
    assert push.value("cohortlm_gate_promoted") == 0
    assert push.value("cohortlm_run_auc", model="baseline", endpoint="readmitted") == pytest.approx(
        first_gate.outcome.aucs()["baseline"]["readmitted"]
    )


@dataclass
class _Status:
    """What KFP hands an exit handler (dsl.PipelineTaskFinalStatus); the component reads ``state``."""

    state: str
    pipeline_job_resource_name: str = "projects/p/locations/l/pipelineJobs/job-4"
    pipeline_task_name: str = "cohortlm"
    error_code: int | None = None
    error_message: str | None = None


def test_report_run_outcome(gateway):
    text = yaml.safe_dump(hf_study())
    assert (
        report_run_outcome.python_func(
            status=_Status("SUCCEEDED"), study_yaml=text, pushgateway="", run_id="r", job_id=""
        )
        == "skipped SUCCEEDED"
    )
    got = report_run_outcome.python_func(
        status=_Status("FAILED"), study_yaml=text, pushgateway=gateway.url, run_id="", job_id="job-4"
    )
    assert got == "pushed FAILED"
    push = gateway.only()
    assert push.method == "POST" and push.path == "/metrics/job/cohortlm-run/study/hf_readmission"
    assert push.value("cohortlm_run_failed") == 1 and push.value("cohortlm_run_info", run_id="job-4") == 1


# ----------------------------------------------------------------------------- LLM components (tiny model)


@pytest.mark.slow
def test_llm_components_train_score_gate_promote_and_export(chain, tmp_path, gateway):
    """score_zero_shot, train_qlora and score_fine_tuned with the smoke profile's tiny Llama (~20 s);
    then a gate that promotes the fine-tuned bundle, its promotion and the export of its tokens/s."""
    from cohortlm.models.training import TrainingFigures
    from cohortlm.store.registry import champion_version

    zs = Dataset(uri=str(tmp_path / "zs.parquet"))
    score_zero_shot.python_func(
        split_table=chain.split_table, study=chain.study, profile="smoke", base_model="", scores=zs
    )
    assert zs.metadata["model"] == "tiny" and zs.metadata["n_scored"] == 120

    bundle, training = Model(uri=str(tmp_path / "bundle")), Metrics(uri=str(tmp_path / "training"))
    train_qlora.python_func(
        split_table=chain.split_table, study=chain.study, profile="smoke", base_model="",
        checkpoint_dir=str(tmp_path / "ckpt"), use_trainer=False, trainer_namespace="", trainer_gpus=0,
        gpu_node_selector={}, gpu_tolerations=[], gpu_type="", gpu_count=0, bundle=bundle, training=training,
    )  # fmt: skip
    figures = TrainingFigures.from_bundle(bundle.path)
    assert figures.tokens_per_s is not None and figures.tokens_per_s > 0
    assert (
        bundle.metadata["model"] == "tiny+qlora" and bundle.metadata["tokens_per_s"] == figures.tokens_per_s
    )
    assert bundle.metadata["gpu_type"] == "" and bundle.metadata["gpu_count"] == 0
    assert training.metadata["tokens_per_s"] == figures.tokens_per_s
    losses = {k: v for k, v in training.metadata.items() if k.startswith("loss.step_")}
    assert sorted(losses) == [f"loss.step_{i:05d}" for i in range(1, 9)]
    assert list(losses.values()) == pytest.approx(list(figures.losses))
    assert (tmp_path / "ckpt" / "tiny" / "bundle" / "bundle.json").is_file()  # where a retried pod resumes

    ft = Dataset(uri=str(tmp_path / "ft.parquet"))
    score_fine_tuned.python_func(bundle=bundle, split_table=chain.split_table, profile="smoke", scores=ft)
    assert (
        ft.metadata["model"] == "tiny+qlora"
        and ft.metadata["model_version"] == bundle.metadata["model_version"]
    )
    assert len(pd.read_parquet(ft.path)) == 120

    # Scores that track the labels stand in for the tiny model's (which mean nothing), so the gate
    # promotes the fine-tuned bundle.
    good = fake_scores(
        Path(chain.split_table.path), chain.study_spec, tmp_path / "good.parquet", quality="good", seed=2
    )
    gate = run_gate(chain, tmp_path / "gate", fine_tuned=_ds(good, model="tiny+qlora"), llm_bundles=[bundle])
    assert gate.verdict == "candidate" and gate.winner.metadata == {
        "model": "tiny+qlora",
        "verdict": "candidate",
    }
    assert gate.outcome.training["tiny+qlora"] == figures
    assert gate.metrics.metadata["promote"] == 1.0

    store = tmp_path / "models"
    version, promoted = _promote(gate, store, tmp_path)
    assert version == bundle.metadata["model_version"] == champion_version(store, "hf_readmission")
    assert promoted.metadata["model"] == "tiny+qlora" and promoted.metadata["promote"] is True

    assert (
        export_metrics.python_func(
            decision=gate.decision, pushgateway=gateway.url, run_id="llm-run", job_id=""
        )
        == "pushed"
    )
    push = gateway.only()
    assert push.value("cohortlm_training_tokens_per_second") == pytest.approx(figures.tokens_per_s)
    assert push.value("cohortlm_gate_promoted") == 1
