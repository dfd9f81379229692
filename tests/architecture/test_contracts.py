"""The files one step writes and another reads are named once, in :mod:`cohortlm.contracts`.

A literal ``"thresholds.json"`` in the step that writes it and another in the
server that reads it agree only until one of them changes. This test reads
every first-party module and fails on a contract file name spelled as a literal
where a path is built (``folder / "x.json"``, ``Path("x.json")``, a glob or an
f-string path); messages and docstrings that mention a file are prose and may.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from cohortlm import contracts

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["cohortlm", "components", "pipelines", "serving", "featurestore"]
DEFINED_IN = REPO / "cohortlm" / "contracts.py"
PATH_CALLS = {"Path", "PurePath", "open", "glob", "rglob", "joinpath", "with_name"}
#: every file or folder name the module defines (its string constants, images aside)
NAMES = {
    value
    for key, value in vars(contracts).items()
    if key.isupper() and isinstance(value, str) and not key.startswith("IMAGE") and not key.endswith("IMAGE")
}


def _names_a_contract(text: str) -> str | None:
    for name in NAMES:
        if text == name or text.endswith(f"/{name}") or text.startswith(f"{name}/"):
            return name
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def spelled_paths(path: Path, root: Path) -> list[str]:
    """``file:line name`` for each contract file name written as a literal in a path expression."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = _docstrings(tree)
    in_path: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            in_path += [node.left, node.right]
        elif isinstance(node, ast.JoinedStr):
            in_path += node.values
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in PATH_CALLS:
                in_path += node.args
    found = []
    for node in in_path:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            name = _names_a_contract(node.value)
            if name is not None:
                found.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    return found


def test_the_contract_names_are_file_names():
    assert {"thresholds.json", "decision.json", "outcome.json", "bundle.json", "MANIFEST.json"} <= NAMES


def test_every_contract_file_is_named_through_cohortlm_contracts():
    found = [
        hit
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        if path != DEFINED_IN
        for hit in spelled_paths(path, REPO)
    ]
    assert found == [], "import the name from cohortlm.contracts instead of spelling the file"


@pytest.mark.parametrize(
    "source",
    [
        'p = folder / "thresholds.json"\n',
        'p = Path("outcome.json")\n',
        'm = store.glob(f"*/versions/{v}/MANIFEST.json")\n',
        'p = out / "scores" / name\n',
    ],
)
def test_the_check_sees_a_spelled_file(tmp_path, source):
    (tmp_path / "m.py").write_text(source)
    assert len(spelled_paths(tmp_path / "m.py", tmp_path)) == 1


def test_a_message_that_mentions_a_file_is_prose(tmp_path):
    (tmp_path / "m.py").write_text('raise ValueError(f"{folder} has no decision.json")\n')
    assert spelled_paths(tmp_path / "m.py", tmp_path) == []


def test_the_step_and_the_server_read_the_same_names():
    from cohortlm.models import bundle, model_card
    from cohortlm.run import outcome
    from cohortlm.store import registry
    from components._image import PIPELINE_IMAGE
    from serving import isvc, model

    assert model.THRESHOLDS_FILE is contracts.THRESHOLDS_FILE
    assert registry.MANIFEST_FILE is contracts.MANIFEST_FILE
    assert registry.SIGNATURE_FILE is bundle.SIGNATURE_FILE is contracts.SIGNATURE_FILE
    assert outcome.OUTCOME_FILE is contracts.OUTCOME_FILE
    assert model_card.MODEL_CARD_JSON is contracts.MODEL_CARD_JSON
    assert PIPELINE_IMAGE == "ghcr.io/cohortlm/cohortlm-pipeline:0.1.0"
    assert isvc.DEFAULT_IMAGE == "ghcr.io/cohortlm/cohortlm-serving:0.1.0"


def test_the_manifests_and_dockerfiles_name_the_images_the_code_deploys():
    """kustomize and the Dockerfiles' build lines cannot import a name: they must spell the same one."""
    images = {contracts.PIPELINE_IMAGE, contracts.SERVING_IMAGE}
    pattern = re.compile(rf"{re.escape(contracts.IMAGE_REGISTRY)}/[a-z-]+(?::[A-Za-z0-9._-]+)?")
    files = [
        path
        for folder in ("manifests", "docker", "docs")
        for path in sorted((REPO / folder).rglob("*"))
        if path.is_file() and (path.suffix in (".yaml", ".md") or path.name.startswith("Dockerfile"))
    ]
    spelled = {
        (str(path.relative_to(REPO)), ref.removesuffix("-cuda"))
        for path in files
        for ref in pattern.findall(path.read_text(encoding="utf-8", errors="replace"))
    }
    assert len(spelled) >= 4, "the images are no longer named in manifests/, docker/ and docs/"
    assert [s for s in spelled if s[1] not in images] == []
