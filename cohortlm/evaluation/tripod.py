"""The TRIPOD+AI checklist of a run: every item, and where the run's report answers it or why not.

TRIPOD+AI (Collins et al., BMJ 2024;385:e078378) is the list a clinical reader
holds a prediction-model report against: 27 items, 52 with their sub-items. The
items are data (``tripod_ai.yaml`` beside this module, :func:`checklist_items`);
this module maps each to the run's evidence (:func:`tripod_checklist`): the
study spec, the split sizes and case counts
(:class:`~cohortlm.evaluation.cohort_counts.CohortSummary`), the models
compared, the gate's decision, the validation summary and the files the run
folder holds. Each entry is

* ``answered``: the run answers it; ``where`` names the run-folder files (and page
  sections) that do, all of which exist when the checklist is written;
* ``partial``: the run answers part of it and ``detail`` says which part is missing;
* ``not applicable``: the item does not arise for this kind of study, and why;
* ``not answered``: a report of this run cannot answer it (e.g. ethics approval),
  and ``detail`` says what a paper must add.

Only aggregate figures go in (counts, names, definitions, the verdict); the
study period is given in whole calendar years, and only years holding at least
:data:`~cohortlm.evaluation.cohort_counts.MIN_PERIOD_COUNT` baselines count, so
no single patient's date or value can appear (a test plants an unusual value and
looks for it).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from cohortlm.cohort.study import StudySpec
from cohortlm.evaluation.cohort_counts import CohortSummary
from cohortlm.yamlsafe import load_yaml_text

__all__ = [
    "STATUSES",
    "TRIPOD_FILE",
    "ChecklistEntry",
    "ChecklistItem",
    "RunEvidence",
    "checklist_items",
    "report_evidence",
    "run_folder_files",
    "tripod_checklist",
    "tripod_html",
    "tripod_markdown",
]

#: the checklist's file in a report folder
TRIPOD_FILE = "tripod_ai.md"
STATUSES = ("answered", "partial", "not applicable", "not answered")


@dataclass(frozen=True)
class ChecklistItem:
    """One TRIPOD+AI item: its number (``12c``), section, topic and a short paraphrase."""

    id: str
    section: str
    topic: str
    text: str


@lru_cache(maxsize=1)
def checklist_items() -> tuple[ChecklistItem, ...]:
    """The 52 TRIPOD+AI items (27 main items with their sub-items), in the statement's order."""
    text = (resources.files("cohortlm") / "evaluation" / "tripod_ai.yaml").read_text(encoding="utf-8")
    data = load_yaml_text(text, source="cohortlm/evaluation/tripod_ai.yaml")
    return tuple(
        ChecklistItem(id=str(i["id"]), section=str(i["section"]), topic=str(i["topic"]), text=str(i["text"]))
        for i in data["items"]
    )


# ----------------------------------------------------------------------------- the evidence


@dataclass(frozen=True)
class RunEvidence:
    """What a run has to answer the checklist with (aggregates and names only).

    Attributes:
        endpoints: The endpoints, in study order.
        models: Every model compared.
        files: Run-folder paths (POSIX, relative) that exist, e.g. ``report/roc.png``.
        study: The study spec, when known.
        cohort: Patients and cases per split, when known.
        decision: The gate's record (``Decision.to_dict()``), when there is one.
        validation: The validation step's report (names and counts), when there is one.
        eval_split: The split the metrics are on.
        threshold_split: The split thresholds were chosen on.
        threshold_method: How thresholds were chosen.
        conf_level: Level of the intervals.
        profile: The run profile, when known.
        metrics_keys: The top-level keys of ``report/metrics.json``.
        small_sample: Endpoints with fewer than the report's minimum cases or controls.
    """

    endpoints: Sequence[str]
    models: Sequence[str]
    files: frozenset[str]
    study: StudySpec | None = None
    cohort: CohortSummary | None = None
    decision: Mapping[str, Any] | None = None
    validation: Mapping[str, Any] | None = None
    eval_split: str = "test"
    threshold_split: str | None = "validation"
    threshold_method: str = "youden"
    conf_level: float = 0.95
    profile: str | None = None
    metrics_keys: frozenset[str] = field(default_factory=frozenset)
    small_sample: Sequence[str] = ()

    def has(self, path: str) -> bool:
        """Whether the run folder holds ``path`` (a file, or a folder ending in ``/``)."""
        if path.endswith("/"):
            return any(f.startswith(path) for f in self.files)
        return path.split("#", 1)[0] in self.files

    def cite(self, *paths: str) -> tuple[str, ...]:
        """The paths that exist, in order."""
        return tuple(p for p in paths if self.has(p))


def run_folder_files(run_dir: str | Path, *, extra: Iterable[str] = ()) -> frozenset[str]:
    """Relative POSIX paths of the files under ``run_dir`` (hidden folders skipped), plus ``extra``."""
    root = Path(run_dir)
    found = set(extra)
    if root.is_dir():
        for p in root.rglob("*"):
            rel = p.relative_to(root)
            if p.is_file() and not any(part.startswith(".") for part in rel.parts):
                found.add(rel.as_posix())
    return frozenset(found)


@dataclass(frozen=True)
class ChecklistEntry:
    """One item and how this run answers it."""

    item: ChecklistItem
    status: str
    detail: str
    where: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "item": self.item.id,
            "section": self.item.section,
            "topic": self.item.topic,
            "status": self.status,
            "where": list(self.where),
            "detail": self.detail,
        }


# ----------------------------------------------------------------------------- item by item

_Answer = tuple[str, str, tuple[str, ...]]
_RULES: dict[str, Callable[[RunEvidence], _Answer]] = {}


def _rule(*ids: str) -> Callable[[Callable[[RunEvidence], _Answer]], Callable[[RunEvidence], _Answer]]:
    def register(fn: Callable[[RunEvidence], _Answer]) -> Callable[[RunEvidence], _Answer]:
        for i in ids:
            _RULES[i] = fn
        return fn

    return register


def _answered(ev: RunEvidence, detail: str, *paths: str) -> _Answer:
    """``answered`` when at least one of ``paths`` exists, else ``partial`` (the files are missing)."""
    where = ev.cite(*paths)
    if where:
        return "answered", detail, where
    return "partial", detail + " (the files that show it are not in this run folder)", ()


def _answered_by(
    item: str, *paths: str
) -> Callable[[Callable[[RunEvidence], str]], Callable[[RunEvidence], str]]:
    """Register the rule of an item the run answers with ``paths`` (see :func:`_answered`): the
    decorated function says only how, from the evidence."""

    def register(detail: Callable[[RunEvidence], str]) -> Callable[[RunEvidence], str]:
        _RULES[item] = lambda ev: _answered(ev, detail(ev), *paths)
        return detail

    return register


def _endpoint_list(ev: RunEvidence) -> str:
    if ev.study is None:
        return ", ".join(ev.endpoints)
    return "; ".join(f"{e.name}: {e.column} {e.operator} {e.threshold:g}" for e in ev.study.endpoints)


def _sizes(ev: RunEvidence) -> str:
    if ev.cohort is None:
        return "split sizes not recorded in this run folder"
    return ", ".join(f"{s} n = {n:,}" for s, n in ev.cohort.n.items())


def _verdict(ev: RunEvidence) -> str:
    d = ev.decision
    if not d:
        return "no gate decision in this run"
    word = "promote" if d.get("promote") else "keep the champion"
    return f"gate: {word} (candidate {d.get('candidate')}, champion {d.get('champion')})"


def _synthetic_note(ev: RunEvidence) -> str:
    if ev.cohort is not None and ev.cohort.synthetic:
        return "the data is the project's seeded synthetic cohort (cohortlm synth), not real patients"
    if ev.cohort is not None and ev.cohort.synthetic is False:
        return "the data was supplied by the user"
    return "the run does not record whether the data is synthetic"


@_answered_by("1", "report/index.html", "study.yaml")
def _title(ev: RunEvidence) -> str:
    name = ev.study.name if ev.study else "the study"
    return (
        f"{name}: development and internal validation of {len(ev.models)} models predicting "
        f"{len(ev.endpoints)} binary endpoints ({', '.join(ev.endpoints)})"
    )


@_rule("3a")
def _context(ev: RunEvidence) -> _Answer:
    text = (ev.study.description or "").strip() if ev.study else ""
    detail = "the study's description in study.yaml" if text else "the spec has no description"
    return "partial", detail + "; references to existing models belong in the paper", ev.cite("study.yaml")


@_rule("3b")
def _intended(ev: RunEvidence) -> _Answer:
    declared = bool(getattr(ev.study, "intended_use", None)) if ev.study else False
    if declared:
        return _answered(
            ev, "the spec's intended_use, repeated in the promoted bundle's model card", "study.yaml"
        )
    return (
        "partial",
        "the spec declares no intended_use; the model card states a default (a decision aid for "
        "the study's endpoints); intended users are not named",
        ev.cite("study.yaml"),
    )


@_answered_by("4", "decision.json", "report/index.html#gate")
def _objectives(ev: RunEvidence) -> str:
    return (
        f"development of {len(ev.models)} models ({', '.join(ev.models)}) and their internal validation "
        f"on a held-out {ev.eval_split} split; a gate decides whether the candidate replaces the champion "
        f"({_verdict(ev)})"
    )


@_rule("5a")
def _sources(ev: RunEvidence) -> _Answer:
    featuriser = ev.study.featuriser if ev.study else None
    how = (
        f"registry tables featurised by '{featuriser}'" if featuriser else "a flat table, one row per patient"
    )
    return (
        "partial",
        f"one data source: {how}; {_synthetic_note(ev)}; representativeness is not assessed",
        ev.cite("study.yaml"),
    )


@_rule("5b")
def _dates(ev: RunEvidence) -> _Answer:
    synthetic = " (synthetic dates: no real accrual)" if ev.cohort and ev.cohort.synthetic else ""
    if ev.cohort is not None and ev.cohort.period is not None:
        a, b = ev.cohort.period
        column = ev.study.timestamp_column if ev.study else "baseline"
        return (
            "partial",
            f"baselines ({column}) from {a} to {b}{synthetic}; end of follow-up is not recorded",
            ev.cite("outcome.json"),
        )
    return "not answered", "the data has no dates the run can summarise; state accrual dates in the paper", ()


@_rule("6b")
def _eligibility(ev: RunEvidence) -> _Answer:
    featuriser = ev.study.featuriser if ev.study else None
    rules = ", ".join(ev.study.rules) if ev.study and ev.study.rules else "none"
    detail = (
        f"patients with a label for an endpoint; inclusion and exclusions are those of the featuriser "
        f"('{featuriser}') and the spec's rules ({rules})"
        if featuriser
        else f"every row of the data with a label for an endpoint; the spec's rules: {rules}"
    )
    return "partial", detail + "; exclusion counts are not in the report", ev.cite("study.yaml")


@_rule("6c")
def _treatments(ev: RunEvidence) -> _Answer:
    treated = [f.name for f in ev.study.features if f.group == "treatment"] if ev.study else []
    if treated:
        return _answered(ev, f"baseline treatments are predictors: {', '.join(treated)}", "study.yaml")
    return "not answered", "the spec declares no treatment features (feature group 'treatment')", ()


@_rule("7")
def _preparation(ev: RunEvidence) -> _Answer:
    v = ev.validation
    if v:
        n_exp = v.get("n_expectations", len(v.get("expectations", [])))
        failed = sum(1 for e in v.get("expectations", []) if not e.get("success"))
        word = "passed" if v.get("success") else "failed"
        detail = (
            f"Great Expectations suite generated from the spec: {n_exp} expectations, {failed} failing "
            f"({word}); not checked per sociodemographic group"
        )
        return _answered(ev, detail, "validation/validation.html", "validation/validation.json")
    return "not answered", "no validation report in this run folder", ()


@_answered_by("8a", "study.yaml", "report/table1.md")
def _outcome(ev: RunEvidence) -> str:
    return f"endpoint definitions: {_endpoint_list(ev)}"


@_rule("9a")
def _choice(ev: RunEvidence) -> _Answer:
    n = len(ev.study.features) if ev.study else 0
    return (
        "partial",
        f"all {n} predictors the spec declares are used, without selection; the rationale for the list "
        "belongs in the paper",
        ev.cite("study.yaml"),
    )


@_answered_by("9b", "study.yaml")
def _predictors(ev: RunEvidence) -> str:
    when = (
        f" at the prediction time ({ev.study.timestamp_column})"
        if ev.study and ev.study.timestamp_column
        else ""
    )
    return f"name, type, unit, range and description of each predictor{when}"


@_rule("10")
def _sample_size(ev: RunEvidence) -> _Answer:
    small = (
        f"; endpoints with too few cases are named: {', '.join(ev.small_sample)}" if ev.small_sample else ""
    )
    return (
        "not applicable",
        f"no sample size calculation: the split sizes come from the spec ({_sizes(ev)}){small}",
        ev.cite("study.yaml", "report/index.html"),
    )


@_answered_by("12a", "outcome.json", "study.yaml")
def _partition(ev: RunEvidence) -> str:
    seed = ev.study.split.seed if ev.study else "?"
    return (
        f"patient-level random split (seed {seed}): {_sizes(ev)}; thresholds chosen on "
        f"{ev.threshold_split}, performance measured on {ev.eval_split}"
    )


@_answered_by("12c", "report/metrics.json", "report/index.html")
def _models(ev: RunEvidence) -> str:
    internal = (
        "a held-out test split, and bootstrap optimism correction of the regression"
        if {"internal_validation", "optimism"} & ev.metrics_keys
        else "a held-out test split (no resampling)"
    )
    return f"models: {', '.join(ev.models)}; internal validation: {internal}"


@_rule("12e")
def _measures(ev: RunEvidence) -> _Answer:
    shown = ["AUC with DeLong interval and ROC curves", "Table 1 threshold metrics and Brier score"]
    paths = ["report/roc.png", "report/table1.md"]
    for path, what in (
        ("report/calibration.png", "calibration (intercept, slope, O/E, ICI)"),
        ("report/decision_curve.png", "decision curves (net benefit)"),
        ("report/subgroups.csv", "subgroup performance"),
    ):
        if ev.has(path):
            shown.append(what)
            paths.append(path)
    shown.append("paired DeLong tests with Holm adjustment for model comparison")
    return _answered(ev, "; ".join(shown), *paths, "report/families.csv")


@_rule("13")
def _imbalance(ev: RunEvidence) -> _Answer:
    if any(m.endswith("+qlora") for m in ev.models):
        return (
            "partial",
            "the fine-tune's answer loss is class-balanced; the regression is unweighted; "
            "calibration is reported, not corrected afterwards",
            ev.cite("report/index.html"),
        )
    return "not applicable", "no class imbalance method was used", ()


@_answered_by("15", "report/table1.csv", "outcome.json")
def _output(ev: RunEvidence) -> str:
    return (
        f"a probability per endpoint; a decision at a threshold chosen by {ev.threshold_method} on "
        f"{ev.threshold_split} (or the spec's decision threshold), its source per row in Table 1"
    )


@_rule("17")
def _ethics(ev: RunEvidence) -> _Answer:
    if ev.cohort is not None and ev.cohort.synthetic:
        return "not applicable", "synthetic cohort: no participants, no approval needed", ()
    return "not answered", "the run does not record ethics approval or consent; state them in the paper", ()


@_rule("18e")
def _data_sharing(ev: RunEvidence) -> _Answer:
    if ev.cohort is not None and ev.cohort.synthetic:
        return "partial", "the synthetic cohort is regenerated from its seed (cohortlm synth)", ()
    return "not answered", "data availability is not recorded by the run", ()


@_rule("20a")
def _flow(ev: RunEvidence) -> _Answer:
    if ev.cohort is None:
        return "not answered", "split sizes are not recorded in this run folder", ()
    return (
        "partial",
        f"{_sizes(ev)}, cases per endpoint and split in outcome.json (cohort); no flow diagram, "
        "no follow-up time",
        ev.cite("outcome.json"),
    )


@_rule("21")
def _events(ev: RunEvidence) -> _Answer:
    if ev.cohort is None:
        return _answered(ev, "n and cases per endpoint on the evaluation split", "report/table1.csv")
    parts = []
    for s, eps in ev.cohort.cases.items():
        total = ", ".join(f"{e} {c}" for e, c in eps.items())
        parts.append(f"{s} (n = {ev.cohort.n.get(s, 0):,}): {total}")
    return _answered(ev, "cases per split: " + "; ".join(parts), "outcome.json", "report/table1.csv")


@_rule("22")
def _specification(ev: RunEvidence) -> _Answer:
    promoted = ev.has("promoted/")
    return (
        "answered" if promoted else "partial",
        "the promoted model is a signed bundle (model files, study, thresholds, decision, model card) in "
        "the model store" + ("" if promoted else "; it is copied to promoted/ when the run ends"),
        ev.cite("promoted/model_card.md"),
    )


@_answered_by("23a", "report/table1.md", "report/roc.png", "report/subgroups.csv")
def _performance(ev: RunEvidence) -> str:
    level = f"{ev.conf_level:.0%}"
    sub = "; per subgroup in report/subgroups.csv" if ev.has("report/subgroups.csv") else "; no subgroups"
    return f"AUC with {level} interval and threshold metrics per endpoint and model on {ev.eval_split}{sub}"


@_rule("25")
def _interpretation(ev: RunEvidence) -> _Answer:
    return (
        "partial",
        f"the gate's verdict and its reasons ({_verdict(ev)}); comparison with previous studies belongs "
        "in the paper",
        ev.cite("decision.json", "report/index.html#gate"),
    )


@_rule("26")
def _limitations(ev: RunEvidence) -> _Answer:
    parts = [_synthetic_note(ev), "one data source, no external validation"]
    if ev.small_sample:
        parts.append(f"few cases on {', '.join(ev.small_sample)}")
    return "partial", "; ".join(parts), ev.cite("report/index.html")


_IN_THE_PAPER = "not recorded by the run; state it in the paper"
_ONE_SOURCE = "one data source, no clusters (centres) declared"
_NO_UPDATING = "no model updating or recalibration after evaluation"

#: Items a report of a run cannot answer, and what is missing.
_NOT_ANSWERED = {
    "6a": "the spec does not record the setting or the number and location of centres",
    "8c": "blinding of the recorded outcome values is not recorded",
    "9c": "who measured the predictors is not recorded",
    "18a": _IN_THE_PAPER,
    "18b": _IN_THE_PAPER,
    "18c": _IN_THE_PAPER,
    "18d": _IN_THE_PAPER,
    "19": "patient and public involvement is not recorded by the run",
    "20c": "predictor distributions of development and evaluation data are not compared",
    "27c": "next steps (external validation on another cohort) belong in the paper",
}

#: Items that do not arise for this kind of study, and why.
_NOT_APPLICABLE = {
    "8b": "each outcome is a threshold on a recorded value, computed by rule, not interpreted by an assessor",
    "12d": _ONE_SOURCE,
    "23b": _ONE_SOURCE,
    "12f": _NO_UPDATING,
    "24": _NO_UPDATING,
}

#: Items every run answers in part, the same way: what it says, and the files that show it (cited
#: when they exist).
_PARTIAL = {
    "2": (
        "no abstract: a run writes a report, not a paper; report/summary.md holds the verdict and "
        "Table 1 a TRIPOD+AI abstract would draw on",
        ("report/summary.md",),
    ),
    "11": (
        "a patient without a label is left out of that endpoint only; the regression imputes missing "
        "predictors inside its pipeline; each feature's allowed missing fraction is validated",
        ("validation/validation.html", "study.yaml"),
    ),
    "12b": (
        "regression: scaling, one-hot encoding and imputation in one scikit-learn pipeline, linear terms; "
        "LLMs: the predictors written as text",
        ("study.yaml",),
    ),
    "18f": (
        "the analysis is the cohortlm pipeline; each bundle records its library versions",
        ("study.yaml",),
    ),
    "20b": (
        "sample size and outcome events per split are reported; a table of baseline characteristics "
        "and missing data is not",
        ("outcome.json", "validation/validation.html"),
    ),
    "27b": (
        "a clinical service calls the model over HTTP and receives probabilities and decisions; the "
        "expertise users need is not stated",
        (),
    ),
}

#: Items every run answers the same way, and the files that show it (``partial`` without them).
_ANSWERED = {
    "12g": (
        "each model's bundle predicts a probability per endpoint; the scores per patient are in scores/",
        ("scores/",),
    ),
    "16": (
        "development and evaluation data are random parts of one cohort: same setting, eligibility, "
        "outcome and predictors",
        ("study.yaml",),
    ),
    "27a": (
        "the server refuses a request breaking the spec's types and ranges (400 naming the field and "
        "rule) and fills a patient from the feature store",
        ("study.yaml",),
    ),
}


def _fixed(status: str, detail: str, files: tuple[str, ...] = ()) -> Callable[[RunEvidence], _Answer]:
    """The rule of an item every run answers the same way, but for which of ``files`` exist."""
    if status == "answered":
        return lambda ev: _answered(ev, detail, *files)
    return lambda ev: (status, detail, ev.cite(*files))


_RULES.update({item: _fixed("not answered", detail) for item, detail in _NOT_ANSWERED.items()})
_RULES.update({item: _fixed("not applicable", detail) for item, detail in _NOT_APPLICABLE.items()})
_RULES.update({item: _fixed("partial", *answer) for item, answer in _PARTIAL.items()})
_RULES.update({item: _fixed("answered", *answer) for item, answer in _ANSWERED.items()})


def _if_subgroups(detail: str, paths: tuple[str, ...], otherwise: str) -> Callable[[RunEvidence], _Answer]:
    """The rule of an item the run answers in part when it reports subgroups, and not otherwise."""

    def answer(ev: RunEvidence) -> _Answer:
        if ev.has("report/subgroups.csv"):
            return "partial", detail, ev.cite(*paths)
        return "not answered", otherwise, ()

    return answer


_RULES["3c"] = _if_subgroups(
    "performance per declared subgroup level is reported; known inequalities are not stated by the run",
    ("report/subgroups.csv",),
    "no subgroups declared or reported; state known inequalities in the paper",
)
_RULES["14"] = _if_subgroups(
    "performance per declared subgroup level, and the gate refuses a candidate shown worse in one",
    ("report/subgroups.csv", "decision.json"),
    "no fairness approach: no subgroups declared",
)


def tripod_checklist(evidence: RunEvidence) -> list[ChecklistEntry]:
    """Every TRIPOD+AI item with this run's answer, in the statement's order.

    Raises:
        KeyError: an item of the checklist has no rule here (a test keeps the two in step).
    """
    entries = []
    for item in checklist_items():
        status, detail, where = _RULES[item.id](evidence)
        entries.append(ChecklistEntry(item=item, status=status, detail=detail, where=tuple(where)))
    return entries


# ----------------------------------------------------------------------------- rendering


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def tripod_markdown(entries: Sequence[ChecklistEntry], *, study: str | None = None) -> str:
    """``report/tripod_ai.md``: a table of every item, its status, where it is answered and how."""
    counts = {s: sum(1 for e in entries if e.status == s) for s in STATUSES}
    lines = [
        f"# TRIPOD+AI checklist{f': {study}' if study else ''}",
        "",
        "Collins GS et al. TRIPOD+AI statement. BMJ 2024;385:e078378. Each item says where this run's "
        "report answers it (paths relative to the run folder) or why it does not.",
        "",
        ", ".join(f"{counts[s]} {s}" for s in STATUSES) + f" (of {len(entries)} items).",
        "",
        "| item | section | topic | status | where | this run |",
        "|---|---|---|---|---|---|",
    ]
    for e in entries:
        where = ", ".join(f"`{w}`" for w in e.where) or "-"
        cells = [e.item.id, e.item.section, _md(e.item.topic), e.status, where, _md(e.detail)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def tripod_html(entries: Sequence[ChecklistEntry]) -> str:
    """The checklist as a page section (``<section id='tripod'>``).

    The page stays self-contained: files are named (run-folder paths), not linked; a section
    of the page itself (``report/index.html#gate``) is an in-page link.
    """

    def cite(path: str) -> str:
        page, _, anchor = path.partition("#")
        if page == "report/index.html" and anchor:
            return f"<a href='#{html.escape(anchor, quote=True)}'>{html.escape(path)}</a>"
        return f"<code>{html.escape(path)}</code>"

    wrap = " style='white-space:normal'"
    rows = []
    for e in entries:
        where = ", ".join(cite(w) for w in e.where) or "-"
        rows.append(
            f"<tr><td class=l>{html.escape(e.item.id)}</td><td class=l>{html.escape(e.item.topic)}</td>"
            f"<td class=l>{html.escape(e.status)}</td><td class=l{wrap}>{where}</td>"
            f"<td class=l{wrap}>{html.escape(e.detail)}</td></tr>"
        )
    counts = ", ".join(f"{sum(1 for e in entries if e.status == s)} {s}" for s in STATUSES)
    return (
        "<section id='tripod'><h2>TRIPOD+AI checklist</h2>"
        f"<p>Every item of TRIPOD+AI (BMJ 2024;385:e078378): {html.escape(counts)}. Paths are "
        f"relative to the run folder; the same list is in <code>report/{TRIPOD_FILE}</code>.</p>"
        "<table><thead><tr><th class=l>Item</th><th class=l>Topic</th><th class=l>Status</th>"
        "<th class=l>Where</th><th class=l>This run</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def report_evidence(
    report: Any,
    run_dir: str | Path,
    *,
    validation: Mapping[str, Any] | None = None,
    metrics_keys: Iterable[str] | Mapping[str, Any] = (),
    written: Iterable[str] = (),
    small_sample: Iterable[str] = (),
) -> RunEvidence:
    """The evidence of a report about to be finished in ``run_dir/report``.

    Args:
        report: What :func:`cohortlm.evaluation.report.compute_report` computed (a ``ReportData``;
            not imported here, the report module imports this one).
        run_dir: The run folder (the report folder's parent).
        validation: The validation step's report, if any.
        metrics_keys: The top-level keys of the report's ``metrics.json``, or the metrics
            themselves (then only the keys holding something count).
        written: Run-folder paths about to be written that do not exist yet (``report/index.html``).
        small_sample: Endpoints with too few cases or controls to judge.
    """
    ev = report.evaluation
    decision = report.decision.to_dict() if report.decision is not None else None
    return RunEvidence(
        endpoints=list(report.endpoints),
        models=list(report.models),
        # The validate step's report travels as its own artifact; the run folder holds it as
        # validation/ (README, the run folder), so given one, the checklist may cite it.
        files=run_folder_files(
            run_dir,
            extra=[
                *written,
                *(("validation/validation.html", "validation/validation.json") if validation else ()),
            ],
        ),
        study=report.study,
        cohort=report.cohort,
        decision=decision,
        validation=validation,
        eval_split=ev.eval_split or "test",
        threshold_split=ev.threshold_split,
        threshold_method=str(ev.threshold_method),
        conf_level=float(ev.conf_level),
        profile=report.profile,
        metrics_keys=frozenset(
            (k for k, v in metrics_keys.items() if v not in (None, [], {}))
            if isinstance(metrics_keys, Mapping)
            else metrics_keys
        ),
        small_sample=tuple(small_sample),
    )
