"""Promotion under concurrency: two runs on one store, and a promotion killed with SIGKILL.

Each run reads the champion as the gate step does (:func:`registry.champion`), decides,
and promotes only if that champion still serves (a compare-and-swap under the store's
lock). The runs here are separate processes using the real store code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from cohortlm.store import registry
from cohortlm.store.registry import ChampionChangedError

# One "run": the gate's champion read, a wait until every run has read (so that both saw the
# same champion, as two runs started together do), then the promotion against what it read.
_RUN = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from cohortlm.store import registry

    bundle, store, sync, me, n = sys.argv[1:6]
    current = registry.champion(store, "ra_iorra")  # what the gate step reads
    gated = current.name if current is not None else None
    Path(sync, f"read-{me}").write_text("")
    deadline = time.monotonic() + 60
    while len(list(Path(sync).glob("read-*"))) < int(n) and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        version = registry.promote(bundle, store, expected_champion=gated)
        print(json.dumps({"gated": gated, "promoted": version}))
    except registry.ChampionChangedError as exc:
        print(json.dumps({"gated": gated, "refused": str(exc)}))
    """
)


def _run_together(bundles: list[Path], store: Path, sync: Path) -> list[dict]:
    sync.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RUN, str(b), str(store), str(sync), str(i), str(len(bundles))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, b in enumerate(bundles)
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def _version(bundle: Path) -> str:
    return json.loads((bundle / "bundle.json").read_text())["model_version"]


def test_two_runs_that_saw_no_champion_make_exactly_one_first_champion(
    baseline_bundle, second_bundle, store, tmp_path
):
    results = _run_together([baseline_bundle, second_bundle], store, tmp_path / "sync")
    assert [r["gated"] for r in results] == [None, None]  # both gates saw no champion
    promoted = [r for r in results if "promoted" in r]
    refused = [r for r in results if "refused" in r]
    assert len(promoted) == 1 and len(refused) == 1, results
    winner = promoted[0]["promoted"]
    assert registry.champion_version(store, "ra_iorra") == winner
    assert registry.history(store, "ra_iorra") == [winner]
    message = refused[0]["refused"]
    assert "changed while this run was gating" in message and "no champion (a first champion)" in message
    assert f"but {winner} serves now" in message and "Nothing was promoted; run again" in message
    loser = ({_version(baseline_bundle), _version(second_bundle)} - {winner}).pop()
    assert loser not in registry.versions(store, "ra_iorra")  # refused before anything was copied


def test_a_run_after_the_first_gates_against_its_champion(baseline_bundle, second_bundle, store, tmp_path):
    first = _run_together([baseline_bundle], store, tmp_path / "sync1")[0]
    second = _run_together([second_bundle], store, tmp_path / "sync2")[0]
    assert first == {"gated": None, "promoted": _version(baseline_bundle)}
    assert second == {"gated": _version(baseline_bundle), "promoted": _version(second_bundle)}
    assert registry.history(store, "ra_iorra") == [_version(baseline_bundle), _version(second_bundle)]


def test_promotion_against_a_stale_champion_is_refused_and_a_retry_is_harmless(
    baseline_bundle, second_bundle, store
):
    first = registry.promote(baseline_bundle, store, expected_champion=None)
    with pytest.raises(ChampionChangedError, match=f"compared {_version(second_bundle)} against no champion"):
        registry.promote(second_bundle, store, expected_champion=None)
    assert registry.champion_version(store, "ra_iorra") == first
    # The same promotion again (a retried step) succeeds: the champion already is this version.
    assert registry.promote(baseline_bundle, store, expected_champion=None) == first
    # Without an expectation (`cohortlm promote` by hand) the pointer moves as before.
    assert registry.promote(second_bundle, store) == _version(second_bundle)


def test_the_promote_step_expects_the_champion_the_gate_named():
    from cohortlm.run.steps import gated_champion_version

    assert gated_champion_version(SimpleNamespace(champion="baseline")) is None
    assert gated_champion_version(SimpleNamespace(champion="champion_baseline_ab12_3.x")) == "ab12_3.x"
    assert gated_champion_version(SimpleNamespace(champion="champion_llm_9f")) == "9f"


# A promotion that stops inside its copy (after the staging folder exists) until it is killed.
_STUCK = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cohortlm.store import registry

    bundle, store, flag = sys.argv[1:4]
    real = registry._stage_copy

    def stage_and_stop(*args, **kwargs):
        manifest = real(*args, **kwargs)
        Path(flag).write_text("staged")
        time.sleep(120)
        return manifest

    registry._stage_copy = stage_and_stop
    registry.promote(bundle, store)
    """
)


def test_a_killed_promotion_leaves_the_champion_and_its_debris_is_cleaned(
    baseline_bundle, second_bundle, store, tmp_path
):
    first = registry.promote(baseline_bundle, store)
    versions = store / "ra_iorra" / "versions"
    flag = tmp_path / "staged"
    proc = subprocess.Popen([sys.executable, "-c", _STUCK, str(second_bundle), str(store), str(flag)])
    try:
        deadline = time.monotonic() + 60
        while not flag.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert flag.exists(), "the promotion never reached its staging folder"
        staging = list(versions.glob(".incoming-*"))
        assert len(staging) == 1 and f"-{proc.pid}-" in staging[0].name
        # In progress (its owner holds the lock): opening the store leaves it alone.
        assert registry.clean_stale_incoming(store, "ra_iorra") == []
        assert registry.champion(store, "ra_iorra") == versions / first
        assert staging[0].is_dir()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    # Killed: the champion is the old one, and the next opening of the store removes the debris.
    assert registry.champion(store, "ra_iorra") == versions / first
    assert not list(versions.glob(".incoming-*"))
    assert registry.versions(store, "ra_iorra") == [first]
    assert registry.history(store, "ra_iorra") == [first]


def test_a_runs_summary_names_what_serves_when_it_ends(
    baseline_bundle, second_bundle, store, tmp_path, monkeypatch
):
    """Run 1 promoted v1, then run 2 (gated against v1) promoted v2: run 1's result says v2 serves."""
    from cohortlm.run.outcome import GateOutcome
    from pipelines import local

    v1 = registry.promote(baseline_bundle, store, expected_champion=None)
    v2 = registry.promote(second_bundle, store, expected_champion=v1)
    monkeypatch.setattr(
        GateOutcome, "read", staticmethod(lambda path: SimpleNamespace(winner="baseline", study="ra_iorra"))
    )
    result = local._finish(
        tmp_path / "run1",
        {"outcome": SimpleNamespace(path="unused"), "served_version": v1},
        model_store=str(store),
        steps=SimpleNamespace(seconds={}),
        started=time.monotonic(),
    )
    assert (result.promoted_version, result.served_version) == (v1, v2)
    # promoted/ is the version this run promoted, not whatever serves now.
    assert json.loads((tmp_path / "run1" / "promoted" / "bundle.json").read_text())["model_version"] == v1
