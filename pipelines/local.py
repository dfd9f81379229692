"""Run the pipeline on this machine with kfp.local and collect a readable run folder.

``cohortlm run`` calls :func:`run_local`. The tasks are the same lightweight
components the cluster runs; kfp.local executes them as subprocesses of this
Python environment, with KFP's own caching (a re-run with the same inputs
reuses the outputs) and the same ``dsl.If`` promotion logic.

Run folder (``runs/<id>/``)::

    raw/                 the synthetic registry (when no --data was given)
    cohort.parquet       featurised cohort; split.parquet: with the split column
    validation/          GX report (HTML) and its summary (no patient values)
    scores/<model>.parquet   baseline, zero_shot, fine_tuned (id, split, endpoints)
    labels.parquet       endpoint labels with the split
    study.yaml           the spec the run used
    decision.json        the gate's decision record
    report/              roc.png, table1.md/.csv, report.html, metrics.json
    bundles/<model>/     the trained baseline and LLM bundles
    promoted/            the bundle that became champion (when one did)
    summary.json         wall time per step, verdict, where things are
"""

import json
import re
import shutil
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SyntheticCohort:
    """The synthetic cohort a profile runs on when the user gives no data."""

    n: int
    #: split fractions replacing the spec's counts (the smoke cohort is too small for them)
    split: dict[str, float] = field(default_factory=dict)


PROFILE_COHORT = {
    "smoke": SyntheticCohort(n=400, split={"train": 0.6, "validation": 0.2, "test": 0.2}),
    "quick": SyntheticCohort(n=15004),
    "paper": SyntheticCohort(n=15004),
}

#: Task name in kfp.local -> where its outputs go in the run folder.
_COLLECT = {
    "featurise": {"cohort": "cohort.parquet"},
    "split": {"split_table": "split.parquet"},
    "validate": {"details": "validation"},
    "train-baseline": {"bundle": "bundles/baseline", "scores": "scores/baseline.parquet"},
    "score-zero-shot": {"scores": "scores/zero_shot.parquet"},
    "train-qlora": {"bundle": "bundles/fine_tuned"},
    "score-fine-tuned": {"scores": "scores/fine_tuned.parquet"},
    "evaluate-gate": {"decision": "gate"},
}


@dataclass
class RunResult:
    """What a local run produced."""

    run_dir: Path
    winner: str
    promoted_version: str | None
    step_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a short random suffix."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


class _StepClock:
    """Times each step from kfp.local's task lines while passing stdout through.

    kfp.local swaps the root logger's handlers for one that writes to
    ``sys.stdout``, so the lines are read where they are written.
    """

    _start = re.compile(r"Executing task \S*'([^']+)'")
    _end = re.compile(r"Task \S*'([^']+)'\S* finished with status")

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def write(self, text: str) -> int:
        for match in self._start.finditer(text):
            self.started[match.group(1)] = time.monotonic()
        for match in self._end.finditer(text):
            name = match.group(1)
            if name in self.started:
                self.seconds[name] = round(time.monotonic() - self.started[name], 1)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _latest_task_dirs(pipeline_root: Path) -> dict[str, Path]:
    runs = sorted(
        (p for p in pipeline_root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
    )
    if not runs:
        return {}
    return {d.name: d for d in runs[-1].iterdir() if d.is_dir()}


def _collect(task_dirs: dict[str, Path], run_dir: Path) -> None:
    for task, outputs in _COLLECT.items():
        tdir = task_dirs.get(task)
        if tdir is None:
            continue
        for output, target in outputs.items():
            src = tdir / output
            dst = run_dir / target
            if not src.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                if dst.exists():
                    shutil.rmtree(dst)
                shutil.copytree(src, dst)
            else:
                shutil.copyfile(src, dst)
    gate = run_dir / "gate"
    if gate.exists():
        for item in gate.iterdir():
            dst = run_dir / item.name
            if dst.exists():
                shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
            shutil.move(str(item), dst)
        gate.rmdir()


def run_local(
    *,
    study: str = "ra_iorra",
    data: str | None = None,
    profile: str = "quick",
    base_model: str = "",
    out: str | None = None,
    model_store: str = "models",
    policy: str = "",
    pushgateway: str = "",
    cache: bool = True,
) -> RunResult:
    """Run the whole pipeline locally and leave a run folder (see module docstring).

    Args:
        study: study name or YAML file.
        data: raw registry folder or flat cohort file; None synthesises the cohort.
        profile: smoke, quick or paper.
        base_model: HF folder or GGUF file; empty for the profile's default.
        out: run folder; default ``runs/<id>``.
        model_store: local model store (champion registry).
        policy: GatePolicy YAML file; empty for the default policy.
        pushgateway: Pushgateway URL for run metrics; empty to skip.
        cache: reuse outputs of tasks whose inputs did not change.
    """
    from kfp import local

    from cohortlm.cohort.synthetic import generate_cohort
    from cohortlm.errors import UsageError
    from cohortlm.steps import study_text
    from cohortlm.study import load_study
    from pipelines.train_evaluate_promote import train_evaluate_promote

    if profile not in PROFILE_COHORT:
        raise UsageError(f"--profile must be one of {', '.join(PROFILE_COHORT)}, got '{profile}'")
    spec = load_study(study)
    run_id = new_run_id()
    run_dir = Path(out) if out else Path("runs") / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "study.yaml").write_text(study_text(spec))
    started = time.monotonic()
    split_override: dict[str, float] = {}
    if data is None:
        cfg = PROFILE_COHORT[profile]
        raw = run_dir / "raw"
        generate_cohort(n=cfg.n, seed=0).write(raw)
        data_path = raw
        split_override = dict(cfg.split)
    else:
        data_path = Path(data)
        if not data_path.exists():
            raise UsageError(f"--data {data_path} does not exist")
    policy_yaml = Path(policy).read_text() if policy else ""

    pipeline_root = run_dir / ".kfp"
    cache_root = Path.home() / ".cache" / "cohortlm" / "kfp-cache"
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        enable_caching=cache,
        cache_root=str(cache_root),
    )
    timer = _StepClock(sys.stdout)
    sys.stdout = timer
    # The resource settings matter on a cluster; locally kfp warns that it ignores them.
    warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
    warnings.filterwarnings("ignore", message=".*non-Python base image.*")
    try:
        train_evaluate_promote(
            raw_data=str(data_path.resolve()),
            study_yaml=study_text(spec),
            profile=profile,
            base_model=base_model,
            feature_repo=str((run_dir / "feature_repo").resolve()),
            model_store=str(Path(model_store).resolve()),
            policy_yaml=policy_yaml,
            split_override=split_override,
            checkpoint_dir=str((run_dir / "checkpoints").resolve()),
            pushgateway=pushgateway,
            run_id=run_id,
            # The cluster's signing-key Secret and Redis online store do not exist here.
            signing_key_file="",
            online_store_config="",
        )
    except RuntimeError as exc:
        _raise_step_failure(str(exc), run_dir)
    finally:
        sys.stdout = timer.stream
        _collect(_latest_task_dirs(pipeline_root), run_dir)

    decision: dict[str, Any] = {}
    if (run_dir / "decision.json").exists():
        decision = json.loads((run_dir / "decision.json").read_text())
    winner = _winner(_latest_task_dirs(pipeline_root))
    promoted_version = None
    if winner in ("candidate", "baseline"):
        from cohortlm.registry import champion

        current = champion(Path(model_store), spec.name)
        if current is not None:
            promoted = run_dir / "promoted"
            if promoted.exists():
                shutil.rmtree(promoted)
            shutil.copytree(current, promoted)
            promoted_version = json.loads((promoted / "bundle.json").read_text()).get("model_version")
    result = RunResult(
        run_dir=run_dir,
        winner=winner,
        promoted_version=promoted_version,
        step_seconds=timer.seconds,
        wall_seconds=round(time.monotonic() - started, 1),
    )
    (run_dir / "summary.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "study": spec.name,
                "profile": profile,
                "winner": winner,
                "promote": decision.get("promote"),
                "promoted_version": promoted_version,
                "wall_seconds": result.wall_seconds,
                "step_seconds": result.step_seconds,
            },
            indent=2,
        )
    )
    return result


def _raise_step_failure(message: str, run_dir: Path) -> None:
    """Turn kfp.local's failure into an error that names the step and where to look."""
    import re

    from cohortlm.errors import DataError, StepFailedError

    plain = re.sub(r"\x1b\[[0-9;]*m", "", message)
    match = re.search(r"Inner task failed: '?([a-z0-9-]+)", plain)
    step = match.group(1) if match else "unknown"
    if step == "validate":
        report = run_dir / "validation" / "validation.json"
        detail = ""
        if report.exists():
            data = json.loads(report.read_text())
            failed = [e for e in data.get("expectations", []) if not e.get("success")]
            detail = ": " + "; ".join(
                f"{e['name']} ({e.get('unexpected_count') or e.get('note') or 'failed'})" for e in failed[:8]
            )
        raise DataError(
            f"the cohort failed validation{detail}. Report: {run_dir / 'validation' / 'validation.html'}"
        ) from None
    raise StepFailedError(f"pipeline step '{step}' failed; its log is above. Run folder: {run_dir}") from None


def _winner(task_dirs: dict[str, Path]) -> str:
    """The gate's ``winner`` output, read from kfp.local's executor output."""
    gate = task_dirs.get("evaluate-gate")
    if gate is None:
        return "none"
    for path in gate.rglob("executor_output.json"):
        params = json.loads(path.read_text()).get("parameterValues", {})
        if "Output" in params:
            return str(params["Output"])
    return "none"
