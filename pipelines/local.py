"""Run the pipeline on this machine with kfp.local and collect a readable run folder.

``cohortlm run`` calls :func:`run_local`. The tasks are the same lightweight
components the cluster runs; kfp.local executes them as subprocesses of this
Python environment, with KFP's own caching (a re-run with the same inputs
reuses the outputs) and the same ``dsl.If`` promotion logic.

Run folder (``runs/<id>/``)::

    raw/                 the synthetic registry (when no --data was given)
    cohort.parquet       featurised cohort; split.parquet: with the split column
    validation/          GX report (HTML) and its summary (no patient values)
    scores/<model>.parquet   baseline, <base> and <base>+qlora per base model (id, split, endpoints)
    labels.parquet       endpoint labels with the split
    study.yaml           the spec the run used
    decision.json        the gate's decision record
    outcome.json         the gate step's typed result (cohortlm.run.outcome.GateOutcome)
    report/              index.html, roc.png, table1.md/.csv, metrics.json, summary.md
    bundles/<model>/     the trained baseline and one fine-tuned bundle per base model
    promoted/            the bundle that became champion (when one did)
    logs/<task>.log      each task's full output (kfp.local's own lines: logs/kfp.log)
    summary.json         wall time per step, verdict, the served version, where things are
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cohortlm.contracts import STUDY_FILE, SUMMARY_FILE

if TYPE_CHECKING:
    from cohortlm.run.outcome import GateOutcome
    from cohortlm.run.profiles import Profile


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
}
#: Per-base-model tasks (one folder per loop iteration) -> where each output goes; ``{model}``
#: is the artifact's metadata name (``<base>`` or ``<base>+qlora``).
_COLLECT_PER_BASE = {
    "score-zero-shot": {"scores": "scores/{model}.parquet"},
    "train-qlora": {"bundle": "bundles/{model}"},
    "score-fine-tuned": {"scores": "scores/{model}.parquet"},
}


@dataclass
class RunResult:
    """What a local run produced."""

    run_dir: Path
    winner: str
    promoted_version: str | None
    #: the version serving when the run ended, read from the store (the promoted one or the
    #: champion kept, unless another run or a rollback changed the champion since)
    served_version: str | None = None
    #: the gate's typed result (the pipeline's ``outcome`` output)
    outcome: GateOutcome | None = None
    step_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a short random suffix."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: The last line of a Python traceback: ``pkg.module.SomeError: message``.
_EXCEPTION_LINE = re.compile(
    r"^\s*((?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Failure))(?::\s*(.*))?$"
)


#: kfp.local's own lines (log records, the executor's, JSON, rules): not a step's progress.
_NOT_OWN = re.compile(r"^\s*(\d\d:\d\d:\d\d\.\d+ - |\[KFP Executor|Got executor_input|[-{}\[\]\"]|$)")


def _is_own(line: str) -> bool:
    """Whether a line of a task's output is the task's own (its progress bar, its messages)."""
    return not _NOT_OWN.match(line)


def _planned_steps(pipeline_spec: Any) -> tuple[list[str], int, dict[str, int], set[str]]:
    """The executor tasks of the compiled pipeline, how many one run executes, and the loops.

    Tasks under a ``dsl.If`` are counted for the largest branch only (the
    gate's branches exclude each other); a ``dsl.ParallelFor`` body counts once
    until the task producing its items has run (``loops``: that task -> the
    number of steps in one iteration; ``loop_bodies``: the tasks inside a loop).
    """
    names: list[str] = []
    loops: dict[str, int] = {}
    loop_bodies: set[str] = set()
    components = pipeline_spec.components

    def walk(dag: Any) -> tuple[int, int]:
        fixed, branch = 0, 0
        for name, task in dag.tasks.items():
            comp = components[task.component_ref.name]
            if comp.WhichOneof("implementation") == "dag":
                inner_fixed, inner_branch = walk(comp.dag)
                if task.trigger_policy.condition:
                    branch = max(branch, inner_fixed + inner_branch)
                else:
                    fixed += inner_fixed
                    branch = max(branch, inner_branch)
                if task.WhichOneof("iterator"):
                    loop_bodies.update(comp.dag.tasks)
                if task.WhichOneof("iterator") == "parameter_iterator":
                    channel = task.parameter_iterator.items.input_parameter
                    if channel in task.inputs.parameters:
                        producer = task.inputs.parameters[channel].task_output_parameter.producer_task
                        if producer:
                            loops[producer] = inner_fixed
                        else:  # over a pipeline parameter: "param:<name>"
                            loops["param:" + channel.removeprefix("pipelinechannel--")] = inner_fixed
            else:
                names.append(name)
                fixed += 1
        return fixed, branch

    fixed, branch = walk(pipeline_spec.root.dag)
    return names, fixed + branch, loops, loop_bodies


class _StepConsole:
    """Puts each task's output in ``logs/<task>.log`` and shows one line per step.

    kfp.local writes everything (its own log lines, the executor input JSON,
    each task subprocess's output) to ``sys.stdout``; while the pipeline runs,
    ``sys.stdout`` is this object and the text goes to the log of the task
    that is running (kfp.local's own lines between tasks: ``logs/kfp.log``).
    Steps are timed by wrapping kfp.local's per-task executor, not by reading
    its output; a step that wrote nothing was a cache hit.
    """

    def __init__(
        self,
        log_dir: Path,
        planned: list[str],
        total: int,
        console: Any | None,
        loops: dict[str, int],
        loop_bodies: set[str],
    ) -> None:
        self.log_dir = log_dir
        self.planned = planned
        self.total = total
        self.loops = loops
        self.loop_bodies = loop_bodies
        self.console = console
        self.stream = sys.stdout
        self.current: str | None = None
        self.kfp_log = (log_dir / "kfp.log").open("a")
        self.task_log: Any = None
        self.wrote = False
        self.order: list[str] = []
        self.seconds: dict[str, float] = {}
        self.cached: list[str] = []
        self.failed: list[str] = []
        self.progress: Any = None
        self.bar: Any = None
        self._lock = threading.Lock()

    # -- file-like: sys.stdout while the pipeline runs
    def write(self, text: str) -> int:
        with self._lock:
            target = self.task_log if self.current else self.kfp_log
            target.write(text)
            if self.current:
                self.wrote = True
                if self.progress is not None:
                    own = [ln.strip() for ln in re.split(r"[\r\n]", _ANSI.sub("", text)) if _is_own(ln)]
                    if own:
                        self.progress.update(self.bar, status=own[-1][:48])
        return len(text)

    def flush(self) -> None:
        with self._lock:
            (self.task_log or self.kfp_log).flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    # -- the display
    def __enter__(self) -> _StepConsole:
        self.stream = sys.stdout
        self._console_file = None
        if self.console is not None:
            # A Console without a file of its own writes to whatever sys.stdout is: pin it first.
            self._console_file = self.console._file
            self.console.file = self.console.file
        if self.console is not None and self.console.is_terminal:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("step {task.completed:.0f}/{task.total:.0f}"),
                BarColumn(bar_width=20),
                TextColumn("[bold]{task.description}"),
                TimeElapsedColumn(),
                TextColumn("[dim]{task.fields[status]}"),
                console=self.console,
                transient=True,
            )
            self.bar = self.progress.add_task("starting", total=self.total, status="")
            self.progress.start()
        sys.stdout = self
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stdout = self.stream
        if self.progress is not None:
            self.progress.stop()
        if self.console is not None:
            self.console._file = self._console_file
        self.kfp_log.close()

    def _line(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def wrap(self, execute: Any) -> Any:
        """kfp.local's ``execute_single_task`` with each call timed and its output in the task's log."""
        from kfp.local import status

        def wrapped(task_name: str, *args: Any, **kwargs: Any) -> Any:
            n = len(self.order) + 1
            self.order.append(task_name)
            # A loop's body runs once per item under one task name: number the logs.
            repeat = self.order.count(task_name)
            log_name = f"{task_name}-{repeat}" if task_name in self.loop_bodies else task_name
            if self.progress is not None:
                self.progress.update(self.bar, description=log_name, status="", completed=n - 1)
            with self._lock:
                self.task_log = (self.log_dir / f"{log_name}.log").open("a")
                self.current, self.wrote = task_name, False
            started = time.monotonic()
            ok = False
            try:
                outputs, task_status = execute(task_name, *args, **kwargs)
                ok = task_status == status.Status.SUCCESS
                items = outputs.get("Output") if isinstance(outputs, dict) else None
                if ok and task_name in self.loops and isinstance(items, list):
                    self.total += self.loops[task_name] * (len(items) - 1)
                    if self.progress is not None:
                        self.progress.update(self.bar, total=self.total)
                return outputs, task_status
            finally:
                seconds = round(time.monotonic() - started, 1)
                with self._lock:
                    self.current = None
                    self.task_log.close()
                    self.task_log = None
                ran = self.wrote
                imported = task_name == "importer" or task_name.startswith("importer-")
                if ran or imported:
                    self.seconds[log_name] = seconds
                else:
                    self.cached.append(log_name)
                    (self.log_dir / f"{log_name}.log").write_text("cache hit: outputs reused, nothing ran\n")
                if not ok:
                    self.failed.append(log_name)
                mark = "[green]ok    [/green]" if ok else "[bold red]FAILED[/bold red]"
                when = f"{seconds:6.1f}s" if ran or imported else " cached"
                self._line(f"step {n:>2}/{self.total} {mark} {log_name:<22} {when}")
                if self.progress is not None:
                    self.progress.update(self.bar, completed=n)

        return wrapped

    def not_run(self) -> list[str]:
        return [t for t in self.planned if t not in self.order]


@contextlib.contextmanager
def _step_console(
    log_dir: Path, pipeline_spec: Any, console: Any | None, param_lengths: dict[str, int] | None = None
) -> Iterator[_StepConsole]:
    from kfp.local.orchestrator import task_executor

    param_lengths = param_lengths or {}
    planned, total, loops, loop_bodies = _planned_steps(pipeline_spec)
    # A loop over a pipeline parameter runs once per item, known before the run starts.
    for key, per_item in loops.items():
        if key.startswith("param:") and key[len("param:") :] in param_lengths:
            total += per_item * (param_lengths[key[len("param:") :]] - 1)
    steps = _StepConsole(log_dir, planned, total, console, loops, loop_bodies)
    original = task_executor.execute_single_task
    task_executor.execute_single_task = steps.wrap(original)
    try:
        with steps:
            yield steps
    finally:
        task_executor.execute_single_task = original


def _step_cause(log: Path) -> str:
    """The step's own one-line cause: the last exception line of its log (class and message)."""
    if not log.exists():
        return ""
    cause = ""
    for line in _ANSI.sub("", log.read_text(errors="replace")).splitlines():
        match = _EXCEPTION_LINE.match(line)
        if match:
            name = match.group(1).rsplit(".", 1)[-1]
            cause = f"{name}: {match.group(2).strip()}" if match.group(2) else name
    return cause.rstrip(".")


def _latest_task_dirs(pipeline_root: Path) -> dict[str, Path]:
    runs = sorted(
        (p for p in pipeline_root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
    )
    if not runs:
        return {}
    return {d.name: d for d in runs[-1].iterdir() if d.is_dir()}


def _copy(src: Path, dst: Path) -> None:
    if not src.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)


def _artifact_metadata(task_dir: Path, output: str) -> dict[str, Any]:
    """An output artifact's metadata, from the task's ``executor_output.json``."""
    for path in task_dir.rglob("executor_output.json"):
        artifacts = json.loads(path.read_text()).get("artifacts", {})
        for item in artifacts.get(output, {}).get("artifacts", []):
            return dict(item.get("metadata") or {})
    return {}


def _collect(task_dirs: dict[str, Path], run_dir: Path) -> None:
    """The steps' data files and bundles into the run folder (the gate's folder comes as an output)."""
    for task, outputs in _COLLECT.items():
        tdir = task_dirs.get(task)
        if tdir is None:
            continue
        for output, target in outputs.items():
            _copy(tdir / output, run_dir / target)
    for iteration in sorted(d for name, d in task_dirs.items() if "-iteration-" in name):
        for task, outputs in _COLLECT_PER_BASE.items():
            tdir = iteration / task
            for output, target in outputs.items():
                model = _artifact_metadata(tdir, output).get("model") if tdir.is_dir() else None
                if model:
                    _copy(tdir / output, run_dir / target.format(model=model))


def _collect_gate(folder: Path, run_dir: Path) -> None:
    """The gate's folder (the pipeline's ``outcome`` output) into the run folder: report, records, scores."""
    for item in folder.iterdir():
        _copy(item, run_dir / item.name)


def run_local(
    *,
    study: str = "ra_iorra",
    data: str | None = None,
    profile: str | Profile = "quick",
    base_models: list[str] | None = None,
    out: str | None = None,
    model_store: str = "models",
    policy: str = "",
    pushgateway: str = "",
    cache: bool = True,
    console: Any | None = None,
) -> RunResult:
    """Run the whole pipeline locally and leave a run folder (see module docstring).

    Args:
        study: study name or YAML file.
        data: raw registry folder or flat cohort file; None synthesises the cohort.
        profile: smoke, quick, paper, a profile YAML file, or a resolved recipe
            (:func:`cohortlm.run.profiles.resolve_recipe`: a profile with ``--set`` overrides);
            the pipeline's ``recipe`` parameter carries it to the LLM steps.
        base_models: the base LLMs, each ``NAME=PATH``, a path (HF folder or GGUF file) or
            ``default``; None or empty for the profile's model alone. Checked (names
            unique, paths present, causal LMs) before any step runs.
        out: run folder; default ``runs/<id>``.
        model_store: local model store (champion registry).
        policy: GatePolicy YAML file; empty for the default policy.
        pushgateway: Pushgateway URL for run metrics; empty to skip.
        cache: reuse outputs of tasks whose inputs did not change.
        console: a rich Console for one line per step and the progress display; None shows
            nothing. Either way each task's output goes to ``logs/<task>.log``.
    """
    from cohortlm.cohort.study import load_study

    # Usage and spec errors are found first, before the heavy imports, the base models'
    # checks, the run folder and any step (exit 2).
    spec = load_study(study)
    _check_policy(policy, spec)
    _check_data(data, out, spec)

    from cohortlm.run.profiles import as_profile
    from cohortlm.run.steps import report_run_outcome_step, study_text
    from pipelines.train_evaluate_promote import build_run_pipeline

    recipe = as_profile(profile)
    bases = _checked_bases(recipe, base_models)
    study_yaml = study_text(spec)  # what the run validates in its study-spec step
    run_id = new_run_id()
    run_dir = Path(out) if out else Path("runs") / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STUDY_FILE).write_text(study_yaml)
    started = time.monotonic()
    data_path, split_override = _input_data(run_dir, data, recipe)
    pipeline_root = _init_kfp_local(run_dir, cache)
    log_dir = run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    arguments = {
        "raw_data": str(data_path.resolve()),
        "study_yaml": study_yaml,
        "profile": recipe.name,
        "recipe": recipe.to_json(),
        "base_models": [b.item() for b in bases],
        "feature_repo": str((run_dir / "feature_repo").resolve()),
        "model_store": str(Path(model_store).resolve()),
        "policy_yaml": Path(policy).read_text() if policy else "",
        "split_override": split_override,
        "checkpoint_dir": str((run_dir / "checkpoints").resolve()),
        "pushgateway": pushgateway,
        "run_id": run_id,
        **_LOCAL_ARGUMENTS,
    }
    failure: str | None = None
    outputs: dict[str, Any] = {}
    # One base model at a time: kfp.local runs a loop's iterations in threads of this process.
    # The run's steps without the cluster's exit handler (KFP returns a pipeline's outputs only
    # from outside one); its work, pushing the run's outcome, is done here after the run.
    pipeline = build_run_pipeline(base_parallelism=1)
    with (
        _step_console(log_dir, pipeline.pipeline_spec, console, {"base_models": len(bases)}) as steps,
        clean_import_path(),
    ):
        try:
            outputs = dict(pipeline(**arguments).outputs)
        except RuntimeError as exc:
            failure = str(exc)
    _collect(_latest_task_dirs(pipeline_root), run_dir)
    report_run_outcome_step("FAILED" if failure else "SUCCEEDED", study_yaml, pushgateway, run_id)
    if failure is not None:
        _raise_step_failure(failure, run_dir, steps.failed)
    _collect_gate(Path(outputs["outcome"].path), run_dir)
    skipped = steps.not_run()
    if console is not None and skipped:
        console.print(f"[dim]not run (gate branches not taken): {', '.join(skipped)}[/dim]", highlight=False)
    result = _finish(run_dir, outputs, model_store=model_store, steps=steps, started=started)
    _write_summary(run_dir, result, steps, run_id=run_id, recipe=recipe, bases=[b.name for b in bases])
    return result


#: Pipeline parameters that mean something on a cluster only: the signing-key Secret, the Redis
#: online store, the InferenceService, GPU node pools, PVCs and the Trainer do not exist here.
_LOCAL_ARGUMENTS: dict[str, Any] = {
    "signing_key_file": "",
    "online_store_config": "",
    "isvc_namespace": "",
    "gpu_type": "nvidia.com/gpu",
    "gpu_count": 1,
    "gpu_node_selector": {},
    "gpu_tolerations": [],
    "model_cache_pvc": "",
    "model_store_pvc": "",
    "use_trainer": False,
    "trainer_namespace": "",
    "trainer_gpus": 1,
}


def _checked_bases(prof: Profile, base_models: list[str] | None) -> list[Any]:
    """The run's base models, checked (names unique, paths present, causal LMs) before any step."""
    from cohortlm.models.llm.bases import check_bases, parse_bases

    bases = parse_bases(base_models or [], profile_default=prof.base_model)
    for b in bases:
        prof.base_model_or(b.source or None)  # a profile without a default model needs --base-model
    check_bases(bases)
    return bases


@contextlib.contextmanager
def clean_import_path() -> Iterator[None]:
    """Step processes started meanwhile import only installed code, never the working folder's files.

    kfp.local starts each task as ``python3 -m kfp.dsl.executor_main`` in this
    process's working folder, and ``-m`` puts that folder first on ``sys.path``:
    a user's ``h2.py`` or ``yaml.py`` there shadowed the package of that name
    inside the steps. ``PYTHONSAFEPATH=1`` (Python 3.11+) keeps it off; the
    variable is restored afterwards.
    """
    import os

    saved = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PYTHONSAFEPATH", None)
        else:
            os.environ["PYTHONSAFEPATH"] = saved


def _check_policy(policy: str, spec: Any) -> None:
    """Refuse a policy whose ``primary`` or ``margins`` name an endpoint the study lacks (exit 2)."""
    if not policy:
        return
    from cohortlm.cli.checks import check_policy_endpoints
    from cohortlm.evaluation.gate import load_policy

    check_policy_endpoints(load_policy(policy), spec, policy_name=str(policy))


def _check_data(data: str | None, out: str | None, spec: Any) -> None:
    """The data exists, is what the study's featuriser reads, and is not where the run writes (exit 2)."""
    from cohortlm.cohort.featurise import check_input
    from cohortlm.errors import UsageError

    if data is None:
        return
    source = Path(data)
    if not source.exists():
        raise UsageError(f"--data {data} does not exist")
    if out is not None:
        target, src = Path(out).resolve(), source.resolve()
        if target == src or src in target.parents or target in src.parents:
            raise UsageError(
                f"--out {out} overlaps --data {data}: the run writes its folder there; "
                "give --out a folder apart from the data (or leave it out for runs/<id>)"
            )
    check_input(source, spec, what="--data")


def _input_data(run_dir: Path, data: str | None, profile: Profile) -> tuple[Path, dict[str, float]]:
    """The raw data (the profile's synthetic cohort when none is given) and its split override.

    A user's recipe gets the smoke cohort when it trains the tiny random model, else the quick one.
    """
    from cohortlm.cohort.synthetic import generate_cohort
    from cohortlm.errors import UsageError

    if data is None:
        cfg = PROFILE_COHORT.get(profile.name) or PROFILE_COHORT["smoke" if profile.throwaway else "quick"]
        generate_cohort(n=cfg.n, seed=0).write(run_dir / "raw")
        return run_dir / "raw", dict(cfg.split)
    if not Path(data).exists():
        raise UsageError(f"--data {data} does not exist")
    return Path(data), {}


def _init_kfp_local(run_dir: Path, cache: bool) -> Path:
    """kfp.local with subprocess tasks in this environment; returns the pipeline root."""
    from kfp import local

    pipeline_root = run_dir / ".kfp"
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        enable_caching=cache,
        cache_root=str(Path.home() / ".cache" / "cohortlm" / "kfp-cache"),
    )
    # The resource settings matter on a cluster; locally kfp warns that it ignores them.
    warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
    warnings.filterwarnings("ignore", message=".*non-Python base image.*")
    return pipeline_root


def _finish(
    run_dir: Path, outputs: dict[str, Any], *, model_store: str, steps: _StepConsole, started: float
) -> RunResult:
    """The run's result from the pipeline's outputs; a copy of the version it promoted in ``promoted/``.

    What serves is read from the store now, not taken from the run's steps: a run started
    beside this one may have promoted after it (gated against this run's champion).
    """
    from cohortlm.run.outcome import GateOutcome
    from cohortlm.store.registry import champion_version

    outcome = GateOutcome.read(outputs["outcome"].path)
    left_serving = str(outputs["served_version"])  # what this run's own steps left serving
    promoted_version = left_serving if outcome.winner != "none" else None
    if promoted_version is not None:
        promoted = Path(model_store) / outcome.study / "versions" / promoted_version
        if promoted.is_dir():
            _copy(promoted, run_dir / "promoted")
    return RunResult(
        run_dir=run_dir,
        winner=outcome.winner,
        promoted_version=promoted_version,
        served_version=champion_version(Path(model_store), outcome.study),
        outcome=outcome,
        step_seconds=steps.seconds,
        wall_seconds=round(time.monotonic() - started, 1),
    )


def _write_summary(
    run_dir: Path, result: RunResult, steps: _StepConsole, *, run_id: str, recipe: Profile, bases: list[str]
) -> None:
    """``summary.json``: the verdict, what serves now, wall time per step, cached steps, the recipe."""
    outcome = result.outcome
    summary = {
        "run_id": run_id,
        "study": outcome.study if outcome else None,
        "profile": recipe.name,
        "recipe": recipe.to_dict(),
        "winner": result.winner,
        "promote": outcome.promote if outcome else None,
        "candidate": outcome.candidate if outcome else None,
        "promoted_model": outcome.promoted_model if outcome else None,
        "served_version": result.served_version,
        "base_models": bases,
        "promoted_version": result.promoted_version,
        "wall_seconds": result.wall_seconds,
        "step_seconds": result.step_seconds,
        "cached_steps": steps.cached,
        "logs": str(run_dir / "logs"),
    }
    (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))


def _raise_step_failure(message: str, run_dir: Path, failed: list[str]) -> None:
    """Turn kfp.local's failure into an error with the step's own cause and its log."""
    from cohortlm.errors import DataError, SpecError, StepFailedError

    plain = _ANSI.sub("", message)
    match = re.search(r"Inner task failed: '?([a-z0-9-]+)", plain)
    step = failed[0] if failed else (match.group(1) if match else "unknown")
    log = run_dir / "logs" / f"{step}.log"
    cause = _step_cause(log)
    if step == "validate":
        report = run_dir / "validation" / "validation.json"
        detail = ""
        if report.exists():
            data = json.loads(report.read_text())
            failed_checks = [e for e in data.get("expectations", []) if not e.get("success")]
            detail = ": " + "; ".join(
                f"{e['name']} ({e.get('unexpected_count') or e.get('note') or 'failed'})"
                for e in failed_checks[:8]
            )
            if len(failed_checks) > 8:
                detail += f"; and {len(failed_checks) - 8} more"
        elif cause:
            detail = f": {cause}"
        raise DataError(
            f"the cohort failed validation{detail}. Report: {run_dir / 'validation' / 'validation.html'}; "
            f"log: {log}"
        ) from None
    if cause.startswith(("SpecError:", "UsageError:")):
        # A spec or usage error that only a step could see is still one: exit 2, as before any step.
        raise SpecError(f"pipeline step '{step}' found a spec or usage error: {cause}. Log: {log}") from None
    raise StepFailedError(
        f"pipeline step '{step}' failed: {cause or 'no exception in its log'}. Log: {log}"
    ) from None
