"""``cohortlm outcomes add`` and ``cohortlm monitor`` on the command line: results and usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from monitor_testlib import instances

from serving.log_writer import PredictionLog
from serving.model import load_served_bundle
from serving.prediction_log import read_pseudonym_key

EXE = Path(sys.executable).with_name("cohortlm")


def _cohortlm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def _log(url: str, key_file: Path, bundle: Path, table: pd.DataFrame) -> None:
    served = load_served_bundle(bundle, require_manifest=False)
    log = PredictionLog(url, read_pseudonym_key(key_file), flush_interval=0.05)
    rows = instances(table, served.schema.spec)
    cols = served.schema.columns_from_instances(rows)
    proba = served.predictor.predict_columns(cols)
    ids = [r["patient_id"] for r in rows]
    log.record(served.version, served.schema.spec, served.endpoints, ids, proba, proba >= 0.5, cols)
    log.close()


@pytest.mark.slow
def test_outcomes_then_monitor_json(tmp_path, key_file, baseline_bundle, small_cohort):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    served = small_cohort.iloc[:150]
    _log(url, key_file, baseline_bundle, served)
    # endpoint values given directly (0/1) for one endpoint, the raw column for the others
    data = small_cohort[["patient_id", "das28_esr_2y", "das28_crp_2y", "cdai_2y", "jhaq_2y"]].copy()
    data["observation_date"] = "2020-01-01"
    data.to_csv(tmp_path / "outcomes.csv", index=False)
    res = _cohortlm("outcomes", "add", "--prediction-log", url, "--data", str(tmp_path / "outcomes.csv"),
                    "--pseudonym-key-file", str(key_file), cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    unknown = len(small_cohort) - 150
    assert f"{unknown} patients not in the prediction log" in res.stdout
    assert not any(pid in res.stdout + res.stderr for pid in small_cohort["patient_id"])
    small_cohort[["age", "sex"]].to_parquet(tmp_path / "bad_ref.parquet")
    res = _cohortlm("monitor", "--prediction-log", url, "--bundle", str(baseline_bundle), "--json",
                    "--reference", str(tmp_path / "bad_ref.parquet"), "--report", str(tmp_path / "r"),
                    cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2 and "--reference lacks the feature column" in res.stderr
    small_cohort.to_parquet(tmp_path / "ref.parquet")
    res = _cohortlm("monitor", "--prediction-log", url, "--bundle", str(baseline_bundle), "--json",
                    "--reference", str(tmp_path / "ref.parquet"), "--report", str(tmp_path / "r"),
                    cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["n_predictions"] == 150 and out["has_reference"] and not out["has_gate_figures"]
    e = out["endpoints"]["das28_esr_remission"]
    assert e["n_outcomes"] == 150 and e["auc_ci_low"] < e["auc"] < e["auc_ci_high"] and not e["degraded"]
    assert set(out["features"]["age"]) >= {"psi", "drifted"}
    assert (tmp_path / "r" / "index.html").is_file() and (tmp_path / "r" / "monitor.json").is_file()


@pytest.mark.slow
def test_usage_errors_exit_2_naming_what_is_wrong(tmp_path, key_file, baseline_bundle, small_cohort):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    small_cohort[["age"]].to_csv(tmp_path / "noid.csv", index=False)
    res = _cohortlm("outcomes", "add", "--prediction-log", url, "--data", str(tmp_path / "noid.csv"),
                    "--pseudonym-key-file", str(key_file), cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2 and "no patient_id column" in res.stderr
    small_cohort[["patient_id", "age"]].to_csv(tmp_path / "noend.csv", index=False)
    res = _cohortlm("outcomes", "add", "--prediction-log", url, "--data", str(tmp_path / "noend.csv"),
                    "--pseudonym-key-file", str(key_file), cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2 and "no endpoint column" in res.stderr
    res = _cohortlm("monitor", "--prediction-log", url, "--bundle", str(baseline_bundle),
                    "--kfp-host", "http://127.0.0.1:9", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2 and "--kfp-host needs --raw-data" in res.stderr
    bad_url = "mysql://u:secretpw@h/db"
    res = _cohortlm("monitor", "--prediction-log", bad_url, "--bundle", str(baseline_bundle), cwd=tmp_path)
    assert res.returncode == 2 and "unsupported database" in res.stderr and "secretpw" not in res.stderr
