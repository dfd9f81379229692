"""Helpers shared by tests/run and tests/components: score tables made in the test, a lenient
gate policy for tiny test splits, and a recording Pushgateway on 127.0.0.1."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def fake_scores(split_table: Path, spec, out: Path, *, quality: str, seed: int = 0) -> Path:
    """A score table for the validation and test rows: ``good`` tracks the labels, ``noise`` does not."""
    df = pd.read_parquet(split_table)
    df = df[df["split"].isin(["validation", "test"])].reset_index(drop=True)
    labels = spec.labels(df)
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({spec.id_column: df[spec.id_column], "split": df["split"]})
    for ep in spec.endpoint_names:
        if quality == "good":
            p = 0.2 + 0.6 * labels[ep].to_numpy() + rng.normal(0, 0.08, len(df))
        else:
            p = rng.uniform(0, 1, len(df))
        table[ep] = np.clip(p, 0.01, 0.99)
    table.to_parquet(out, index=False)
    return out


def lenient_policy_text() -> str:
    """The default gate policy for a 60-patient test split: 10 cases suffice, no calibration test."""
    from cohortlm.evaluation.gate import default_policy_path

    policy = yaml.safe_load(Path(default_policy_path()).read_text())
    policy.update({"min_cases": 10, "calibration": "none"})
    return yaml.safe_dump(policy)


@dataclass
class Push:
    method: str
    path: str
    body: str

    def samples(self) -> dict[tuple[str, frozenset], float]:
        """The pushed metrics as ``{(name, labels): value}``."""
        from prometheus_client.parser import text_string_to_metric_families

        return {
            (s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(self.body)
            for s in fam.samples
        }

    def value(self, name: str, **labels: str) -> float:
        found = [v for (n, ls), v in self.samples().items() if n == name and set(labels.items()) <= ls]
        assert len(found) == 1, (name, labels, sorted(self.samples()))
        return found[0]


class RecordingGateway:
    """An HTTP endpoint on 127.0.0.1 that records what a Pushgateway would receive (202 to every push)."""

    def __init__(self) -> None:
        self.pushes: list[Push] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                gateway.pushes.append(Push(self.command, self.path, body))
                self.send_response(202)
                self.end_headers()

            do_PUT = do_POST = _record  # noqa: N815 (http.server's method names)

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def only(self) -> Push:
        assert len(self.pushes) == 1, [(p.method, p.path) for p in self.pushes]
        return self.pushes[0]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
