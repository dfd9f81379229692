"""Helpers for the serving tests: a synthetic patient as an instance, HTTP calls, a server subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COHORTLM = Path(sys.executable).with_name("cohortlm")


def patient_instance(table, spec, i: int = 0) -> dict:
    """One row of the synthetic cohort as a V1 instance (JSON types, None for missing)."""
    row = {}
    for f in spec.features:
        v = table.iloc[i][f.name]
        if v is None or (isinstance(v, float) and v != v):
            row[f.name] = None
        elif f.type == "categorical":
            row[f.name] = str(v)
        else:
            row[f.name] = float(v)
    return row


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, body: dict | None = None, *, timeout: float = 10.0) -> tuple[int, dict | str]:
    """POST (or GET without body) JSON; return (status, decoded body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


class ServerProcess:
    """A `cohortlm serve` subprocess on 127.0.0.1 with its output in a file."""

    def __init__(self, bundle: Path, log_path: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env.pop("COHORTLM_FEATURE_SERVER_URL", None)
        self.proc = subprocess.Popen(
            [str(COHORTLM), "serve", "--bundle", str(bundle), "--http-port", str(self.port), *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.2) + 1):  # bounded in count and in time
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
