"""CLI commands for the pipeline: ``run`` (local, kfp.local), ``compile`` and ``submit`` (Kubeflow).

kfp is imported inside the commands: the domain core never imports it, and
``cohortlm --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from cohortlm.cli._app import JSON_HELP, STATE, app, echo_json, err_console
from cohortlm.contracts import SUMMARY_FILE
from cohortlm.errors import UsageError

T = TypeVar("T")

console = Console()
if not console.is_terminal:  # logs and CI: wide enough for the AUC table on one screen
    console = Console(width=120)


def _print_summary(run_dir: Path) -> None:
    """One screen: AUC per endpoint and model with n and cases, the verdict, warnings, where the report is."""
    from cohortlm.evaluation.gate import Decision
    from cohortlm.evaluation.report import decision_reasons, model_label

    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    metrics_path = run_dir / "report" / "metrics.json"
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
        rows = metrics.get("table1", [])
        models = metrics.get("models", [])
        small = metrics.get("small_sample") or {}
        few = {s["endpoint"] for s in small.get("endpoints", [])}
        table = Table(title=f"test AUC (95% CI), study {summary['study']}, profile {summary['profile']}")
        table.add_column("endpoint")
        table.add_column("n (cases)", justify="right")
        for m in models:
            table.add_column(model_label(m), justify="right")
        for ep in metrics.get("endpoints", []):
            counts = [(x["n"], x["n_cases"]) for x in rows if x["endpoint"] == ep]
            n, cases = max(counts) if counts else (0, 0)
            cells = [f"{n} ({cases})" + (" [red]few[/red]" if ep in few else "")]
            for m in models:
                r = next((x for x in rows if x["endpoint"] == ep and x["model"] == m), None)
                if r is None or r.get("auc") is None:
                    cells.append("-")
                else:
                    cells.append(f"{r['auc']:.3f} ({r['auc_ci_low']:.2f}-{r['auc_ci_high']:.2f})")
            table.add_row(ep, *cells)
        console.print(table)
        _print_families(metrics.get("families"))
        decision = metrics.get("decision") or {}
        if decision:
            verdict = "PROMOTE" if decision.get("promote") else "KEEP CHAMPION"
            per_ep = decision.get("endpoints", [])
            n = max((e["n"] for e in per_ep), default=0)
            cases = [e["n_cases"] for e in per_ep] or [0]
            console.print(
                f"[bold]gate:[/bold] {verdict}: {model_label(decision['candidate'])} vs "
                f"{model_label(decision['champion'])}, "
                f"test split, {n} patients, {min(cases)}-{max(cases)} cases per endpoint"
            )
            for reason in decision_reasons(Decision.from_json(json.dumps(decision))):
                console.print(f"  - {reason}")
        for warning in small.get("warnings", []):
            console.print(f"[bold red]warning:[/bold red] {warning}")
    winner = summary.get("winner")
    if summary.get("promoted_version"):
        candidate = summary.get("candidate") or "fine-tuned LLM"
        what = model_label(candidate) if winner == "candidate" else "baseline (first champion)"
        console.print(
            f"[bold]promoted:[/bold] {what}, version {summary['promoted_version']} -> {run_dir / 'promoted'}"
        )
    else:
        console.print("[bold]promoted:[/bold] nothing; the champion keeps serving")
    served = summary.get("served_version")
    console.print(f"[bold]serving now:[/bold] version {served or 'none'}")
    if summary.get("promoted_version") and served != summary["promoted_version"]:
        console.print(
            f"[bold red]note:[/bold red] the champion changed after this run promoted "
            f"{summary['promoted_version']}: another run (gated against it) or a rollback"
        )
    if summary.get("profile") == "smoke" and summary.get("promoted_version"):
        console.print("  (a smoke run promotes into the store's smoke-runs/ folder, apart from real runs)")
    report = run_dir / "report"
    console.print(f"[bold]report:[/bold] {report / 'index.html'}")
    console.print(f"[bold]figure:[/bold] {report / 'roc.png'}   [bold]table 1:[/bold] {report / 'table1.md'}")
    steps = _step_times(summary.get("step_seconds", {}))
    cached = summary.get("cached_steps") or []
    if cached:
        steps += f"; cached: {', '.join(cached)}"
    console.print(f"[bold]wall time:[/bold] {summary['wall_seconds']:.0f}s ({steps})")
    console.print(f"[bold]logs:[/bold] {summary.get('logs') or run_dir / 'logs'}/<step>.log")


def _step_times(seconds: dict[str, float]) -> str:
    """``featurise 1s, ..., endpoint-metrics 8× 21s``: a loop's numbered steps summed on one entry."""
    import re

    groups: dict[str, list[float]] = {}
    for name, secs in seconds.items():
        base = re.sub(r"-\d+$", "", name)
        key = base if sum(re.sub(r"-\d+$", "", n) == base for n in seconds) > 1 else name
        groups.setdefault(key, []).append(secs)
    return ", ".join(
        f"{k} {sum(v):.0f}s" if len(v) == 1 else f"{k} {len(v)}× {sum(v):.0f}s" for k, v in groups.items()
    )


def _print_families(families: dict[str, list[dict]] | None) -> None:
    """Seed 000's comparison families, fine-tuned vs its own base first (the seed's first question)."""
    from cohortlm.evaluation.comparisons import FAMILIES
    from cohortlm.evaluation.report import model_label

    if not families:
        return

    def num(x: float | None, fmt: str = ".3f") -> str:
        return "-" if x is None else format(x, fmt)

    def pval(x: float | None) -> str:
        return "-" if x is None else ("<0.0001" if x < 1e-4 else f"{x:.4f}")

    order = ["fine_tuned_vs_base", "base_vs_base", "fine_tuned_vs_baseline"]
    for family in [f for f in order if families.get(f)]:
        rows = families[family]
        title, what, _ = FAMILIES[family]
        pairs = {(r["model_a"], r["model_b"]) for r in rows}
        # One pair of models (the usual case): named once in the title, not on every row, so
        # that a comparison stays on one line of an 80-column terminal.
        one_pair = len(pairs) == 1
        heading = f"{title}: {what.split('? ')[-1]}, Holm over the family"
        if one_pair:
            a, b = next(iter(pairs))
            heading = f"{title} (A {model_label(a)}, B {model_label(b)}): {what.split('? ')[-1]}, Holm"
        table = Table(title=heading)
        columns = ["endpoint", "n (cases)", "AUC A", "AUC B", "ΔAUC (95% CI)", "p", "p Holm"]
        if not one_pair:
            columns = ["model A", "model B", *columns]
        for col in columns:
            text = col in ("model A", "model B", "endpoint")
            table.add_column(col, justify="left" if text else "right", no_wrap=not text)
        for r in rows:
            cells = [
                r["endpoint"],
                f"{r['n']} ({r['n_cases']})",
                num(r["auc_a"]),
                num(r["auc_b"]),
                f"{num(r['delta'], '+.3f')} ({num(r['ci_low'], '+.2f')} to {num(r['ci_high'], '+.2f')})",
                pval(r["p"]),
                pval(r["p_adjusted"]) + (" *" if r["significant"] else ""),
            ]
            if not one_pair:
                cells = [model_label(r["model_a"]), model_label(r["model_b"]), *cells]
            table.add_row(*cells)
        console.print(table)
        n_sig = sum(bool(r["significant"]) for r in rows)
        if family == "fine_tuned_vs_base":
            for a in dict.fromkeys(r["model_a"] for r in rows):
                mine = [r for r in rows if r["model_a"] == a]
                console.print(
                    f"[bold]fine-tuning:[/bold] {model_label(a)} significantly better than "
                    f"{model_label(mine[0]['model_b'])} on {sum(bool(r['significant']) for r in mine)} of "
                    f"{len(mine)} endpoints"
                )
        else:
            console.print(f"[bold]{title}:[/bold] significant in {n_sig} of {len(rows)} tests")


PROFILE_HELP = "smoke (tiny random model), quick (CPU), paper (GPU), or a profile YAML file (a recipe)."
SET_HELP = (
    "Change one value of the profile's recipe, repeatable: KEY=VALUE with a YAML value, e.g. "
    "--set qlora.learning_rate=2e-4 --set qlora.lora_layers=4 --set eval_rows=1000 "
    "--set qlora.lr_schedule=linear. Keys: the profile's fields, qlora.<QLoRAConfig field>, "
    "qlora.optimizer_args.<argument>. Checked before anything runs (`cohortlm recipe` prints the result)."
)

BASE_MODEL_HELP = (
    "Base LLM, repeatable: NAME=PATH or PATH (an HF folder or a .gguf file) or 'default'. "
    "Each is scored zero-shot and fine-tuned on the same patients and named NAME and NAME+qlora "
    "in every output; default: the profile's model."
)


@app.command()
def run(
    study: str = typer.Option("ra_iorra", "--study", help="Study name or YAML file."),
    data: Path | None = typer.Option(
        None, "--data", help="Raw registry folder or flat cohort file; default: synthesise the cohort."
    ),
    profile: str = typer.Option("quick", "--profile", help=PROFILE_HELP),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    base_model: list[str] = typer.Option([], "--base-model", help=BASE_MODEL_HELP),
    out: Path | None = typer.Option(None, "--out", help="Run folder; default runs/<id>."),
    model_store: Path = typer.Option(
        Path("models"),
        "--model-store",
        envvar="COHORTLM_MODEL_STORE",
        help="Local model store (champion registry; default $COHORTLM_MODEL_STORE or ./models); "
        "smoke runs use its smoke-runs/ folder.",
    ),
    policy: Path | None = typer.Option(
        None, "--policy", help="GatePolicy YAML; default: the packaged policy."
    ),
    pushgateway: str = typer.Option(
        os.environ.get("COHORTLM_PUSHGATEWAY", ""), "--pushgateway", help="Pushgateway URL for run metrics."
    ),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse outputs of unchanged steps."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP + " Step output goes to stderr."),
) -> None:
    """Run the whole pipeline locally (kfp.local) and leave a readable run folder.

    Exits 0 whatever the gate decides (the decision is the result), non-zero
    only when a step failed. ``--json`` prints what ``cohortlm runs list --json``
    says of the run; ``--quiet`` prints only the run folder.
    """
    from cohortlm.cli.paths import check_output_dir
    from cohortlm.evaluation.gate import load_policy
    from cohortlm.run.profiles import resolve_recipe
    from cohortlm.store.registry import store_for_profile
    from pipelines.local import run_local

    # Checked before any step runs: a bad recipe, policy or output folder fails now, not after
    # training (run_local checks the base models before it makes the run folder).
    recipe = resolve_recipe(profile, overrides)
    if policy is not None:
        load_policy(policy)
    if out is not None:
        check_output_dir(out, "--out")
    # A smoke run's random model must never become (or be gated against) a real run's champion.
    model_store = store_for_profile(model_store, "smoke" if recipe.throwaway else recipe.name)
    check_output_dir(model_store, "--model-store")
    result = (_stdout_on_stderr(run_local) if as_json else run_local)(
        study=study,
        data=str(data) if data is not None else None,
        profile=recipe,
        base_models=list(base_model),
        out=str(out) if out is not None else None,
        model_store=str(model_store),
        policy=str(policy) if policy is not None else "",
        pushgateway=pushgateway,
        cache=cache,
        # One line per step and the progress display, on stderr with the CLI's other progress.
        console=None if STATE["quiet"] else err_console,
    )
    if as_json:
        from cohortlm.run.runs import read_run

        echo_json(read_run(result.run_dir).to_dict())
        return
    if not STATE["quiet"]:
        _print_summary(result.run_dir)
    typer.echo(str(result.run_dir))


@app.command("recipe")
def recipe_cmd(
    profile: str = typer.Option("quick", "--profile", help=PROFILE_HELP),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Print the resolved recipe: the profile with its --set overrides, every field, defaults included.

    The YAML printed is a profile file: save it, edit it and pass it back with ``--profile FILE``.
    Exits 2 naming the key when the profile or an override is not valid.
    """
    from cohortlm.run.profiles import resolve_recipe

    recipe = resolve_recipe(profile, overrides)
    if as_json:
        echo_json(recipe.to_dict())
        return
    typer.echo(recipe.to_yaml(), nl=False)


def _stdout_on_stderr(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` with everything written to stdout (kfp.local's task logs, the tasks' subprocesses) on stderr.

    ``--json`` promises one JSON object on stdout; the steps print to file
    descriptor 1, so the descriptor itself is redirected, not just ``sys.stdout``.
    """

    def wrapped(*args: Any, **kwargs: Any) -> T:
        sys.stdout.flush()
        try:
            saved = os.dup(1)
        except OSError:  # no real stdout (an embedding host): nothing to protect
            return fn(*args, **kwargs)
        try:
            os.dup2(2, 1)
            return fn(*args, **kwargs)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)

    return wrapped


@app.command("compile")
def compile_cmd(
    out: Path = typer.Option(Path("cohortlm-pipeline.yaml"), "--out", help="Where to write the IR YAML."),
    base_model: list[str] = typer.Option(
        [],
        "--base-model",
        help="Base LLM as the pipeline pods see it, repeatable (NAME=PATH or PATH): the default of "
        "the base_models parameter. Not checked here: the paths are the cluster's.",
    ),
    profile: str = typer.Option(
        "paper",
        "--profile",
        help="The profile (name or YAML file) whose resolved recipe becomes the default of the "
        "recipe and profile parameters, and whose default model an empty base means.",
    ),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Compile the pipeline to KFP IR YAML (upload it in the KFP UI, or use `cohortlm submit`).

    The resolved recipe (``--profile`` with its ``--set`` overrides) is the default of the
    pipeline's ``recipe`` parameter (JSON), which a run may change in the UI without a rebuild.
    Prints, per base model, the fine-tune task and the node pool it asks for.
    """
    from cohortlm.cli.paths import check_output_file
    from cohortlm.models.llm.bases import parse_bases
    from cohortlm.run.profiles import resolve_recipe
    from pipelines.train_evaluate_promote import compile_pipeline

    recipe = resolve_recipe(profile, overrides)
    check_output_file(out, "--out")
    params: dict[str, Any] = {"profile": recipe.name, "recipe": recipe.to_json()}
    if base_model:
        bases = parse_bases(base_model, profile_default=recipe.base_model)
        params["base_models"] = [b.item() for b in bases]
    out.parent.mkdir(parents=True, exist_ok=True)
    compile_pipeline(out, params)
    for line in fine_tune_plan(out):
        err_console.print(line, highlight=False, soft_wrap=True)
    typer.echo(str(out))


def fine_tune_plan(ir_yaml: Path) -> list[str]:
    """One line per base model of a compiled pipeline: its fine-tune task and GPU placement.

    Read back from the IR (the loop's items, the task's accelerator and the
    platform spec's node selector and tolerations), so it says what the cluster
    will run, not what was asked for.
    """
    from cohortlm.yamlsafe import load_yaml_documents

    docs = load_yaml_documents(ir_yaml.read_text(), source=str(ir_yaml))
    spec = docs[0]
    platform = docs[1] if len(docs) > 1 else {}
    params = spec["root"]["inputDefinitions"]["parameters"]
    bases = params["base_models"].get("defaultValue") or [""]
    gpu_type = params.get("gpu_type", {}).get("defaultValue", "")
    gpu_count = int(params.get("gpu_count", {}).get("defaultValue", 0))
    selector = params.get("gpu_node_selector", {}).get("defaultValue", {})
    executors = (
        platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    )
    qlora = executors.get("exec-train-qlora", {})
    where = ", ".join(f"{k}={v}" for k, v in selector.items()) if qlora.get("nodeSelector") else "any node"
    lines = []
    for item in bases:
        name = item.partition("=")[0] or "(profile default)"
        lines.append(
            f"fine-tune {name}+qlora: task train-qlora, {gpu_count} x {gpu_type}, node pool {where}"
            + (", tolerates the GPU taint" if qlora.get("tolerations") else "")
        )
    return lines


def _parse_params(params: list[str]) -> dict[str, object]:
    parsed: dict[str, object] = {}
    for item in params:
        if "=" not in item:
            raise UsageError(f"--param {item!r}: use key=value (JSON values for dicts, lists and numbers)")
        key, value = item.split("=", 1)
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


# The options of the commands that talk to a Kubeflow Pipelines server (submit, schedule).
KfpHost = Annotated[
    str,
    typer.Option("--host", help="Kubeflow Pipelines API URL, e.g. https://kubeflow.example.org/pipeline."),
]
KfpToken = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="KFP_TOKEN", help="Bearer token (or KFP_TOKEN); e.g. a service-account token."
    ),
]
CaBundle = Annotated[Path | None, typer.Option("--ssl-ca-cert", help="CA bundle for the KFP endpoint.")]
Experiment = Annotated[str, typer.Option("--experiment", help="KFP experiment name.")]
RawData = Annotated[str, typer.Option("--raw-data", help="Raw data URI or path as the pipeline pods see it.")]
SentStudy = Annotated[str, typer.Option("--study", help="Study name or YAML file (sent as study_yaml).")]


@app.command()
def submit(
    host: KfpHost,
    raw_data: RawData,
    study: SentStudy = "ra_iorra",
    experiment: Experiment = "cohortlm",
    run_name: str | None = typer.Option(None, "--run-name", help="Run name; default: generated."),
    profile: str = typer.Option("paper", "--profile", help=PROFILE_HELP),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    param: list[str] = typer.Option([], "--param", help="Extra pipeline parameter key=value (repeatable)."),
    base_model: list[str] = typer.Option(
        [],
        "--base-model",
        help="Base LLM as the pipeline pods see it, repeatable (NAME=PATH or PATH); each fine-tunes "
        "in its own GPU pod. Default: the profile's model.",
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", help="Kubeflow profile namespace (multi-user)."
    ),
    token: KfpToken = None,
    cookies: str | None = typer.Option(
        None, "--cookies", envvar="KFP_COOKIES", help="Session cookie for Dex/IAP auth."
    ),
    ssl_ca_cert: CaBundle = None,
    pushgateway: str = typer.Option(
        "",
        "--pushgateway",
        help="Pushgateway URL the run's metrics and outcome go to; default: the in-cluster one "
        "(prometheus-pushgateway.monitoring).",
    ),
) -> None:
    """Upload and start the pipeline on a Kubeflow Pipelines server.

    The resolved recipe (``--profile`` with its ``--set`` overrides) travels as the pipeline's
    ``recipe`` parameter: the same image runs another learning rate, rank or schedule.
    """
    import kfp

    from cohortlm.cohort.study import load_study
    from cohortlm.run.profiles import resolve_recipe
    from cohortlm.run.steps import study_text
    from pipelines.train_evaluate_promote import (
        DEFAULT_PUSHGATEWAY,
        MODEL_STORE_MOUNT,
        train_evaluate_promote,
    )

    recipe = resolve_recipe(profile, overrides)  # checked before the server is contacted
    if pushgateway and not pushgateway.startswith(("http://", "https://")):
        raise UsageError(f"--pushgateway must be an http(s) URL, got {pushgateway!r}")
    extra = _parse_params(param)
    for key in ("profile", "recipe"):
        if key in extra:
            raise UsageError(f"--param {key}=...: give the recipe with --profile and --set instead")
    arguments: dict[str, object] = {
        "raw_data": raw_data,
        "study_yaml": study_text(load_study(study)),
        "profile": recipe.name,
        "recipe": recipe.to_json(),
        "model_store": MODEL_STORE_MOUNT,
        "isvc_namespace": namespace or "cohortlm",
        "pushgateway": pushgateway or DEFAULT_PUSHGATEWAY,
    }
    if base_model:
        from cohortlm.models.llm.bases import parse_bases

        # Names checked here (unique, file-safe); the paths are the cluster's, checked by its pods.
        arguments["base_models"] = [b.item() for b in parse_bases(base_model)]
    arguments.update(extra)
    client = kfp.Client(
        host=host,
        existing_token=token,
        cookies=cookies,
        namespace=namespace or "kubeflow",
        ssl_ca_cert=str(ssl_ca_cert) if ssl_ca_cert else None,
    )
    result = client.create_run_from_pipeline_func(
        train_evaluate_promote,
        arguments=arguments,
        run_name=run_name,
        experiment_name=experiment,
        namespace=namespace,
        enable_caching=True,
    )
    typer.echo(f"run {result.run_id} started: {host.rstrip('/')}/#/runs/details/{result.run_id}")
