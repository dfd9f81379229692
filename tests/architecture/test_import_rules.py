"""The core's dependency rules, checked on every import in the source (function-level too).

* ``cohortlm/`` never imports kfp, kserve or feast, nor the packages built on them
  (``pipelines``, ``serving``, ``components``, ``featurestore``): their CLI commands
  register from those packages through the ``cohortlm.commands`` entry points.
* No import cycle, between modules or between the core's layers; the layers go
  one way: foundation -> cohort -> models -> store, evaluation -> run -> cli.
* The same across all first-party packages (``cohortlm``, ``featurestore``,
  ``serving``, ``components``, ``pipelines``), counting imports inside functions
  and under ``TYPE_CHECKING`` (mypy follows those, and a cycle there is a cycle a
  reader has to untangle): 0 cycles. ``pipelines`` imports ``components``, never
  the other way (the Kubeflow Trainer hand-off both use is
  :mod:`components.trainer`); ``featurestore`` imports only the core.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from import_graph import cycles, graph, graph_of, imports_of, package_imports

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "cohortlm"
FIRST_PARTY = ["cohortlm", "featurestore", "serving", "components", "pipelines"]
#: package -> the first-party packages it must not import (anywhere, functions included)
NOT_IMPORTED = {
    "components": {"pipelines"},
    "featurestore": {"serving", "components", "pipelines"},
}
FORBIDDEN = {
    "kfp": "the KFP SDK",
    "kserve": "KServe",
    "feast": "Feast",
    "pipelines": "the KFP pipelines (import kfp)",
    "components": "the KFP components (import kfp)",
    "serving": "the model server (imports kserve)",
    "featurestore": "the Feast integration (imports feast)",
    "feature_repo": "the Feast repository",
}
#: each layer may import only the layers before it (and itself)
LAYERS = [
    {"cohortlm", "cohortlm.errors", "cohortlm.checksums", "cohortlm.yamlsafe", "cohortlm.contracts"},
    {"cohortlm.cohort"},
    {"cohortlm.models"},
    {"cohortlm.store", "cohortlm.evaluation"},
    {"cohortlm.monitoring"},
    {"cohortlm.run"},
    {"cohortlm.cli"},
]


def forbidden_imports(root: Path) -> list[str]:
    return [
        f"{i.module}:{i.line} imports {i.target} ({FORBIDDEN[i.target.split('.')[0]]})"
        for i in package_imports(root)
        if i.target.split(".")[0] in FORBIDDEN
    ]


def _layer(module: str) -> int:
    top = ".".join(module.split(".")[:2])
    for n, layer in enumerate(LAYERS):
        if top in layer:
            return n
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def test_the_core_imports_no_kfp_kserve_or_feast_anywhere():
    assert forbidden_imports(CORE) == []


def test_the_rule_sees_an_import_inside_a_function(tmp_path):
    pkg = tmp_path / "cohortlm"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("")
    (pkg / "cli" / "compile.py").write_text(
        "def compile_cmd():\n"
        "    from kfp import compiler\n"
        "    import importlib\n"
        "    importlib.import_module('serving.server')\n"
        "    return compiler\n"
    )
    assert forbidden_imports(pkg) == [
        "cohortlm.cli.compile:2 imports kfp.compiler (the KFP SDK)",
        "cohortlm.cli.compile:4 imports serving.server (the model server (imports kserve))",
    ]


def test_no_import_cycle_between_modules():
    assert cycles(graph(CORE)) == []


def _all_edges(*, runtime_only: bool) -> dict[str, set[str]]:
    return graph_of([REPO / p for p in FIRST_PARTY], runtime_only=runtime_only)


def test_no_import_cycle_anywhere_counting_function_level_and_type_checking_imports():
    found = cycles(_all_edges(runtime_only=False))
    assert len(found) == 0, f"{len(found)} import cycle(s): {found}"


@pytest.mark.parametrize("package", sorted(NOT_IMPORTED))
def test_a_package_imports_only_the_packages_below_it(package):
    wrong = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in package_imports(REPO / package)
        if i.target.split(".")[0] in NOT_IMPORTED[package]
    ]
    assert wrong == []


def test_the_cycle_check_sees_one(tmp_path):
    pkg = tmp_path / "cohortlm"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cohortlm.b import x\n")
    (pkg / "b.py").write_text("def x():\n    from cohortlm import a\n    return a\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cohortlm import a\n"
    )
    assert cycles(graph(pkg)) == [["cohortlm.a", "cohortlm.b"]]
    assert [i.type_only for i in imports_of(pkg, pkg / "c.py") if i.target.startswith("cohortlm")] == [True]
    # a's type-only import of c closes a cycle only when type-only imports count
    (pkg / "a.py").write_text(
        "from cohortlm.b import x\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import cohortlm.c\n"
    )
    assert cycles(graph(pkg)) == [["cohortlm.a", "cohortlm.b"]]
    assert cycles(graph(pkg, runtime_only=False)) == [["cohortlm.a", "cohortlm.b", "cohortlm.c"]]


def test_the_layers_go_one_way():
    wrong = [
        f"{module} ({_layer(module)}) imports {target} ({_layer(target)})"
        for module, targets in graph(CORE).items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert wrong == []


def test_every_command_plugin_is_declared_installed_and_outside_the_core():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"][
        "cohortlm.commands"
    ]
    installed = {ep.name: ep.value for ep in entry_points(group="cohortlm.commands")}
    assert installed == declared, "reinstall the project (make venv) after changing its entry points"
    assert all(v.split(".")[0] in {"pipelines", "serving", "featurestore"} for v in declared.values())


@pytest.mark.parametrize(
    ("command", "plugin"),
    [
        ("run", "pipelines.cli"),
        ("schedule", "pipelines.schedule"),
        ("serve", "serving.cli"),
        ("features", "featurestore.cli"),
    ],
)
def test_a_plugin_command_is_on_the_app(command, plugin):
    from cohortlm.cli import PLUGINS, app

    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    names |= {g.name for g in app.registered_groups}
    assert plugin in PLUGINS and command in names
