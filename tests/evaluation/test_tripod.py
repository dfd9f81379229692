"""The TRIPOD+AI checklist: every item present, every answer pointing at a file the run folder holds."""

from __future__ import annotations

import re
from pathlib import Path

from cohortlm.cohort.study import load_study
from cohortlm.evaluation.cohort_counts import CohortSummary
from cohortlm.evaluation.render import write_report
from cohortlm.evaluation.tripod import (
    STATUSES,
    TRIPOD_FILE,
    RunEvidence,
    checklist_items,
    tripod_checklist,
    tripod_markdown,
)

# TRIPOD+AI (BMJ 2024;385:e078378), Box/Table 1: the 27 items and their sub-items.
EXPECTED_IDS = [
    "1", "2", "3a", "3b", "3c", "4", "5a", "5b", "6a", "6b", "6c", "7", "8a", "8b", "8c",
    "9a", "9b", "9c", "10", "11", "12a", "12b", "12c", "12d", "12e", "12f", "12g", "13", "14",
    "15", "16", "17", "18a", "18b", "18c", "18d", "18e", "18f", "19", "20a", "20b", "20c", "21",
    "22", "23a", "23b", "24", "25", "26", "27a", "27b", "27c",
]  # fmt: skip
SECTIONS = {
    "Title",
    "Abstract",
    "Introduction",
    "Methods",
    "Open science",
    "Patient and public involvement",
    "Results",
    "Discussion",
}


def test_the_checklist_holds_every_tripod_ai_item_in_order():
    items = checklist_items()
    assert [i.id for i in items] == EXPECTED_IDS
    assert {int(re.match(r"\d+", i.id).group()) for i in items} == set(range(1, 28))
    assert {i.section for i in items} == SECTIONS
    assert all(i.text and i.topic for i in items)


def test_every_item_gets_an_answer_even_with_no_evidence():
    entries = tripod_checklist(RunEvidence(endpoints=["e"], models=["baseline"], files=frozenset()))
    assert [e.item.id for e in entries] == EXPECTED_IDS
    assert {e.status for e in entries} <= set(STATUSES)
    # Nothing exists, so nothing may claim to be answered by a file.
    assert all(not e.where for e in entries)
    assert all(e.status != "answered" for e in entries)
    assert all(e.detail for e in entries)


def _table_rows(markdown: str) -> list[list[str]]:
    rows = [line for line in markdown.splitlines() if re.match(r"\| \d+[a-g]? \|", line)]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows]


def test_a_report_writes_the_checklist_and_every_citation_exists(run_dir):
    paths = write_report(run_dir)
    text = (run_dir / "report" / TRIPOD_FILE).read_text()
    rows = _table_rows(text)
    assert [r[0] for r in rows] == EXPECTED_IDS
    answered = 0
    for item, _section, _topic, status, where, detail in rows:
        assert status in STATUSES, item
        assert detail, item
        cited = re.findall(r"`([^`]+)`", where)
        if status == "answered":
            answered += 1
            assert cited, f"item {item} is answered but cites nothing"
        for path in cited:
            target = run_dir / path.split("#", 1)[0]
            assert target.exists(), f"item {item} cites {path}, which the run folder lacks"
    assert answered >= 10
    page = paths.index_html.read_text()
    assert "<section id='tripod'>" in page and "TRIPOD+AI checklist" in page
    # The page names the same files (it links only to its own sections: it stays self-contained).
    section = re.findall(r"<section id='tripod'>.*?</section>", page, re.S)[0]
    for path in re.findall(r"<code>([^<]+)</code>", section):
        assert (run_dir / path).exists(), path
    for anchor in re.findall(r"href='([^']*)'", section):
        assert anchor.startswith("#") and f"id='{anchor[1:]}'" in page, anchor


def test_the_checklist_states_this_runs_values():
    spec = load_study("ra_iorra")
    cohort = CohortSummary(
        n={"train": 9500, "validation": 102, "test": 2263},
        cases={"train": {"jhaq_high": 320}, "validation": {"jhaq_high": 3}, "test": {"jhaq_high": 77}},
        labelled={
            "train": {"jhaq_high": 9500},
            "validation": {"jhaq_high": 102},
            "test": {"jhaq_high": 2263},
        },
        period=(2001, 2012),
        synthetic=True,
    )
    decision = {"promote": False, "candidate": "m+qlora", "champion": "baseline"}
    files = frozenset({"study.yaml", "outcome.json", "decision.json", "report/index.html"})
    ev = RunEvidence(
        endpoints=spec.endpoint_names,
        models=["baseline", "m", "m+qlora"],
        files=files,
        study=spec,
        cohort=cohort,
        decision=decision,
    )
    by_id = {e.item.id: e for e in tripod_checklist(ev)}
    assert "train n = 9,500, validation n = 102, test n = 2,263" in by_id["12a"].detail
    assert "jhaq_high 77" in by_id["21"].detail and by_id["21"].status == "answered"
    assert "2001 to 2012" in by_id["5b"].detail
    assert "keep the champion" in by_id["4"].detail
    assert "das28_esr_2y > 5.1" in by_id["8a"].detail
    assert by_id["17"].status == "not applicable"  # a synthetic cohort has no participants
    assert by_id["10"].status == "not applicable" and "no sample size calculation" in by_id["10"].detail
    markdown = tripod_markdown(list(by_id.values()), study="ra_iorra")
    assert markdown.startswith("# TRIPOD+AI checklist: ra_iorra")


def test_a_rerendered_report_reads_the_split_sizes_from_outcome_json(run_dir: Path):
    import json

    cohort = CohortSummary(n={"train": 300, "validation": 200, "test": 1000}, cases={}, labelled={})
    (run_dir / "outcome.json").write_text(json.dumps({"cohort": cohort.to_dict()}))
    write_report(run_dir)
    text = (run_dir / "report" / TRIPOD_FILE).read_text()
    assert "train n = 300, validation n = 200, test n = 1,000" in text
