"""The images contain what runs in them.

Fast: every first-party module a component, the pipeline or the server imports
(followed through cohortlm, serving and featurestore, imports inside functions
included) belongs to a folder the Dockerfile copies.

Slow: each image's Python environment is built the way its Dockerfile builds it,
without a Docker daemon: a fresh venv, the Dockerfile's copied folders in a
scratch source folder, its pip lines in order (torch as ``pip install
torch==2.13.0`` from this machine's index, as the Makefile does), then every
component's module, the pipeline and the serving entry point are imported there
and ``cohortlm serve --help`` and ``feast version`` run.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import manifest_checks as mc
import pytest

DOCKER = mc.REPO / "docker"
FIRST_PARTY = ("cohortlm", "components", "pipelines", "serving", "featurestore")
IMAGES = {
    # What runs in each image: the KFP components (and the pipeline/trainer they import),
    # or the model server and the feature server.
    "Dockerfile.pipeline": [
        *sorted(str(p.relative_to(mc.REPO)) for p in (mc.REPO / "components").glob("*/component.py")),
        "pipelines/train_evaluate_promote.py",
        "components/trainer.py",
    ],
    "Dockerfile.serving": ["serving/cli.py", "serving/server.py", "serving/features.py"],
}


def _logical_lines(text: str) -> list[str]:
    return re.sub(r"\\\n\s*", " ", text).splitlines()


def copied(dockerfile: str) -> list[str]:
    """Source paths the build stage copies from the context (``COPY src dest``), in order."""
    out: list[str] = []
    for line in _logical_lines((DOCKER / dockerfile).read_text()):
        m = re.match(r"^COPY\s+(?!--from)(.+)$", line.strip())
        if m:
            out += m.group(1).split()[:-1]
    return out


def pip_commands(dockerfile: str) -> list[str]:
    """The ``pip install`` commands of the Dockerfile, in build order."""
    return [
        cmd.strip()
        for line in _logical_lines((DOCKER / dockerfile).read_text())
        if line.strip().startswith("RUN")
        for cmd in line.strip().removeprefix("RUN").split("&&")
        if "pip install" in cmd
    ]


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


def _image_env_key(dockerfile: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What decides the Python environment: the pip lines (torch index unified) and the copies."""
    pips = tuple(
        re.sub(r'--index-url\s+"?\$\{TORCH_INDEX_URL\}"?\s+', "", c) for c in pip_commands(dockerfile)
    )
    return pips, tuple(copied(dockerfile))


@functools.cache
def _build(key: tuple[tuple[str, ...], tuple[str, ...]], root: str) -> Path:
    pips, copies = key
    work = Path(root)
    src, venv = work / "src", work / "venv"
    src.mkdir(parents=True)
    for item in copies:
        source = mc.REPO / item
        if source.is_dir():
            shutil.copytree(source, src / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "data"))
        else:
            shutil.copy(source, src / item)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    for cmd in pips:
        args = shlex.split(cmd)
        assert args[0] == "pip", cmd
        if "--upgrade" in args and "pip" in args[2:]:
            continue  # the image's own pip upgrade; this machine's pip is current enough
        proc = subprocess.run(
            [str(venv / "bin" / "python"), "-m", *args, "--quiet"],
            cwd=src,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert proc.returncode == 0, f"{cmd}\n{proc.stderr[-3000:]}"
    return venv


@pytest.mark.slow
@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_the_image_environment_imports_what_runs_in_it(dockerfile, tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / f"image-env-{abs(hash(_image_env_key(dockerfile)))}"
    venv = _build(_image_env_key(dockerfile), str(root))
    entry = sorted(m.removesuffix(".py").replace("/", ".") for m in IMAGES[dockerfile])
    modules = [*entry, "featurestore.pipeline", "serving.server", "cohortlm.models.llm.scoring"]
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint('ok')"
    # Outside the checkout, so that only the installed copy can be imported.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    py = str(venv / "bin" / "python")
    proc = subprocess.run(
        [py, "-c", code, *modules], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for cmd in (
        [str(venv / "bin" / "cohortlm"), "serve", "--help"],
        [str(venv / "bin" / "feast"), "version"],
    ):
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (cmd, proc.stderr[-2000:])
    if dockerfile == "Dockerfile.serving":
        # The serving image is the slim one: none of the pipeline extra, no pipeline code.
        probe = "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in sys.argv[1:]))"
        absent = ["kfp", "bitsandbytes", "kubeflow", "pipelines", "components"]
        proc = subprocess.run([py, "-c", probe, *absent], cwd=root, env=env, capture_output=True, timeout=120)
        assert proc.returncode == 0, f"the serving image carries one of {absent}"
