"""No module of the first-party packages grows past 800 lines.

Length is the symptom, not the rule: a module that long has always held more
than one concern here (the gate's policy, rule, record and prose; a fine-tune's
recipe, checkpoints and loop). Split it along the concern, not at line 800.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["cohortlm", "featurestore", "serving", "components", "pipelines"]
MAX_LINES = 800


def long_modules(root: Path, limit: int = MAX_LINES) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        n = len(path.read_text().splitlines())
        if n > limit:
            found.append(f"{path.relative_to(root.parent)}: {n} lines")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_800_lines(package):
    assert long_modules(REPO / package) == []


def test_the_check_sees_a_long_module(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "big.py").write_text("x = 1\n" * 801)
    (tmp_path / "pkg" / "fine.py").write_text("x = 1\n" * 800)
    assert long_modules(tmp_path / "pkg") == ["pkg/big.py: 801 lines"]
