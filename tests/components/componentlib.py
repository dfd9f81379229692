"""The chain the component tests share: the pipeline's first components run once on a flat
study, and the gate run on its baseline (fixtures in conftest.py, helpers here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model
from steplib import fake_scores, lenient_policy_text

from cohortlm.run.outcome import GateOutcome
from components.evaluate_gate.component import evaluate_gate
from components.promote.component import promote

ENDPOINTS = ["readmitted", "low_ef_1y"]


def ds(path: Path, **metadata) -> Dataset:
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
        zero_shot_scores=[ds(zero_shot, model="tiny")],
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


def promote_winner(gate: Gate, store: Path, tmp_path: Path) -> tuple[str, Model]:
    """The promote component on the gate's winner (unsigned, no InferenceService): version and record."""
    promoted = Model(uri=str(tmp_path / "promoted.json"))
    version = promote.python_func(
        bundle=gate.winner, decision=gate.decision, model_store=str(store), isvc_namespace="",
        signing_key_file="", promoted=promoted,
    )  # fmt: skip
    return version, promoted
