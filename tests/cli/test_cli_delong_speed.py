"""`cohortlm delong` starts light: no pandas, scipy, sklearn or torch, and the same answer.

The whole-process benchmark against R's pROC is benchmarks/bench_delong.py; these
tests hold the properties it depends on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HEAVY = ("pandas", "scipy", "sklearn", "torch", "transformers", "kfp", "great_expectations")


@pytest.fixture
def scores_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(11)
    n = 5000
    y = (rng.random(n) < 0.3).astype(int)
    a = np.round(rng.normal(size=n) + y, 3)
    b = np.round(rng.normal(size=n) + 0.7 * y, 3)
    lines = [f"{i},{t},{x},{z}" for i, (t, x, z) in enumerate(zip(y, a, b, strict=True))]
    lines[5] = "5,,0.1,0.2"  # an empty label
    lines[9] = "9,1,,0.2"  # an empty score
    path = tmp_path / "scores.csv"
    path.write_text("id,y,a,b\n" + "\n".join(lines) + "\n")
    return path


def test_delong_imports_nothing_heavy(scores_csv):
    code = (
        "import sys, json\n"
        "from cohortlm.cli import main\n"
        f"rc = main(['delong', '--csv', {str(scores_csv)!r}, '--label', 'y', '--score-a', 'a', "
        "'--score-b', 'b', '--json'])\n"
        f"print(json.dumps({{'rc': rc, 'loaded': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last == {"rc": 0, "loaded": []}


def test_delong_reads_the_csv_as_pandas_would(scores_csv, capsys):
    import pandas as pd

    from cohortlm.cli import main
    from cohortlm.evaluation.stats import delong_test

    args = ["delong", "--csv", str(scores_csv), "--label", "y", "--score-a", "a", "--score-b", "b", "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    frame = pd.read_csv(scores_csv).dropna()
    ref = delong_test(frame["y"], frame["a"], frame["b"])
    assert out["n_cases"] + out["n_controls"] == len(frame) == 4998
    assert out["z"] == pytest.approx(ref.z, rel=1e-12) and out["auc_a"] == pytest.approx(ref.auc_a, rel=1e-12)
    assert "2 row(s)" in captured.err


def test_standard_normal_matches_scipy():
    from scipy.stats import norm as scipy_norm

    from cohortlm.evaluation.stats.delong import norm

    for z in (-40.0, -8.5, -3.0, -1.0, 0.0, 0.3, 1.96, 5.0, 9.0, 30.0):
        assert norm.sf(z) == pytest.approx(scipy_norm.sf(z), rel=1e-12, abs=1e-300)
        assert norm.cdf(z) == pytest.approx(scipy_norm.cdf(z), rel=1e-12, abs=1e-300)
    for q in (1e-10, 0.001, 0.025, 0.5, 0.95, 0.975, 0.999999):
        assert norm.ppf(q) == pytest.approx(scipy_norm.ppf(q), rel=1e-12)
