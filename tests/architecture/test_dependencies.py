"""Each environment installs what its code imports: the base dependencies carry the core, each
image's extras carry the packages that image ships.

For every environment the import set is read from the source (every ``import`` in
the packages it ships, inside functions too), each top-level name is mapped to the
distributions that provide it (``importlib.metadata.packages_distributions``), and
the test fails unless one of them is installed by the environment: pyproject.toml's
base dependencies plus the extras the environment installs, followed transitively
through the installed distributions' metadata. An import inside ``try: ... except
ImportError`` (or ``except Exception``) is optional by construction (bitsandbytes: 4-bit loading on a GPU
node only) and is not counted. The images' extras are read from their Dockerfiles,
so a component that imports a package the pipeline image lacks fails here.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
FIRST_PARTY = {"cohortlm", "components", "pipelines", "serving", "featurestore", "feature_repo"}
#: imports an environment ships but never runs, each with the reason
NOT_RUN_THERE: dict[tuple[str, str], str] = {}


def _dockerfile_extras(name: str) -> list[str]:
    """The extras of the Dockerfile's project install (``pip install ... '.[a,b]'``)."""
    text = re.sub(r"\\\n\s*", " ", (REPO / "docker" / name).read_text())
    found = re.findall(r"pip install -c constraints\.txt '?\.(?:\[([a-z,]+)\])?'?", text)
    assert len(found) == 1, f"{name}: expected one project install, found {found}"
    return [e for e in found[0].split(",") if e]


def _copied_packages(name: str) -> list[str]:
    text = (REPO / "docker" / name).read_text()
    return [p for p in re.findall(r"^COPY (\w+) \./\w+$", text, re.M) if p in FIRST_PARTY]


#: environment -> (the first-party packages it ships, the extras it installs)
ENVIRONMENTS = {
    "base": (["cohortlm"], []),
    "Dockerfile.serving": (_copied_packages("Dockerfile.serving"), _dockerfile_extras("Dockerfile.serving")),
    "Dockerfile.pipeline": (
        _copied_packages("Dockerfile.pipeline"),
        _dockerfile_extras("Dockerfile.pipeline"),
    ),
}


def _optional(tree: ast.AST) -> set[int]:
    """ids of the nodes inside a ``try`` whose handler catches ImportError (or a base of it)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = {
            n.id
            for h in node.handlers
            if h.type is not None
            for n in ast.walk(h.type)
            if isinstance(n, ast.Name)
        }
        if caught & {"ImportError", "ModuleNotFoundError", "Exception"}:
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def import_set(packages: list[str]) -> dict[str, str]:
    """Third-party top-level module -> one ``file:line`` that imports it (optional imports left out)."""
    found: dict[str, str] = {}
    for package in packages:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            optional = _optional(tree)
            for node in ast.walk(tree):
                if id(node) in optional:
                    continue
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY | {"__future__"}:
                        found.setdefault(top, f"{path.relative_to(REPO)}:{node.lineno}")
    return found


@cache
def _requires(dist: str) -> tuple[str, ...]:
    try:
        return tuple(metadata.requires(dist) or ())
    except metadata.PackageNotFoundError:
        return ()


def installed_by(requirements: list[str]) -> set[str]:
    """The distributions the requirements install, followed through installed metadata (extras too)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    names: set[str] = set()
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(key[0])
        for line in _requires(req.name):
            sub = Requirement(line)
            envs = [{"extra": e} for e in req.extras] or [{"extra": ""}]
            if sub.marker is None or any(sub.marker.evaluate(env) for env in envs):
                todo.append(sub)
    return names


def missing(packages: list[str], extras: list[str], environment: str) -> list[str]:
    wanted = list(PYPROJECT["dependencies"])
    for extra in extras:
        wanted += PYPROJECT["optional-dependencies"][extra]
    have = installed_by(wanted)
    provides = metadata.packages_distributions()
    out = []
    for top, where in sorted(import_set(packages).items()):
        if (environment, top) in NOT_RUN_THERE:
            continue
        dists = {canonicalize_name(d) for d in provides.get(top, [])}
        if not dists & have:
            out.append(f"{where} imports {top} ({', '.join(sorted(dists)) or 'not installed here'})")
    return out


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_every_import_is_installed_by_the_environment(environment):
    packages, extras = ENVIRONMENTS[environment]
    assert missing(packages, extras, environment) == [], (
        f"{environment} (base + {extras or 'no extra'}) lacks a package its code imports: "
        "add it to the extra in pyproject.toml (and constraints.txt)"
    )


def test_the_images_ship_what_runs_in_them():
    assert "components" in ENVIRONMENTS["Dockerfile.pipeline"][0]
    assert "pipeline" in ENVIRONMENTS["Dockerfile.pipeline"][1]
    assert "serving" in ENVIRONMENTS["Dockerfile.serving"][1]


def test_the_base_installs_nothing_only_an_image_imports():
    base = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    assert not base & {"kserve", "feast", "kfp", "kubeflow", "sqlalchemy", "psycopg"}


def test_the_check_sees_a_missing_package(tmp_path, monkeypatch):
    pkg = tmp_path / "components"
    pkg.mkdir()
    (pkg / "step.py").write_text(
        "def run():\n    import kfp\n"
        "    try:\n        import bitsandbytes\n    except ImportError:\n        pass\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert missing(["components"], [], "a test") == [
        "components/step.py:2 imports kfp (kfp, kfp-kubernetes, kfp-pipeline-spec)"
    ]
    assert missing(["components"], ["pipeline"], "a test") == []
