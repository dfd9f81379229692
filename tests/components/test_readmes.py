"""Each component folder says what it takes, what it gives and what it calls (its README.md).

The README names every parameter of the folder's component functions (a new input
that the README does not mention fails here) and the test file that covers it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FOLDERS = sorted(p.parent for p in (REPO / "components").glob("*/component.py"))


def _parameters(component: Path) -> list[str]:
    tree = ast.parse(component.read_text(encoding="utf-8"))
    return [
        a.arg
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("component" in ast.unparse(d) for d in node.decorator_list)
        for a in node.args.args
    ]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_the_readme_names_every_input_and_output_and_its_tests(folder):
    readme = folder / "README.md"
    assert readme.is_file(), f"{folder.name}: add a README.md (inputs, outputs, what it calls)"
    text = readme.read_text(encoding="utf-8")
    missing = [p for p in _parameters(folder / "component.py") if f"`{p}`" not in text]
    assert missing == [], f"{folder.name}/README.md does not mention {missing}"
    tests = re.findall(r"`(tests/[\w/]+\.py)`", text)
    assert tests and all((REPO / t).is_file() for t in tests), f"{folder.name}/README.md: name its test file"
