"""Every YAML the project parses goes through :mod:`cohortlm.yamlsafe`.

``yaml.safe_load`` builds an alias bomb in full and keeps the last of two equal
keys; the project's loader refuses both. A direct call anywhere else would be a
way around it, so this test reads every module and fails on one.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["cohortlm", "components", "pipelines", "serving", "featurestore", "feature_repo", "scripts"]
ALLOWED = {REPO / "cohortlm" / "yamlsafe.py"}
LOADERS = {"load", "safe_load", "load_all", "safe_load_all", "full_load", "full_load_all", "unsafe_load"}


def direct_yaml_loads(path: Path, root: Path) -> list[str]:
    """``file:line`` of each call of a PyYAML loader in one file (``import yaml as y`` included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    aliases = {"yaml"}
    found: list[str] = []
    where = path.relative_to(root)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "yaml"}
        elif isinstance(node, ast.ImportFrom) and node.module == "yaml":
            found += [f"{where}:{node.lineno} imports yaml.{a.name}" for a in node.names if a.name in LOADERS]
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in LOADERS
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            found.append(f"{where}:{node.lineno} calls {node.value.id}.{node.attr}")
    return found


def test_no_module_parses_yaml_around_the_safe_loader():
    found = [
        hit
        for package in PACKAGES
        if (REPO / package).is_dir()
        for path in sorted((REPO / package).rglob("*.py"))
        if path not in ALLOWED
        for hit in direct_yaml_loads(path, REPO)
    ]
    assert found == [], (
        "parse YAML with cohortlm.yamlsafe.load_yaml_text / load_yaml_file / load_yaml_documents"
    )


def test_the_check_sees_a_direct_call(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "import yaml as y\nfrom yaml import safe_load\n\ndef f(t):\n    return y.safe_load_all(t)\n"
    )
    assert direct_yaml_loads(src, tmp_path) == [
        "m.py:2 imports yaml.safe_load",
        "m.py:5 calls y.safe_load_all",
    ]
