"""`--set` on run and submit: a bad override exits 2, naming it, before any step or request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli_schedule import kfp_api  # noqa: F401  (a stand-in KFP API on 127.0.0.1)


def _cohortlm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("cohortlm")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("qlora.lora_r=zero", "--set qlora.lora_r: qlora.lora_r must be an integer, got 'zero'"),
        (
            "qlora.learning_rate=-1",
            "--set qlora.learning_rate: qlora.learning_rate must be a positive number",
        ),
        ("qlora.lr=1e-3", "--set qlora.lr: unknown key"),
        ("epochs", "--set 'epochs': use key=value"),
    ],
)
def test_run_refuses_a_bad_override_before_any_step(tmp_path, override, message):
    res = _cohortlm(
        "run", "--profile", "smoke", "--set", "qlora.max_steps=2", "--set", override, cwd=tmp_path
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "models").exists()  # nothing ran


def test_run_refuses_a_bad_profile_file(tmp_path):
    (tmp_path / "mine.yaml").write_text("name: mine\nqlora:\n  epochs: 2\n  rank: 4\n")
    res = _cohortlm("run", "--profile", "mine.yaml", cwd=tmp_path)
    assert res.returncode == 2
    assert "mine.yaml: unknown key 'qlora.rank'; qlora takes lora_r" in res.stderr
    assert not (tmp_path / "runs").exists()


def test_recipe_prints_the_resolved_recipe_a_profile_file_reads_back(tmp_path):
    res = _cohortlm("recipe", "--profile", "quick", "--set", "qlora.lora_r=8", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (tmp_path / "mine.yaml").write_text(res.stdout)
    again = _cohortlm("recipe", "--profile", "mine.yaml", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    recipe = json.loads(again.stdout)
    assert recipe["name"] == "quick" and recipe["qlora"]["lora_r"] == 8 and recipe["qlora"]["epochs"] == 3.0


@pytest.mark.slow
def test_submit_sends_the_resolved_recipe(kfp_api, tmp_path):  # noqa: F811
    host, requests = kfp_api
    res = _cohortlm(
        "submit", "--host", host, "--raw-data", "gs://bucket/ra/raw", "--profile", "paper",
        "--set", "qlora.learning_rate=1e-4", "--set", "qlora.lora_layers=8", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    (body,) = [b for m, p, b in requests if m == "POST" and p.startswith("/apis/v2beta1/runs")]
    params = body["runtime_config"]["parameters"]
    assert params["profile"] == "paper"
    recipe = json.loads(params["recipe"])
    assert recipe["qlora"]["learning_rate"] == 1e-4 and recipe["qlora"]["lora_layers"] == 8
    assert recipe["qlora"]["quantization"] == "nf4"  # the rest is paper's


@pytest.mark.slow
def test_submit_refuses_a_bad_override_before_any_request(kfp_api, tmp_path):  # noqa: F811
    host, requests = kfp_api
    res = _cohortlm(
        "submit", "--host", host, "--raw-data", "/d", "--set", "qlora.quantization=int3", cwd=tmp_path
    )
    assert res.returncode == 2
    assert "--set qlora.quantization: qlora.quantization must be one of auto, nf4, none" in res.stderr
    assert not requests
    res = _cohortlm("submit", "--host", host, "--raw-data", "/d", "--param", "recipe={}", cwd=tmp_path)
    assert res.returncode == 2 and "give the recipe with --profile and --set" in res.stderr
    assert not requests
