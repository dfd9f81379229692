"""Pipeline steps import installed packages, never a file so named in the folder `cohortlm run` started in.

A user's ``h2.py`` in the working folder shadowed the ``h2`` package inside the
steps (kfp.local starts them with ``python3 -m``, which puts the working folder
first on ``sys.path``) and the training step failed. The test runs a one-step
kfp.local pipeline from a folder holding a planted ``yaml.py``, in a fresh
process started as ``cohortlm`` is (its own folder not on ``sys.path``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys
from kfp import dsl, local
from pipelines.local import clean_import_path

@dsl.component(base_image="python:3.11")
def which_yaml() -> str:
    import yaml
    return str(yaml.__file__)

local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[1])
if sys.argv[2] == "clean":
    with clean_import_path():
        print("YAML_FROM", which_yaml().output)
else:
    print("YAML_FROM", which_yaml().output)
"""


def _run(folder: Path, mode: str) -> subprocess.CompletedProcess[str]:
    # The packages as installed (editable): no PYTHONPATH, whose repository root holds a docker/ folder.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSAFEPATH", "PYTHONPATH")}
    script = folder.parent / "probe_pipeline.py"  # kfp reads the component's source from a file
    script.write_text(SCRIPT)
    return subprocess.run(
        [sys.executable, "-P", str(script), str(folder.parent / f"root-{mode}"), mode],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def planted(tmp_path) -> Path:
    """A working folder holding ``yaml.py`` that fails loudly when imported."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "yaml.py").write_text("raise RuntimeError('the planted yaml.py was imported')\n")
    return folder


def test_a_module_planted_in_the_working_folder_shadows_without_the_clean_path(planted):
    # The control: the plant works, so the next test's pass means something.
    done = _run(planted, "plain")
    assert done.returncode != 0
    assert "the planted yaml.py was imported" in done.stdout + done.stderr


def test_steps_do_not_import_a_module_planted_in_the_working_folder(planted):
    done = _run(planted, "clean")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("YAML_FROM"))
    assert "site-packages" in line and str(planted) not in line


def test_the_clean_path_is_restored_afterwards(monkeypatch):
    from pipelines.local import clean_import_path

    monkeypatch.delenv("PYTHONSAFEPATH", raising=False)
    with clean_import_path():
        assert os.environ["PYTHONSAFEPATH"] == "1"
    assert "PYTHONSAFEPATH" not in os.environ
