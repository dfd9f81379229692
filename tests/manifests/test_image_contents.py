"""The images contain what runs in them.

Fast: every first-party module a component, the pipeline or the server imports
(followed through cohortlm, serving and featurestore, imports inside functions
included) belongs to a folder the Dockerfile copies.

Slow (``image_env.py``, run by ``test_image_env_pipeline.py`` and
``test_image_env_serving.py``, one file per image so that the two builds can run in
two test processes): each image's Python environment built as its Dockerfile builds it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import manifest_checks as mc
import pytest
from image_env import FIRST_PARTY, IMAGES, copied


def _module_file(name: str) -> Path | None:
    base = mc.REPO.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def first_party_imports(entry: list[str]) -> set[str]:
    """Every first-party module reachable by imports from the entry files (any nesting)."""
    seen: set[str] = set()
    todo = [mc.REPO / e for e in entry]
    done: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in done:
            continue
        done.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.split(".")[0] not in FIRST_PARTY:
                    continue
                file = _module_file(name)
                if file is not None:
                    seen.add(name)
                    todo.append(file)
    return seen


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_every_imported_first_party_package_is_copied(dockerfile):
    have = {p.rstrip("/").split("/")[0] for p in copied(dockerfile)}
    needed = {m.split(".")[0] for m in first_party_imports(IMAGES[dockerfile])}
    missing = sorted(needed - have)
    assert not missing, (
        f"docker/{dockerfile} does not copy {missing}, which what runs in the image imports; "
        f"add `COPY {missing[0]} ./{missing[0]}` before `pip install -c constraints.txt .`"
    )
    assert {"pyproject.toml", "constraints.txt"} <= set(copied(dockerfile))
