"""``compute_dtype="auto"`` on a CPU: bf16 only where a probe finds it faster, decided once per machine."""

from __future__ import annotations

import json

import pytest

from cohortlm.models.llm import loading


@pytest.fixture
def probe(monkeypatch, tmp_path):
    monkeypatch.setenv("COHORTLM_CACHE", str(tmp_path))
    monkeypatch.setattr(loading, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(loading, "_probe_model", lambda: None)
    timings = {"fp32": 1.0, "bf16": 0.5, "calls": 0}

    def fake(_model, bf16, reps=2):
        timings["calls"] += 1
        return timings["bf16" if bf16 else "fp32"]

    monkeypatch.setattr(loading, "_time_forward", fake)
    loading.bf16_pays_off.cache_clear()
    yield timings, tmp_path
    loading.bf16_pays_off.cache_clear()


def test_bf16_where_it_is_clearly_faster_and_the_answer_is_kept(probe):
    timings, root = probe
    assert loading.autocast_dtype("cpu", "auto") is not None
    assert timings["calls"] == 2
    saved = json.loads((root / "dtype_probe.json").read_text())
    (entry,) = saved.values()
    assert entry["bf16"] is True and entry["fp32_s"] == 1.0
    # another process (fresh memo) on the same machine reads the answer instead of measuring again
    loading.bf16_pays_off.cache_clear()
    timings["bf16"] = 9.0
    assert loading.bf16_pays_off() is True and timings["calls"] == 2


def test_fp32_where_bf16_is_slower_or_barely_faster_despite_the_flag(probe):
    timings, _ = probe
    timings["bf16"] = 1.6  # the measured case: AVX512-BF16 present, bf16 autocast 1.6x slower
    assert loading.autocast_dtype("cpu", "auto") is None
    loading.bf16_pays_off.cache_clear()
    (probe[1] / "dtype_probe.json").unlink()
    timings["bf16"] = 0.9  # faster, but not by BF16_MIN_SPEEDUP
    assert loading.autocast_dtype("cpu", "auto") is None
    # an explicit choice is obeyed without probing
    calls = timings["calls"]
    assert loading.autocast_dtype("cpu", "bf16") is not None
    assert loading.autocast_dtype("cpu", "fp32") is None and timings["calls"] == calls


def test_no_probe_without_the_cpu_flag(probe, monkeypatch):
    timings, root = probe
    monkeypatch.setattr(loading, "cpu_has_bf16", lambda: False)
    assert loading.autocast_dtype("cpu", "auto") is None
    assert timings["calls"] == 0 and not (root / "dtype_probe.json").exists()
