"""Run folders read back for people: what ``cohortlm runs list`` and ``runs compare`` show.

A local run leaves ``runs/<id>/`` (see ``pipelines/local.py``): ``summary.json``
(study, profile and its resolved recipe, wall time, what was promoted), ``decision.json`` (the gate's
record: policy, per-endpoint verdicts, the test split's hash) and
``report/metrics.json`` (AUC per model and endpoint). A :class:`RunRecord` is
what those files say; a file that is missing (a run that failed or is still
going) leaves its fields empty rather than failing the listing. A file that is
there but is not a JSON object (truncated, damaged) is named in
:attr:`RunRecord.damaged`: ``runs list`` shows the run as damaged, and ``runs
compare`` refuses it (exit 2, naming the file) rather than compare empty fields.

Only the standard library is imported: listing a hundred runs must not load pandas.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohortlm.contracts import DECISION_FILE, RUN_FILE, SUMMARY_FILE
from cohortlm.errors import UsageError

#: Where ``cohortlm run`` writes run folders unless told otherwise.
DEFAULT_RUNS_DIR = Path("runs")


@dataclass(frozen=True)
class EndpointResult:
    """One endpoint of a run: each model's test AUC and the gate's verdict on it."""

    endpoint: str
    n: int | None
    n_cases: int | None
    auc: dict[str, float | None]
    verdict: str | None = None
    delta: float | None = None


@dataclass(frozen=True)
class RunRecord:
    """What a run folder says about its run (fields are None where a file is missing)."""

    run_id: str
    path: Path
    status: str  # "finished"; "reported" (a report, no pipeline summary); "failed or running"; "damaged"
    study: str | None = None
    profile: str | None = None
    candidate: str | None = None
    champion: str | None = None
    promote: bool | None = None
    promoted_version: str | None = None
    wall_seconds: float | None = None
    models: tuple[str, ...] = ()
    endpoints: tuple[EndpointResult, ...] = ()
    policy: dict[str, Any] = field(default_factory=dict)
    split_hash: str | None = None
    #: the resolved recipe the LLM steps ran (``cohortlm.run.profiles.Profile.to_dict``); {} if not recorded
    recipe: dict[str, Any] = field(default_factory=dict)
    #: the run's JSON files that exist but cannot be read as a JSON object (relative paths)
    damaged: tuple[str, ...] = ()

    def require_readable(self) -> None:
        """Raise :class:`UsageError` naming the damaged files, if any.

        Raises:
            UsageError: a summary, decision or metrics file is truncated or not a JSON object.
        """
        if self.damaged:
            files = ", ".join(str(self.path / d) for d in self.damaged)
            raise UsageError(
                f"run {self.run_id}: {files} cannot be read (not a complete JSON object: truncated or "
                "damaged); nothing of the run can be trusted to compare. Re-run it, or remove the folder"
            )

    @property
    def verdict(self) -> str:
        """``promote``, ``keep champion``, or what is known when the gate did not decide."""
        if self.damaged:
            return f"damaged ({', '.join(self.damaged)})"
        if self.promote is True:
            return "promote"
        if self.promote is False:
            return "keep champion"
        return "failed or running" if self.status == "failed or running" else "no decision"

    def mean_auc(self, model: str) -> float | None:
        """The model's AUC averaged over the endpoints that have one."""
        values = [e.auc.get(model) for e in self.endpoints]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        return sum(finite) / len(finite) if finite else None

    def endpoint(self, name: str) -> EndpointResult | None:
        """The endpoint called ``name``, or None."""
        return next((e for e in self.endpoints if e.endpoint == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` (paths as text)."""
        return {
            "run_id": self.run_id,
            "path": str(self.path),
            "status": self.status,
            "study": self.study,
            "profile": self.profile,
            "verdict": self.verdict,
            "candidate": self.candidate,
            "champion": self.champion,
            "promoted_version": self.promoted_version,
            "wall_seconds": self.wall_seconds,
            "models": list(self.models),
            "mean_auc": {m: self.mean_auc(m) for m in self.models},
            "endpoints": [
                {
                    "endpoint": e.endpoint,
                    "n": e.n,
                    "n_cases": e.n_cases,
                    "auc": e.auc,
                    "verdict": e.verdict,
                    "delta": e.delta,
                }
                for e in self.endpoints
            ],
            "policy": self.policy,
            "split_hash": self.split_hash,
            "recipe": self.recipe,
            "damaged": list(self.damaged),
        }


def _json(path: Path, damaged: list[str] | None = None, root: Path | None = None) -> dict[str, Any]:
    """A JSON object from ``path``; {} when it is missing or not a JSON object (never raises).

    A file that exists but is not a JSON object is added to ``damaged`` (relative to ``root``).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict):
        return data
    if damaged is not None and path.exists():
        damaged.append(str(path.relative_to(root)) if root is not None else path.name)
    return {}


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` looks like a run folder (it has one of the files a run writes)."""
    return path.is_dir() and any(
        (path / name).exists() for name in (SUMMARY_FILE, RUN_FILE, DECISION_FILE, ".kfp", "report")
    )


def read_run(path: str | Path) -> RunRecord:
    """Read one run folder into a :class:`RunRecord`.

    Raises:
        UsageError: ``path`` is not a folder.
    """
    p = Path(path)
    if not p.is_dir():
        raise UsageError(f"{p} is not a run folder")
    damaged: list[str] = []
    summary = _json(p / SUMMARY_FILE, damaged, p)
    # A pipeline run writes decision.json at the top; `cohortlm report` alone writes report/decision.json.
    decision = _json(p / DECISION_FILE, damaged, p) or _json(p / "report" / DECISION_FILE, damaged, p)
    metrics = _json(p / "report" / "metrics.json", damaged, p)
    run = _json(p / RUN_FILE, damaged, p)
    models = tuple(str(m) for m in metrics.get("models") or run.get("models") or ())
    verdicts = {str(e.get("endpoint")): e for e in decision.get("endpoints") or [] if isinstance(e, dict)}
    names = [str(e) for e in metrics.get("endpoints") or []] or list(verdicts)
    rows = [r for r in metrics.get("table1") or [] if isinstance(r, dict)]
    endpoints = []
    for name in names:
        mine = [r for r in rows if r.get("endpoint") == name]
        verdict = verdicts.get(name, {})
        first = mine[0] if mine else verdict
        endpoints.append(
            EndpointResult(
                endpoint=name,
                n=_int(first.get("n")),
                n_cases=_int(first.get("n_cases")),
                auc={str(r.get("model")): _float(r.get("auc")) for r in mine},
                verdict=verdict.get("verdict"),
                delta=_float(verdict.get("delta")),
            )
        )
    promote = decision.get("promote", summary.get("promote"))
    policy = decision.get("policy")
    recipe = summary.get("recipe")
    return RunRecord(
        run_id=str(summary.get("run_id") or p.name),
        path=p,
        status="damaged"
        if damaged
        else ("finished" if summary else ("reported" if metrics else "failed or running")),
        study=summary.get("study"),
        profile=summary.get("profile"),
        candidate=decision.get("candidate") or run.get("candidate"),
        champion=decision.get("champion") or run.get("champion"),
        promote=promote if isinstance(promote, bool) else None,
        promoted_version=summary.get("promoted_version"),
        wall_seconds=_float(summary.get("wall_seconds")),
        models=models,
        endpoints=tuple(endpoints),
        policy=policy if isinstance(policy, dict) else {},
        split_hash=decision.get("split_hash"),
        recipe=recipe if isinstance(recipe, dict) else {},
        damaged=tuple(damaged),
    )


def iter_runs(runs_dir: str | Path = DEFAULT_RUNS_DIR) -> Iterator[RunRecord]:
    """Every run folder under ``runs_dir``, oldest first (run ids sort by start time)."""
    root = Path(runs_dir)
    if not root.is_dir():
        return
    for child in sorted(root.iterdir(), key=lambda c: c.name):
        if not child.name.startswith(".") and is_run_dir(child):
            yield read_run(child)


def find_run(ref: str, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> RunRecord:
    """A run by folder path, by id, or by the start of a unique id (``20261202-0317``).

    Raises:
        UsageError: no run matches, or more than one does (the message says how many).
    """
    as_path = Path(ref)
    if as_path.is_dir() and is_run_dir(as_path):
        return read_run(as_path)
    root = Path(runs_dir)
    if (root / ref).is_dir():
        return read_run(root / ref)
    matches = [c for c in root.iterdir() if c.name.startswith(ref) and is_run_dir(c)] if root.is_dir() else []
    if len(matches) == 1:
        return read_run(matches[0])
    if not matches:
        raise UsageError(f"no run '{ref}' in {root}; give a run folder or an id from `cohortlm runs list`")
    raise UsageError(f"'{ref}' matches {len(matches)} runs in {root}; give more of the id")


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"qlora": {"lora_r": 8}}`` -> ``{"qlora.lora_r": 8}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def recipe_differences(a: RunRecord, b: RunRecord) -> dict[str, tuple[Any, Any]]:
    """The recipe values that differ between two runs, by dotted key (``qlora.learning_rate``).

    Empty when either run recorded no recipe (an older run folder).
    """
    if not a.recipe or not b.recipe:
        return {}
    fa, fb = _flat(a.recipe), _flat(b.recipe)
    keys = sorted(set(fa) | set(fb))
    return {k: (fa.get(k), fb.get(k)) for k in keys if fa.get(k) != fb.get(k)}


def policy_differences(a: RunRecord, b: RunRecord) -> dict[str, tuple[Any, Any]]:
    """The policy settings that differ between two runs: key -> (value in a, value in b)."""
    keys = sorted(set(a.policy) | set(b.policy))
    return {k: (a.policy.get(k), b.policy.get(k)) for k in keys if a.policy.get(k) != b.policy.get(k)}
