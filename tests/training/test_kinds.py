"""The run-kind registry and the typed configs every kind's settings go through (presets, form, CLI)."""

import dataclasses
import importlib
import io
import json
import signal
import typing

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.qa.errors import Refused
from training import kinds
from training.inputs import InputError
from training.kinds import KINDS
from training.ml.configs import ConfigError, PPOConfig, TokenRMConfig, field_docs, from_dict
from training.models import TrainingRun
from tests.training.run_fixtures import token_rm_file  # noqa: F401


def _load(ref: str):
    module_name, _, name = ref.partition(":")
    return getattr(importlib.import_module(module_name), name)


# ---------------------------------------------------------------- the registry


def test_every_kind_names_a_trainer_function_and_its_config_class():
    for name, kind in KINDS.items():
        assert kind.name == name and kind.label
        assert callable(_load(kind.trainer)), kind.trainer
        assert _load(kind.config_class_ref) is kind.config_class
        assert kind.entry_args() == [name, "--trainer", kind.trainer, "--config-class", kind.config_class_ref]


def test_every_preset_of_every_kind_loads_and_validates():
    for name, kind in KINDS.items():
        presets = kind.preset_names()
        assert "tiny" in presets and kind.default_preset() in presets, name
        for preset in presets:
            config = kind.build_config(preset=preset)
            assert isinstance(config, kind.config_class), (name, preset)
            assert set(kind.load_preset(preset)) <= {f.name for f in dataclasses.fields(kind.config_class)}


def test_every_model_field_a_kind_declares_is_a_text_setting_filled_by_kinds_that_exist():
    for name, kind in KINDS.items():
        hints = typing.get_type_hints(kind.config_class)
        assert kind.inputs.models, name
        for field_name, sources in kind.inputs.models.items():
            assert hints[field_name] is str, (name, field_name)
            assert set(sources) <= set(KINDS), (name, field_name)


@pytest.mark.django_db
def test_the_database_choices_are_the_registry_and_need_no_migration():
    assert TrainingRun._meta.get_field("kind").choices == kinds.choices() == [(k.name, k.label) for k in KINDS.values()]
    call_command("makemigrations", "training", "--check", "--dry-run", stdout=io.StringIO())


def test_an_unknown_kind_is_refused_naming_the_field():
    with pytest.raises(ConfigError) as caught:
        kinds.get("rm_nonsense")
    assert caught.value.problems == [("kind", f"unknown run kind 'rm_nonsense'; expected one of {', '.join(KINDS)}")]
    with pytest.raises(ConfigError, match="no preset 'huge' for sft; available: paper, tiny"):
        KINDS["sft"].load_preset("huge")


# ---------------------------------------------------------------- the config classes


def test_every_setting_of_every_config_class_has_a_docstring():
    for kind in KINDS.values():
        docs = field_docs(kind.config_class)
        assert list(docs) == [f.name for f in dataclasses.fields(kind.config_class)]
        assert all(docs.values()), [name for name, text in docs.items() if not text]
    # A subclass's own docstring wins over its base's.
    assert field_docs(TokenRMConfig)["learning_rate"] == "Peak AdamW learning rate (paper: 5e-6)."


def test_configs_are_dataclasses_that_refuse_wrong_types_instead_of_coercing_them():
    config = from_dict(PPOConfig, {"top_k": 10, "learning_rate": 1, "kl_coef": None})
    assert (config.top_k, config.learning_rate) == (10, 1.0) and isinstance(config.learning_rate, float)
    assert dataclasses.asdict(dataclasses.replace(config, seed=7))["seed"] == 7
    with pytest.raises(ConfigError) as caught:
        from_dict(PPOConfig, {"top_k": "10", "scale_rewards": 1, "mixed_precision": "fp32", "temperature": True, "typo": 1})
    problems = dict(caught.value.problems)
    assert set(problems) == {"typo", "top_k", "scale_rewards", "mixed_precision", "temperature"}
    assert problems["top_k"] == "expected int, got '10'"
    assert problems["typo"].startswith("unknown setting; known settings: ")


def test_a_config_error_is_the_application_refusal_naming_its_first_field():
    error = ConfigError([("epochs", "must be at least 1"), ("seed", "expected int, got 'x'")])
    assert isinstance(error, Refused) and isinstance(error, ValueError)
    assert error.field == "epochs" and error.status == 422
    assert str(error) == "epochs: must be at least 1; seed: expected int, got 'x'"
    assert issubclass(InputError, Refused)


# ---------------------------------------------------------------- the trainer's command line


def _entry(tmp_path, *args, config: dict):
    from training.ml.entry import main

    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    handler = signal.getsignal(signal.SIGTERM)  # main() installs its own; give pytest its handler back
    try:
        return main([*args, "--config", str(config_file), "--output-dir", str(tmp_path / "out"), "--no-wandb"])
    finally:
        signal.signal(signal.SIGTERM, handler)


def test_the_entry_point_validates_the_config_through_the_class_it_is_given(tmp_path):
    code = _entry(tmp_path, *KINDS["rm_relevance"].entry_args(), config={"learning_rate": "fast", "epochs": 0})
    assert code == 2
    (event,) = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert event["event"] == "error" and event["message"] == "invalid config: learning_rate: expected float, got 'fast'"


def test_the_entry_point_needs_a_trainer_and_a_config_class(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        _entry(tmp_path, "sft", "--trainer", "training.ml.sft:run", config={})
    assert caught.value.code == 2 and "--config-class" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _entry(tmp_path, "sft", "--trainer", "not a reference", "--config-class", "training.ml.configs:SFTConfig", config={})
    assert "is not MODULE:NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _entry(tmp_path, "sft", "--trainer", "training.ml.sft:run", "--config-class", "training.ml.configs:Nope", config={})
    assert "--config-class training.ml.configs:Nope" in capsys.readouterr().err


# ---------------------------------------------------------------- the launch form and the command line refuse what the class refuses


@pytest.mark.django_db
def test_a_bad_set_value_is_refused_naming_the_field(token_rm_file):
    for setting, expected in (
        ("learning_rate=fast", "learning_rate: expected float, got 'fast'"),
        ("best_metric=loss", "best_metric: expected Literal, got 'loss'"),
        ("labels=[O, Ignore]", "labels: 'Ignore' is the unlabelled tag, not a label"),
        ("nonsense=1", "nonsense: unknown setting"),
    ):
        with pytest.raises(CommandError, match="the run was not created") as caught:
            call_command("launch_run", "rm_relevance", "--train-file", str(token_rm_file), "--preset", "tiny", "--set", setting)
        assert expected in str(caught.value), setting
    assert TrainingRun.objects.count() == 0


def _launch(client, token_rm_file, **fields):
    data = {"kind": "rm_relevance", "preset": "tiny", "train_split": "", "eval_split": "",
            "train_file": SimpleUploadedFile("train.json", token_rm_file.read_bytes())}
    data.update(fields)
    response = client.post(reverse("training:run_launch"), data)
    assert response.status_code == 400
    return response.content.decode()


@pytest.mark.django_db
def test_the_launch_form_refuses_what_the_config_class_refuses_beside_each_setting(researcher_client, token_rm_file):
    # Wrong types first (the table's inputs and the overrides box alike)...
    page = _launch(researcher_client, token_rm_file, **{"cfg-mixed_precision": "fp32", "overrides": "seed: forty-two"})
    assert 'id="err-mixed_precision">expected one of no, fp16, bf16, got &#x27;fp32&#x27;' in page
    assert 'id="err-seed">expected int, got &#x27;forty-two&#x27;' in page
    # ...then the class's own range checks, once every value has its type.
    page = _launch(researcher_client, token_rm_file, **{"cfg-labels": '["O", "Ignore"]', "cfg-warmup_ratio": "1.5"})
    assert 'id="err-labels">&#x27;Ignore&#x27; is the unlabelled tag, not a label' in page
    assert 'id="err-warmup_ratio">must be in [0, 1)' in page
    assert TrainingRun.objects.count() == 0
