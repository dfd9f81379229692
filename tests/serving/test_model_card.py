"""The served model's metadata carries its bundle's model card (V1 and V2), and no patient value."""

from __future__ import annotations

import json

import pytest
from card_testlib import PLANTED, promote_planted_study
from serving_testlib import http_json

from cohortlm.models.model_card import MODEL_CARD_JSON


@pytest.fixture(scope="module")
def promoted(tmp_path_factory):
    return promote_planted_study(tmp_path_factory.mktemp("served-card"))


def test_the_served_metadata_carries_the_model_card(promoted, start_server):
    card = json.loads((promoted.bundle / MODEL_CARD_JSON).read_text())
    server = start_server(promoted.bundle, "--verify-key", str(promoted.keys[1]))
    name = "hf_readmission"

    status, v2 = http_json(f"{server.url}/v2/models/{name}")
    assert status == 200, v2
    assert v2["name"] == name and v2["model_card"] == card
    assert v2["versions"] == [promoted.bundle.name] == [card["model"]["version"]]
    # KServe's own fields are still there.
    assert {i["name"] for i in v2["inputs"]} == {"age", "sex", "ef", "diabetes"}
    assert {o["name"] for o in v2["outputs"]} >= {"readmitted", "readmitted_decision"}

    status, v1 = http_json(f"{server.url}/v1/models/{name}")
    assert status == 200, v1
    assert v1["ready"] is True and v1["model_card"] == card and v1["model_version"] == promoted.bundle.name

    for body in (v2, v1):
        text = json.dumps(body)
        for value in PLANTED:
            assert value not in text, f"the served metadata holds the planted value {value}"

    # An unknown model is still KServe's 404, through the same handlers.
    status, _ = http_json(f"{server.url}/v2/models/nothing_here")
    assert status == 404
    status, _ = http_json(f"{server.url}/v1/models/nothing_here")
    assert status == 404


def test_a_tampered_card_stops_the_server_from_starting(promoted, tmp_path, start_server):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(promoted.bundle, copy)
    card = copy / MODEL_CARD_JSON
    card.write_text(card.read_text().replace("decision aid", "diagnosis"))
    server = start_server(copy, wait=False)
    assert server.proc.wait(timeout=60) == 1
    assert "MANIFEST" in server.log() or "changed" in server.log()
