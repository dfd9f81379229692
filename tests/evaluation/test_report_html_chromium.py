"""report/index.html opened in headless Chromium: no console errors, and the first screen shows
the verdict and the figure.

Chromium (Debian's ``chromium``) is installed by scripts/install-chromium.sh on first use. The
test drives it over the DevTools protocol: console messages, uncaught exceptions and failed
loads are collected while the page loads, the DOM is asked where the verdict and the figure
are, and a screenshot is taken and read back. Set ``COHORTLM_SCREENSHOT_DIR`` to keep the
screenshots (the closing note of issue 17 shows one).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stats_run_folder import make_run_folder

from cohortlm.evaluation.render import write_report

pytestmark = [pytest.mark.slow, pytest.mark.service]

REPO = Path(__file__).resolve().parents[2]
VIEWPORT = (1400, 1300)


def _chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        subprocess.run(["bash", str(REPO / "scripts" / "install-chromium.sh")], check=True, timeout=900)
        exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is missing: run `bash scripts/install-chromium.sh`")
    return exe


class Page:
    """One Chromium tab over the DevTools protocol (websocket), events kept as they arrive."""

    def __init__(self, ws_url: str) -> None:
        import websocket  # websocket-client, installed with the kubernetes client

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.events: list[dict[str, Any]] = []
        self._id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(event)
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, and browser log errors (failed loads)."""
        out = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                out.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                out.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
                entry = params["entry"]
                out.append(
                    f"log {entry['level']} ({entry.get('source')}): {entry.get('text')} {entry.get('url')}"
                )
        return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[str]:
    """A headless Chromium on a free 127.0.0.1 port; yields the port's HTTP endpoint."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    args = [
        _chromium(), "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
        f"--user-data-dir={profile}", f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank",
    ]  # fmt: skip
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        endpoint = None
        assert proc.stderr is not None
        while endpoint is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            match = re.search(r"DevTools listening on ws://(127\.0\.0\.1:\d+)/", line)
            endpoint = f"http://{match.group(1)}" if match else None
        if endpoint is None:
            pytest.fail(f"chromium did not start (exit {proc.poll()})")
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _open(endpoint: str, url: str) -> Page:
    targets = json.loads(urllib.request.urlopen(f"{endpoint}/json/list", timeout=10).read())
    page = Page(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
    for domain in ("Runtime", "Log", "Page"):
        page.call(f"{domain}.enable")
    page.call(
        "Emulation.setDeviceMetricsOverride",
        width=VIEWPORT[0], height=VIEWPORT[1], deviceScaleFactor=1, mobile=False,
    )  # fmt: skip
    page.events.clear()
    page.call("Page.navigate", url=url)
    page.wait_for("Page.loadEventFired")
    return page


def _report(tmp_path: Path, *, profile: str, sizes: tuple[int, int, int]) -> Path:
    """A run folder with the files `cohortlm run` leaves (summary, validation), and its report."""
    root = make_run_folder(tmp_path / profile, sizes=sizes, seed=1)
    summary = {"run_id": f"test-{profile}", "study": "ra_iorra", "profile": profile, "wall_seconds": 83.0}
    (root / "summary.json").write_text(json.dumps(summary))
    (root / "validation").mkdir()
    expectations = [
        {"name": "exists(patient_id)", "success": True, "description": "id column patient_id is present"},
        {"name": "in_range(age)", "success": False, "unexpected_count": 3, "description": "age in 16-100"},
    ]
    validation = {
        "study": "ra_iorra", "success": False, "n_rows": sum(sizes), "n_columns": 37,
        "n_expectations": 2, "n_failed": 1, "great_expectations": "1.24.1", "expectations": expectations,
    }  # fmt: skip
    (root / "validation" / "validation.json").write_text(json.dumps(validation))
    return write_report(root).index_html


def _screenshot(page: Page, name: str) -> np.ndarray:
    from matplotlib import image

    png = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
    keep = os.environ.get("COHORTLM_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / name).write_bytes(png)
    return image.imread(io.BytesIO(png), format="png")


def _rect(page: Page, selector: str) -> dict[str, float]:
    box = f"document.querySelector({selector!r}).getBoundingClientRect()"
    return page.evaluate(f"JSON.parse(JSON.stringify({box}))")


def _colour_share(pixels: np.ndarray, hex_colour: str) -> float:
    """Share of pixels within a small distance of a colour (the figure's curves)."""
    target = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return float((np.abs(pixels[..., :3] - target).max(axis=-1) < 0.08).mean())


@pytest.mark.parametrize(
    ("profile", "sizes", "warns"), [("quick", (300, 400, 4000), False), ("smoke", (190, 63, 63), True)]
)
def test_report_opens_with_no_errors_and_shows_figure_and_verdict(
    browser: str, tmp_path: Path, profile: str, sizes: tuple[int, int, int], warns: bool
) -> None:
    index = _report(tmp_path, profile=profile, sizes=sizes)
    text = index.read_text(encoding="utf-8")
    # Self-contained: nothing is fetched (the one link is to the validation report beside it).
    assert not re.search(r"(src|href)=['\"](?!data:|#|\.\./validation/)", text)
    page = _open(browser, index.as_uri())
    try:
        assert page.errors() == []
        assert page.evaluate("document.readyState") == "complete"
        verdict = page.evaluate("document.querySelector('#verdict .word').innerText")
        assert verdict in ("PROMOTE", "KEEP CHAMPION")
        image_width = (
            "(() => {const i = document.querySelector('#roc img'); return i.complete && i.naturalWidth})()"
        )
        assert page.evaluate(image_width) > 1000
        warnings = page.evaluate("(document.querySelector('#warnings') || {innerText: ''}).innerText")
        assert ("mean nothing" in warnings) is warns and ("Small evaluation" in warnings) is warns
        assert page.evaluate("document.querySelector('#validation').innerText").count("in_range(age)") == 1
        # The first screen holds the whole verdict and the whole figure.
        shot = _screenshot(page, f"report-{profile}.png")
        assert shot.shape[:2] == (VIEWPORT[1], VIEWPORT[0])
        for selector in ("#verdict", "#roc img"):
            r = _rect(page, selector)
            assert r["top"] >= 0 and r["bottom"] <= VIEWPORT[1] and r["width"] > 600, (selector, r)
        # ... and the screenshot really shows them: the verdict box's colour and the curves' colours.
        v, f = _rect(page, "#verdict"), _rect(page, "#roc img")
        box = shot[int(v["top"]) : int(v["bottom"]), int(v["left"]) : int(v["right"])]
        colour = "#1b7f3b" if verdict == "PROMOTE" else "#8a6d00"
        assert _colour_share(box, colour) > 0.005, verdict
        figure = shot[int(f["top"]) : int(f["bottom"]), int(f["left"]) : int(f["right"])]
        for curve in ("#1f77b4", "#d62728"):
            assert _colour_share(figure, curve) > 0.001, curve
        # The calibration and decision-curve figures are on the page too, drawn and in colour.
        for name in ("calibration", "decision_curve"):
            loaded = (
                f"(() => {{const i = document.querySelector('#{name} img'); "
                "return i.complete && i.naturalWidth})()"
            )
            assert page.evaluate(loaded) > 1000, name
            page.evaluate(f"document.querySelector('#{name} img').scrollIntoView()")
            shot = _screenshot(page, f"report-{profile}-{name}.png")
            r = _rect(page, f"#{name} img")
            top, bottom = max(0, int(r["top"])), min(VIEWPORT[1], int(r["bottom"]))
            assert bottom - top > 300 and r["width"] > 600, (name, r)
            seen = shot[top:bottom, int(r["left"]) : int(r["right"])]
            for curve in ("#1f77b4", "#d62728"):
                assert _colour_share(seen, curve) > 0.0005, (name, curve)
        table1 = page.evaluate("document.querySelector('#table1').innerText")
        assert "Threshold source" in table1 and "Sensitivity (95% CI)" in table1
        assert "O/E" in page.evaluate("document.querySelector('#calibration-table').innerText")
    finally:
        page.ws.close()
