"""A stand-in for the Kubeflow Pipelines REST API (``/apis/v2beta1``) on 127.0.0.1 that records
what the real kfp client sends (as tests/cli/test_cli_schedule.py does for the schedule)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def kfp_api() -> Iterator[tuple[str, list[tuple[str, str, dict]]]]:
    """Yields the API's URL and the list of (method, path, body) it received."""
    requests: list[tuple[str, str, dict]] = []
    runs = iter(range(1, 1000))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _answer(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            requests.append(("GET", self.path, {}))
            self._answer({} if "experiments" in self.path else {"commit_sha": "x", "tag_name": "2.5.0"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            requests.append(("POST", self.path, body))
            if self.path.startswith("/apis/v2beta1/experiments"):
                self._answer({"experiment_id": "exp-1", "display_name": body.get("display_name")})
            else:
                self._answer({**body, "run_id": f"run-{next(runs)}"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def run_posts(requests: list[tuple[str, str, dict]]) -> list[dict]:
    return [b for m, p, b in requests if m == "POST" and p.startswith("/apis/v2beta1/runs")]
