"""Profiles as YAML recipes: loaded safely, checked with the config's own rules, changed by ``--set``."""

from __future__ import annotations

import pytest

from cohortlm.errors import SpecError, UsageError
from cohortlm.run.profiles import (
    PROFILE_DIR,
    PROFILES,
    Profile,
    apply_overrides,
    get_profile,
    load_profile_file,
    pipeline_recipe,
    recipe_from_json,
    resolve_recipe,
)


def test_the_packaged_profiles():
    assert set(PROFILES) == {"smoke", "quick", "paper"}
    assert PROFILES["smoke"].base_model == "tiny" and PROFILES["smoke"].throwaway
    assert PROFILES["paper"].qlora.quantization == "nf4" and PROFILES["paper"].needs_base_model
    assert not PROFILES["quick"].throwaway and PROFILES["quick"].qlora.head == "endpoint"


@pytest.mark.parametrize("name", ["smoke", "quick", "paper"])
def test_the_resolved_recipe_reads_back_equal(name, tmp_path):
    profile = PROFILES[name]
    assert Profile.from_dict(profile.to_dict(), source="x") == profile
    assert recipe_from_json(profile.to_json()) == profile
    path = tmp_path / f"{name}.yaml"
    path.write_text(profile.to_yaml())
    assert get_profile(str(path)) == profile
    assert (PROFILE_DIR / f"{name}.yaml").is_file()


def test_a_user_file_needs_only_a_name_and_what_differs(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\neval_rows: 100\nqlora:\n  lora_r: 8\n  learning_rate: 5e-4\n")
    profile = get_profile(str(path))
    assert profile.name == "mine" and profile.eval_rows == 100
    assert profile.qlora.lora_r == 8 and profile.qlora.learning_rate == 5e-4  # 5e-4: YAML 1.1 text
    assert profile.qlora.optimizer == "adamw" and profile.qlora.lr_schedule == "cosine"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nqlora:\n  lr: 0.1\n", r"unknown key 'qlora\.lr'; qlora takes lora_r, .*learning_rate"),
        ("name: x\nepochs: 2\n", r"unknown key 'epochs'; a profile has name, description"),
        ("name: x\nqlora:\n  lora_r: 0\n", r"qlora\.lora_r must be a positive integer, got 0"),
        ("name: x\nqlora:\n  learning_rate: fast\n", r"qlora\.learning_rate must be a number, got 'fast'"),
        ("name: x\nqlora:\n  lora_layers: 1.5\n", r"qlora\.lora_layers must be an integer or null, got 1\.5"),
        ("name: x\nqlora:\n  optimizer: lion\n", r"qlora\.optimizer must be one of adamw, adam, sgd"),
        ("name: x\nqlora:\n  lr_schedule: step\n", r"qlora\.lr_schedule must be one of cosine, linear"),
        ("name: x\nqlora:\n  optimizer_args: {momentum: 0.9}\n", r"momentum is not an argument of adamw"),
        ("name: x\neval_rows: 0\n", r"eval_rows must be null \(every test patient\) or positive"),
        ("description: no name\n", r"name is missing"),
        ("name: x\nqlora: [1, 2]\n", r"qlora must be a mapping"),
        ("- just\n- a list\n", r"a profile is a mapping"),
        ("name: x\nname: y\n", r"name: the key is given twice"),
    ],
)
def test_a_bad_profile_file_names_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=message) as err:
        load_profile_file(path)
    assert str(path) in str(err.value)


def test_overrides_are_yaml_typed_and_checked():
    quick = PROFILES["quick"]
    changed = apply_overrides(
        quick,
        [
            "qlora.learning_rate=2e-4",
            "qlora.lora_layers=4",
            "qlora.target_modules=[q_proj, v_proj]",
            "qlora.lr_schedule=linear",
            "qlora.optimizer_args.betas=[0.9, 0.95]",
            "eval_rows=null",
        ],
    )
    assert changed.qlora.learning_rate == 2e-4 and changed.qlora.lora_layers == 4
    assert changed.qlora.target_modules == ("q_proj", "v_proj") and changed.qlora.lr_schedule == "linear"
    assert changed.qlora.optimizer_args == {"betas": [0.9, 0.95]} and changed.eval_rows is None
    assert changed.qlora.epochs == quick.qlora.epochs and changed.name == "quick"  # the rest as it was
    assert resolve_recipe("quick", ["qlora.lora_r=8"]).qlora.lora_r == 8
    assert PROFILES["quick"] == quick  # the packaged profile is untouched
    assert apply_overrides(quick, []) is quick


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("qlora.lr=0.1", r"--set qlora\.lr: unknown key; set one of name, .*qlora\.<field> \(lora_r"),
        ("learning_rate=0.1", r"--set learning_rate: unknown key"),
        ("qlora.lora_r=0", r"--set qlora\.lora_r: qlora\.lora_r must be a positive integer, got 0"),
        ("qlora.lora_r=eight", r"--set qlora\.lora_r: qlora\.lora_r must be an integer, got 'eight'"),
        ("qlora.epochs=-1", r"--set qlora\.epochs: qlora\.epochs must be positive"),
        ("qlora.head=linear", r"qlora\.head must be one of"),
        ("qlora.optimizer_args.momentum=0.9", r"momentum is not an argument of adamw"),
        ("qlora.learning_rate", r"--set 'qlora\.learning_rate': use key=value"),
        ("qlora.target_modules=[a, [b]", r"--set qlora\.target_modules: .*not valid YAML"),
    ],
)
def test_a_bad_override_is_a_spec_error_naming_it(override, message):
    with pytest.raises(SpecError, match=message) as err:
        resolve_recipe("quick", [override])
    assert err.value.exit_code == 2


def test_unknown_profile_and_recipe_parameter():
    with pytest.raises(UsageError, match="unknown profile 'huge'; choose one of smoke, quick, paper"):
        get_profile("huge")
    with pytest.raises(SpecError, match="profile file not found"):
        get_profile("nowhere.yaml")
    assert pipeline_recipe("smoke", "") == PROFILES["smoke"]
    custom = resolve_recipe("smoke", ["qlora.max_steps=3"])
    assert pipeline_recipe("smoke", custom.to_json()) == custom
    with pytest.raises(SpecError, match="the pipeline's recipe parameter: not JSON"):
        pipeline_recipe("smoke", "{lora_r: 3")
    with pytest.raises(SpecError, match=r"the pipeline's recipe parameter: unknown key 'qlora\.rank'"):
        pipeline_recipe("smoke", '{"name": "smoke", "qlora": {"rank": 3}}')


def test_the_recipe_parameter_must_be_the_named_profiles():
    paper = PROFILES["paper"].to_json()
    with pytest.raises(SpecError, match="recipe parameter is profile 'paper' but its profile parameter says"):
        pipeline_recipe("quick", paper)
    assert pipeline_recipe("", paper) == PROFILES["paper"]


def test_optimizer_arguments_written_as_yaml_1_1_text_are_numbers():
    recipe = resolve_recipe("quick", ["qlora.optimizer=sgd", "qlora.optimizer_args.momentum=9e-1"])
    assert recipe.qlora.optimizer_args == {"momentum": 0.9}


@pytest.mark.slow
def test_set_reaches_the_trained_bundle(study_run, tmp_path):
    """A recipe changed by --set, passed as the pipeline passes it (JSON), trains; the bundle records it."""
    import json

    from cohortlm.models.bundle import read_bundle_metadata
    from cohortlm.models.training import TrainingFigures
    from cohortlm.run import steps

    overrides = [
        "qlora.learning_rate=5e-3",
        "qlora.lora_r=2",
        "qlora.lr_schedule=linear",
        "qlora.max_steps=3",
    ]
    recipe = pipeline_recipe("smoke", resolve_recipe("smoke", overrides).to_json())
    info = steps.train_llm_step(
        str(study_run.split), study_run.spec, recipe, "", str(tmp_path / "bundle"), str(tmp_path / "work")
    )
    meta = read_bundle_metadata(tmp_path / "bundle")
    assert meta["recipe"] == recipe.to_dict() == info["recipe"]
    assert (
        meta["recipe"]["qlora"]["learning_rate"] == 5e-3
        and meta["recipe"]["qlora"]["lr_schedule"] == "linear"
    )
    config = meta["training"]["config"]  # what train_qlora actually ran
    assert (config["learning_rate"], config["lora_r"], config["lr_schedule"]) == (5e-3, 2, "linear")
    assert TrainingFigures.from_bundle(tmp_path / "bundle").steps == 3  # not the smoke profile's 8
    adapter = json.loads((tmp_path / "bundle" / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 2


@pytest.mark.slow
def test_runs_compare_shows_what_the_recipes_changed(tmp_path, capsys):
    """Two run folders whose summaries record the recipe: compare names each changed key with both values."""
    import json

    from stats_run_folder import make_run_folder

    from cohortlm.cli import main

    recipes = {
        "20260101-100000-aaaaaa": PROFILES["quick"],
        "20260102-100000-bbbbbb": resolve_recipe(
            "quick", ["qlora.learning_rate=3.3e-4", "qlora.lora_layers=7"]
        ),
    }
    for seed, (run_id, recipe) in enumerate(recipes.items(), start=1):
        folder = make_run_folder(tmp_path / run_id, seed=seed, candidate_gain=0.3)
        assert main(["--quiet", "report", str(folder)]) == 0
        summary = {"run_id": run_id, "study": "ra_iorra", "profile": "quick", "recipe": recipe.to_dict()}
        (folder / "summary.json").write_text(json.dumps(summary))
    a, b = recipes
    capsys.readouterr()
    assert main(["runs", "compare", a, b, "--dir", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    quick = PROFILES["quick"].qlora
    assert out["recipe_differences"] == {
        "qlora.learning_rate": {"a": quick.learning_rate, "b": 3.3e-4},
        "qlora.lora_layers": {"a": quick.lora_layers, "b": 7},
    }
    assert out["b"]["recipe"]["qlora"]["lora_layers"] == 7
    assert main(["runs", "compare", a, b, "--dir", str(tmp_path)]) == 0
    shown = (
        f"qlora.learning_rate {quick.learning_rate} -> 0.00033; qlora.lora_layers {quick.lora_layers} -> 7"
    )
    assert f"recipe: {shown}" in capsys.readouterr().out
    assert main(["runs", "compare", a, a, "--dir", str(tmp_path)]) == 0
    assert "recipe: the same in both runs" in capsys.readouterr().out


@pytest.mark.slow
def test_the_optimizer_named_in_the_recipe_is_the_one_that_trains(study_run, tmp_path):
    """Same data, seed and first loss; the second step's loss differs when --set names another optimizer."""
    from cohortlm.models.bundle import read_bundle_metadata
    from cohortlm.run import steps

    losses = {}
    for name in ("adamw", "sgd"):
        recipe = resolve_recipe(
            "smoke", ["qlora.max_steps=3", f"qlora.optimizer={name}", "qlora.warmup_ratio=0"]
        )
        out = tmp_path / name
        steps.train_llm_step(str(study_run.split), study_run.spec, recipe, "", str(out / "b"), str(out / "w"))
        training = read_bundle_metadata(out / "b")["training"]
        assert training["config"]["optimizer"] == name
        losses[name] = training["losses"]
    assert losses["adamw"][0] == pytest.approx(losses["sgd"][0])  # before any update: the same model
    assert losses["adamw"][1:] != pytest.approx(losses["sgd"][1:], abs=1e-6)
