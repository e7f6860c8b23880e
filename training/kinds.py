"""The run kinds: one entry each says everything Granary knows about a kind of training run.

Its label, the trainer function the child process runs and the config class
it reads, its presets (PRESETS_DIR/<name>/*.yaml), what it reads (the files
built from a dataset split and the config fields that name a model, with the
kinds whose finished runs can fill them) and what its run page shows. The
database choices, the launch form, the worker's command line and the input
builder all read these entries; adding a kind is adding one `Kind` to KINDS
(and its presets folder).

Pure: no Django, so `training/ml`'s tests and scripts can build configs here too.
`training/ml` itself never imports this module: the worker passes the trainer
and the config class on the trainer's command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from annotation.qa import vocab
from training.ml.configs import (
    PRESETS_DIR,
    ConfigError,
    PPOConfig,
    PreferenceRMConfig,
    SFTConfig,
    TokenRMConfig,
    from_dict,
)
from training.ml.detox.config import DETOX_FINE_GRAINED, DETOX_HOLISTIC, DetoxPPOConfig

# Preset picked when a kind is chosen: the paper's settings where a kind has them.
PREFERRED_PRESETS = ("paper", "default")


@dataclass(frozen=True)
class DatasetFiles:
    """The train/eval files the worker builds from a dataset split, into `<run folder>/inputs/<folder>/<split>.json`."""

    build: Literal["rm_file", "export"]
    """`rm_file`: annotation's reward-model file builder; `export`: a plain export of the split."""
    name: str
    """The reward-model file (NF-ERR_subsentence, F-ERR_sentence, COMP_sequence) or the export format."""
    folder: str
    """Folder under the run's `inputs/` that holds the built files."""
    needs: Literal["feedback", "inputs"]
    """What a split must hold to build them: feedback records, or policy inputs (the dev.json format, or derived
    from the feedback format when the split has no inputs file)."""


def rm_file(name: str) -> DatasetFiles:
    return DatasetFiles(build="rm_file", name=name, folder=name, needs="feedback")


FEEDBACK_EXPORT = DatasetFiles(build="export", name="feedback", folder="feedback", needs="feedback")
POLICY_INPUTS_EXPORT = DatasetFiles(build="export", name="inputs", folder="policy_inputs", needs="inputs")


@dataclass(frozen=True)
class Inputs:
    """What a run of the kind reads besides its settings."""

    files: DatasetFiles
    """How its train/eval files are built from a dataset split (uploaded files skip this)."""
    models: Mapping[str, tuple[str, ...]]
    """Config fields that name a model (a hub name or a folder inside MODEL_ROOT), each with the
    kinds whose succeeded runs can fill it on the launch form (none: typed in only)."""


@dataclass(frozen=True)
class Dashboard:
    """What the run page shows for the kind besides progress, metrics, log and files (which every run has)."""

    samples: str = ""
    """Caption of the Samples card for a trainer that reports generations; empty: it reports none,
    and the card appears only if a sample arrives anyway."""


@dataclass(frozen=True)
class Kind:
    """One kind of training run, as the whole project sees it."""

    name: str
    """The value stored in `TrainingRun.kind` and passed to the trainer."""
    label: str
    """What people read: the launch form's choice, the run page's heading."""
    trainer: str
    """`module:function` the child process runs: `run(config, *, kind, output_dir, reporter, resume_from) -> summary`."""
    config_class: type
    """The pydantic dataclass (training/ml/configs.py) that its settings, presets and overrides go through."""
    inputs: Inputs
    dashboard: Dashboard = field(default_factory=Dashboard)
    task: str = "qa_feedback"
    """The task (training/task_registry.py) whose data the kind trains on."""

    @property
    def config_class_ref(self) -> str:
        return f"{self.config_class.__module__}:{self.config_class.__qualname__}"

    def entry_args(self) -> list[str]:
        """The start of `python -m training.ml.entry`'s arguments for this kind."""
        return [self.name, "--trainer", self.trainer, "--config-class", self.config_class_ref]

    @property
    def presets_dir(self) -> Path:
        return PRESETS_DIR / self.name

    def preset_names(self) -> list[str]:
        folder = self.presets_dir
        return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []

    def default_preset(self) -> str:
        presets = self.preset_names()
        for name in PREFERRED_PRESETS:
            if name in presets:
                return name
        return presets[0] if presets else ""

    def load_preset(self, name: str) -> dict[str, Any]:
        path = self.presets_dir / f"{name}.yaml"
        if not path.is_file():
            available = ", ".join(self.preset_names()) or "none"
            raise ConfigError([("preset", f"no preset {name!r} for {self.name}; available: {available}")])
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError([("preset", f"{path.name} must hold a mapping")])
        return data

    def defaults(self) -> dict[str, Any]:
        """Every setting's default value, from the config class."""
        return {
            f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            for f in dataclasses.fields(self.config_class)
        }

    def build_config(self, *, preset: str | None = None, overrides: Mapping[str, Any] | None = None) -> Any:
        """The config class built from a preset with overrides on top; ConfigError names every bad field."""
        data: dict[str, Any] = dict(self.load_preset(preset)) if preset else {}
        data.update(overrides or {})
        return from_dict(self.config_class, data)


def _ppo_models() -> dict[str, tuple[str, ...]]:
    return {
        "policy_model": ("sft",),
        "value_model": ("sft",),
        "rm_relevance_model": ("rm_relevance",),
        "rm_factuality_model": ("rm_factuality",),
        "rm_completeness_model": ("rm_completeness",),
        "rm_preference_model": ("rm_preference",),
    }


def _token_rm(name: str, label: str, files: DatasetFiles) -> Kind:
    """R1 / R2: token classification at the segment separators of one reward-model file."""
    return Kind(name=name, label=label, trainer="training.ml.train_rm:run_token_rm", config_class=TokenRMConfig,
                inputs=Inputs(files=files, models={"base_model": ()}))


def _preference_rm(name: str, label: str, files: DatasetFiles) -> Kind:
    """R3 / holistic: one scalar per answer, trained on pairwise preferences."""
    return Kind(name=name, label=label, trainer="training.ml.train_rm:run_preference_rm",
                config_class=PreferenceRMConfig, inputs=Inputs(files=files, models={"base_model": ()}))


PPO_SAMPLES = "each segment coloured by its reward (green rewarded, red penalised)"


def _ppo(name: str, label: str) -> Kind:
    """PPO from an SFT policy; the kind's name picks holistic or fine-grained rewards in the trainer."""
    return Kind(name=name, label=label, trainer="training.ml.ppo:run", config_class=PPOConfig,
                inputs=Inputs(files=POLICY_INPUTS_EXPORT, models=_ppo_models()), dashboard=Dashboard(samples=PPO_SAMPLES))

DETOX_SAMPLES = "each sentence with the toxicity of the text up to its end (tox), coloured by its reward"


def _detox_ppo(name: str, label: str) -> Kind:
    """Detox PPO of a causal LM (no SFT) against a toxicity scorer; the kind's name picks the reward."""
    return Kind(name=name, label=label, trainer="training.ml.detox.ppo:run", config_class=DetoxPPOConfig,
                inputs=Inputs(files=POLICY_INPUTS_EXPORT, models={"policy_model": (), "value_model": (),
                                                                 "perplexity_model": (), "scorer_model": ()}),
                dashboard=Dashboard(samples=DETOX_SAMPLES), task="detox")


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            name="sft",
            label="Supervised fine-tuning",
            trainer="training.ml.sft:run",
            config_class=SFTConfig,
            inputs=Inputs(files=POLICY_INPUTS_EXPORT, models={"model_name_or_path": ()}),
            dashboard=Dashboard(samples="greedy answers on dev at the latest evaluation"),
        ),
        _token_rm("rm_relevance", "R1 relevance reward model (NF-ERR_subsentence)", rm_file(vocab.NF_ERR_SUBSENTENCE)),
        _token_rm("rm_factuality", "R2 factuality reward model (F-ERR_sentence)", rm_file(vocab.F_ERR_SENTENCE)),
        _preference_rm("rm_completeness", "R3 completeness reward model (COMP_sequence)", rm_file(vocab.COMP_SEQUENCE)),
        _preference_rm("rm_preference", "Holistic preference reward model", FEEDBACK_EXPORT),
        _ppo("ppo_holistic", "PPO with holistic reward"),
        _ppo("ppo_fine_grained", "PPO with fine-grained rewards"),
        _detox_ppo(DETOX_HOLISTIC, "Detox PPO with holistic toxicity reward"),
        _detox_ppo(DETOX_FINE_GRAINED, "Detox PPO with per-sentence toxicity rewards"),
    )
}
# The launch form's kind when none (or an unknown one) is asked for.
DEFAULT_KIND = "rm_relevance"


def get(name: str) -> Kind:
    """The kind called `name`; ConfigError (field `kind`) for a name that is none."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise ConfigError([("kind", f"unknown run kind {name!r}; expected one of {', '.join(KINDS)}")]) from None


def names() -> list[str]:
    return list(KINDS)


def choices() -> list[tuple[str, str]]:
    """(name, label) of every kind, in the registry's order: the model field's choices and the form's."""
    return [(kind.name, kind.label) for kind in KINDS.values()]


def build_config(name: str, *, preset: str | None = None, overrides: Mapping[str, Any] | None = None) -> Any:
    """`get(name).build_config(...)`: the config a run of this kind would train with."""
    return get(name).build_config(preset=preset, overrides=overrides)
