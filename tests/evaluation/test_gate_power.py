"""`cohortlm gate-power`: a policy's operating characteristics at a split size, and its warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cohortlm.cli import main
from cohortlm.evaluation.gate import GatePolicy
from cohortlm.evaluation.gate_power import design_table, markdown_table, standard_cells, subgroup_cells
from cohortlm.evaluation.stats.simulate import RA_PREVALENCES


def test_standard_cells_cover_the_targets() -> None:
    cells = standard_cells(n=2263, extra_n=(400,))
    kinds = {c.kind for c in cells}
    assert kinds == {"h0", "power", "worse", "miscalibrated", "looks"}
    assert {c.key for c in cells} >= {
        "h0",
        "h0_rho05",
        "h0_rho09",
        "h0_n400",
        "all_0.05",
        "first3_0.05",
        "looks20",
    }
    looks = next(c for c in cells if c.key == "looks20")
    assert looks.scenario.n_candidates == 20 and looks.bound == "max" and looks.target == 0.05


def test_design_table_warns_where_the_policy_asks_the_impossible() -> None:
    rows, warnings = design_table(GatePolicy(), n=400, reps=40)
    assert len(rows) == 8 and rows[6]["insufficient"]  # 3.4 % of 400: ~14 cases
    assert any("insufficient evidence" in w for w in warnings)
    strict = GatePolicy(margin=0.01, margin_rule="absolute")
    _, warn2 = design_table(strict, n=2263, reps=40)
    assert any("passes non-inferiority" in w for w in warn2)
    assert any("+0.05 AUC cannot be shown" in w for w in warn2)


def test_gate_power_cli_prints_the_table(tmp_path: Path, capsys) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("min_superior: 1\n")
    code = main(["gate-power", "--policy", str(policy), "--n", "600", "--reps", "8", "--processes", "1"])
    out = capsys.readouterr()
    assert code == 0
    assert "| truth | n | ρ | target | policy | met |" in out.out
    assert "20 equal candidates" in out.out and "P(equal passes NI)" in out.out
    assert "warning:" in out.err  # 600 patients cannot show +0.05 on the rare endpoints
    assert main(["gate-power", "--n", "600", "--reps", "4", "--processes", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n"] == 600 and len(data["cells"]) >= 15
    assert main(["gate-power", "--n", "5"]) == 2


def test_markdown_table_marks_missed_targets() -> None:
    row = {
        "description": "x",
        "n": 10,
        "rho": 0.7,
        "target": 0.05,
        "bound": "max",
        "rates": {"p": {"promoted": 0.2, "reps": 10}},
    }
    assert "**no**" in markdown_table([row], ["p"])


def test_subgroup_cells_harm_men_on_the_three_most_common_endpoints_and_gain_overall() -> None:
    cells = {c.key: c for c in subgroup_cells()}
    assert cells["sub_h0"].measure == "subgroup_blocked" and cells["sub_h0"].bound == "max"
    assert cells["sub_men"].measure == "subgroup_blocked" and cells["sub_men"].target == 0.8
    sc = cells["sub_men"].scenario
    g, lv, men = sc.level_delta
    share = sc.subgroup_shares[g][lv]
    assert share == 0.15
    common3 = sorted(range(8), key=lambda i: RA_PREVALENCES[i])[-3:]
    for e in range(8):
        overall = (1 - share) * sc.delta[e] + share * men[e]
        assert overall == pytest.approx(0.02)
        assert men[e] == (-0.10 if e in common3 else 0.02)
