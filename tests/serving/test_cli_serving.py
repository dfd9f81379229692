"""`cohortlm promote`, `champion`, `rollback`: exit codes and one-line errors."""

from __future__ import annotations

from cohortlm.cli import main
from cohortlm.store import registry


def test_promote_champion_rollback(baseline_bundle, second_bundle, store, capsys):
    assert main(["promote", "--bundle", str(baseline_bundle), "--store", str(store)]) == 0
    v1 = registry.champion_version(store, "ra_iorra")
    assert main(["promote", "--bundle", str(second_bundle), "--store", str(store)]) == 0
    v2 = registry.champion_version(store, "ra_iorra")
    assert v1 != v2
    capsys.readouterr()
    assert main(["champion", "--store", str(store)]) == 0
    assert capsys.readouterr().out.strip().endswith(v2)
    assert main(["rollback", "--store", str(store)]) == 0
    assert registry.champion_version(store, "ra_iorra") == v1
    assert main(["rollback", "--store", str(store)]) == 1
    assert "no earlier champion" in capsys.readouterr().err


def test_no_champion_and_not_a_bundle(tmp_path, store, capsys):
    assert main(["champion", "--store", str(store)]) == 1
    assert main(["promote", "--bundle", str(tmp_path), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "has no champion" in err and "not a model bundle" in err
    assert "Traceback" not in err


def test_serve_refuses_an_unpromoted_bundle(baseline_bundle, capsys):
    assert main(["serve", "--bundle", str(baseline_bundle), "--http-port", "1"]) == 1
    assert "only promoted bundles are served" in capsys.readouterr().err
