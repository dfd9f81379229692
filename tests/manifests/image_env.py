"""Each image's Python environment, built the way its Dockerfile builds it, without a Docker daemon.

A fresh venv, the Dockerfile's copied folders in a scratch source folder, its pip
lines in order (torch as ``pip install torch==2.13.0`` from this machine's index,
as the Makefile does), then every component's module, the pipeline and the
serving entry point are imported there and ``cohortlm serve --help`` and
``feast version`` run. The serving image must carry none of the pipeline extra.
"""

from __future__ import annotations

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
    # No byte-compiling at install (the image's layers do): the same packages, half the time.
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
        "PIP_NO_COMPILE": "1",
    }
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


def check_image_environment(dockerfile: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Build ``dockerfile``'s Python environment and import there what runs in the image."""
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
