"""The pipelines: named graphs of run kinds that turn a dataset split into a trained policy in one go.

A pipeline is a list of stages; each stage is one ordinary run of a kind in
training/kinds.py, started once the stages it comes `after` have succeeded,
with the model settings named in `models` filled from those stages' saved
models. Presets are per pipeline (`tiny`, `paper`): each names the kind
preset every stage starts from and the settings it changes on top, so a
pipeline preset can size its stages for the whole run (the `tiny` one fits
the `fine_grained` pipeline on 400 training and 100 eval examples into a few
minutes on two CPU cores).

Pure: no Django. The orchestration (training/services.py) stores a pipeline's
state in the database and reads these entries; adding a pipeline is one
`register(PipelineSpec(...))` (the detox task adds its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from training import kinds
from training.ml.configs import ConfigError


@dataclass(frozen=True)
class Stage:
    """One run of a pipeline."""

    name: str
    """The stage's name in its pipeline (`sft`, `r1`, ...): what `--set STAGE.KEY=VALUE` and the page use."""
    kind: str
    """The run kind (training/kinds.py)."""
    label: str = ""
    after: tuple[str, ...] = ()
    """Stages that must have succeeded before this one starts."""
    models: Mapping[str, str] = field(default_factory=dict)
    """Config field -> stage whose saved model fills it (that stage must be in `after`)."""
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Pipeline preset -> settings on top of the kind preset (sizes for the whole pipeline)."""

    @property
    def title(self) -> str:
        return self.label or kinds.get(self.kind).label


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    label: str
    description: str
    stages: tuple[Stage, ...]
    presets: Mapping[str, str] = field(default_factory=lambda: {"tiny": "tiny", "paper": ""})
    """Pipeline preset -> the kind preset each stage starts from ("" : the kind's default preset)."""
    compare: tuple[str, ...] = ()
    """Policy stages whose evaluations the pipeline page shows side by side (PPO runs evaluate their
    starting SFT policy at step 0, so the SFT column comes from the first of them)."""
    task: str = "qa_feedback"

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ConfigError([("stage", f"pipeline {self.name} has no stage {name!r}; its stages: {', '.join(self.stage_names())}")])

    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    def preset_names(self) -> list[str]:
        return list(self.presets)

    def kind_preset(self, preset: str, stage: Stage) -> str:
        """The kind preset a stage starts from under a pipeline preset."""
        if preset not in self.presets:
            raise ConfigError([("preset", f"pipeline {self.name} has no preset {preset!r}; available: {', '.join(self.presets)}")])
        return self.presets[preset] or kinds.get(stage.kind).default_preset()

    def stage_settings(self, preset: str, stage: Stage, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The stage's overrides under `preset` with the researcher's `--set` values on top."""
        values = dict(stage.overrides.get(preset, {}))
        values.update(extra or {})
        return values

    def levels(self) -> list[list[Stage]]:
        """The stages in rounds: each round's stages need only earlier rounds (the page draws them as columns)."""
        placed: dict[str, int] = {}
        for stage in self.stages:  # registration order is a topological order (checked by `check`)
            placed[stage.name] = 1 + max((placed[a] for a in stage.after), default=-1)
        rounds: list[list[Stage]] = [[] for _ in range(max(placed.values(), default=-1) + 1)]
        for stage in self.stages:
            rounds[placed[stage.name]].append(stage)
        return rounds

    def check(self) -> None:
        """Refuse a malformed spec: unknown kinds, unknown or later `after` stages, model fields not from `after`."""
        seen: set[str] = set()
        problems: list[tuple[str, str]] = []
        for stage in self.stages:
            where = f"{self.name}.{stage.name}"
            if stage.name in seen:
                problems.append((where, "two stages share this name"))
            if stage.kind not in kinds.KINDS:
                problems.append((where, f"unknown run kind {stage.kind!r}"))
                continue
            for before in stage.after:
                if before not in seen:
                    problems.append((where, f"comes after {before!r}, which is not an earlier stage"))
            fields = kinds.get(stage.kind).inputs.models
            for field_name, source in stage.models.items():
                if field_name not in fields:
                    problems.append((where, f"{stage.kind} has no model setting {field_name!r}"))
                if source not in stage.after:
                    problems.append((where, f"{field_name} comes from {source!r}, which this stage does not come after"))
            seen.add(stage.name)
        if problems:
            raise ConfigError(problems)


PIPELINES: dict[str, PipelineSpec] = {}


def register(spec: PipelineSpec) -> PipelineSpec:
    """Add a pipeline (checked) to the registry; a second one of the same name replaces the first."""
    spec.check()
    PIPELINES[spec.name] = spec
    return spec


def get(name: str) -> PipelineSpec:
    try:
        return PIPELINES[name]
    except (KeyError, TypeError):
        raise ConfigError([("pipeline", f"unknown pipeline {name!r}; expected one of {', '.join(PIPELINES)}")]) from None


def names() -> list[str]:
    return list(PIPELINES)


def choices() -> list[tuple[str, str]]:
    return [(spec.name, spec.label) for spec in PIPELINES.values()]


def parse_set(values: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`STAGE.KEY=VALUE` strings as {stage: {key: value}}, values read as YAML (numbers, booleans, lists)
    the way a config file would; ConfigError names a malformed one."""
    out: dict[str, dict[str, Any]] = {}
    problems = []
    for item in values:
        target, sep, value = item.partition("=")
        stage, dot, key = target.strip().partition(".")
        if not sep or not dot or not stage or not key:
            problems.append(("set", f"{item!r} is not STAGE.KEY=VALUE"))
            continue
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed = value.strip()
        if isinstance(parsed, str):
            try:
                parsed = float(parsed) if parsed.strip() and parsed.strip()[0] in "+-.0123456789" else parsed
            except ValueError:
                pass  # YAML 1.1 reads `1e-4` as text; a number it is
        out.setdefault(stage.strip(), {})[key.strip()] = parsed
    if problems:
        raise ConfigError(problems)
    return out


# ---------------------------------------------------------------- the qa-feedback pipelines

_POLICY = {"policy_model": "sft", "value_model": "sft"}
_FINE_RMS = {"rm_relevance_model": "r1", "rm_factuality_model": "r2", "rm_completeness_model": "r3"}

# Sized for 400 training and 100 eval examples on two CPU cores with one worker (about 3 minutes for the
# fine_grained pipeline on a quiet machine, most of each stage its start-up: building inputs and a tiny
# model); the curves still move: SFT's loss falls over one epoch of the 400 prompts, the reward models'
# losses fall, PPO's reward is measured at step 0 (the SFT policy) and after its updates.
TINY_SFT = {"epochs": 1, "max_train_examples": 400, "max_eval_examples": 16, "batch_size": 16, "log_every": 5}
TINY_TOKEN_RM = {"epochs": 1, "max_steps": 30, "batch_size": 8, "max_length": 256, "max_train_examples": 240,
                 "max_eval_examples": 40, "log_every_steps": 5}
TINY_PREF_RM = {"max_steps": 40, "max_train_examples": 120, "max_eval_examples": 40, "eval_every_steps": 20}
TINY_PPO = {"total_episodes": 64, "max_eval_examples": 8, "eval_every": 4, "max_new_tokens": 24}


def _sft() -> Stage:
    return Stage("sft", "sft", label="SFT policy", overrides={"tiny": TINY_SFT})


def _fine_rms() -> tuple[Stage, ...]:
    return (
        Stage("r1", "rm_relevance", label="R1 relevance", overrides={"tiny": TINY_TOKEN_RM}),
        Stage("r2", "rm_factuality", label="R2 factuality", overrides={"tiny": TINY_TOKEN_RM}),
        Stage("r3", "rm_completeness", label="R3 completeness", overrides={"tiny": TINY_PREF_RM}),
    )


def _ppo_fine() -> Stage:
    return Stage("ppo", "ppo_fine_grained", label="Fine-grained PPO", after=("sft", "r1", "r2", "r3"),
                 models={**_POLICY, **_FINE_RMS}, overrides={"tiny": TINY_PPO})


register(PipelineSpec(
    name="fine_grained",
    label="Fine-grained RLHF",
    description="SFT, then the three fine-grained reward models (relevance, factuality, completeness), "
                "then PPO with fine-grained rewards, evaluated on the eval split.",
    stages=(_sft(), *_fine_rms(), _ppo_fine()),
    compare=("ppo",),
))

register(PipelineSpec(
    name="holistic",
    label="Holistic RLHF",
    description="SFT, then one preference reward model, then PPO with the holistic reward, evaluated on the eval split.",
    stages=(
        _sft(),
        Stage("rm", "rm_preference", label="Preference RM", overrides={"tiny": TINY_PREF_RM}),
        Stage("ppo", "ppo_holistic", label="Holistic PPO", after=("sft", "rm"),
              models={**_POLICY, "rm_preference_model": "rm"}, overrides={"tiny": TINY_PPO}),
    ),
    compare=("ppo",),
))

register(PipelineSpec(
    name="compare",
    label="Compare holistic and fine-grained (the paper's experiment)",
    description="One SFT policy shared by both; R1, R2, R3 and a preference RM; both PPO variants with the same "
                "budget; then SFT, holistic and fine-grained policies side by side on the eval split.",
    stages=(
        _sft(),
        *_fine_rms(),
        Stage("rm", "rm_preference", label="Preference RM", overrides={"tiny": TINY_PREF_RM}),
        Stage("ppo_fine_grained", "ppo_fine_grained", label="Fine-grained PPO", after=("sft", "r1", "r2", "r3"),
              models={**_POLICY, **_FINE_RMS}, overrides={"tiny": TINY_PPO}),
        # R1-R3 also judge the holistic policy, so both are measured by the same relevance/factuality/completeness.
        Stage("ppo_holistic", "ppo_holistic", label="Holistic PPO", after=("sft", "rm", "r1", "r2", "r3"),
              models={**_POLICY, "rm_preference_model": "rm", **_FINE_RMS}, overrides={"tiny": TINY_PPO}),
    ),
    compare=("ppo_fine_grained", "ppo_holistic"),
))


# ---------------------------------------------------------------- the detox pipelines (no SFT: a causal LM as is)

# Sized like the kind's tiny preset; the tiny preset's `{tiny_gpt2}` policy makes them run with no model at all
# (`--set ppo.policy_model=...` names a real causal LM; equal seeds give both compared runs the same start).
TINY_DETOX = {"total_episodes": 64, "max_eval_examples": 8, "eval_every": 4}


def _detox(name: str, kind: str, label: str) -> Stage:
    return Stage(name, kind, label=label, overrides={"tiny": TINY_DETOX})


register(PipelineSpec(
    name="detox_holistic",
    label="Detoxification, holistic reward",
    description="PPO of a causal LM (GPT-2 in the paper; no SFT) with 1 - toxicity on the last token, evaluated "
                "on the eval split's prompts (average maximum toxicity, toxicity probability, perplexity, dist-n).",
    stages=(_detox("ppo", "ppo_detox_holistic", "Holistic detox PPO"),),
    compare=("ppo",),
    task="detox",
))

register(PipelineSpec(
    name="detox_fine_grained",
    label="Detoxification, fine-grained reward",
    description="PPO of a causal LM (no SFT) rewarded after every sentence by the drop in toxicity it causes, "
                "evaluated on the eval split's prompts.",
    stages=(_detox("ppo", "ppo_detox_fine_grained", "Fine-grained detox PPO"),),
    compare=("ppo",),
    task="detox",
))

register(PipelineSpec(
    name="detox_compare",
    label="Compare holistic and fine-grained detoxification (the paper's experiment)",
    description="Both detox PPO variants from the same causal LM with the same budget, then the initial, holistic "
                "and fine-grained policies side by side on the eval split's prompts.",
    stages=(_detox("ppo_fine_grained", "ppo_detox_fine_grained", "Fine-grained detox PPO"),
            _detox("ppo_holistic", "ppo_detox_holistic", "Holistic detox PPO")),
    compare=("ppo_fine_grained", "ppo_holistic"),
    task="detox",
))
