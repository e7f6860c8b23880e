"""Typed trainer configs: one class per trainer family, a docstring per field, clear refusals.

Each class is a pydantic dataclass (so `dataclasses.asdict`, `fields` and
`replace` work in trainer code) in strict mode: a value of the wrong type is
refused rather than coerced, an unknown setting is refused, and `validate()`
checks the ranges once the types are right. `from_dict` gathers every problem
as (field, message) in one `ConfigError`, so a researcher's typo is refused
with the field's name instead of surfacing as a crash on a GPU node.

Which kind trains with which class, and its presets, is declared in
`training/kinds.py`; this module knows no run kinds but the two PPO settings
whose paper values differ. Pure: no torch, no Django.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, ValidationError
from pydantic.dataclasses import dataclass

from annotation.qa.errors import Refused
from annotation.qa.vocab import IGNORE as IGNORE_TAG

# Preset files: PRESETS_DIR/<kind>/<name>.yaml, each a mapping of setting: value.
PRESETS_DIR = Path(__file__).resolve().parent / "presets"
# Strict: "20" is not an int and 1 is not a bool (an int is still a float); field docstrings become descriptions.
STRICT = ConfigDict(strict=True, extra="forbid", use_attribute_docstrings=True)

FINE_GRAINED = "ppo_fine_grained"
HOLISTIC = "ppo_holistic"
# Paper values that differ between the two PPO settings; a config leaves them None to get its kind's value.
KIND_DEFAULTS = {
    FINE_GRAINED: {"kl_coef": 0.3, "gae_lambda": 0.95},
    HOLISTIC: {"kl_coef": 0.2, "gae_lambda": 0.99},
}


class ConfigError(Refused):
    """Config values that cannot be used; `problems` lists every (field, message), `field` names the first."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__(
            "; ".join(f"{field}: {message}" for field, message in self.problems),
            field=self.problems[0][0] if self.problems else None,
        )


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build `cls` from a dict, refusing unknown keys and values of the wrong type, then checking ranges."""
    names = [f.name for f in dataclasses.fields(cls)]
    problems = [(key, f"unknown setting; known settings: {', '.join(sorted(names))}") for key in data if key not in names]
    values = {name: data[name] for name in names if name in data}
    try:
        instance = cls(**values)
    except ValidationError as exc:
        hints = typing.get_type_hints(cls)
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "config"
            if all(name != known for known, _ in problems):  # one problem per field (a list may have several)
                problems.append((name, f"expected {_type_name(hints[name])}, got {values[name]!r}" if name in values else error["msg"]))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    extra = instance.validate()
    if extra:
        raise ConfigError(list(extra))
    return instance


def field_docs(cls: type) -> dict[str, str]:
    """Per-field help text: each field's docstring (a subclass's own docstring wins over its base's)."""
    docs: dict[str, str] = {}
    for klass in cls.__mro__:
        for name, info in getattr(klass, "__pydantic_fields__", {}).items():
            if info.description and name not in docs:
                docs[name] = info.description
    return {f.name: docs.get(f.name, "") for f in dataclasses.fields(cls)}


# ---------------------------------------------------------------- supervised fine-tuning


@dataclass(config=STRICT)
class SFTConfig:
    """Supervised fine-tuning of the policy. Lengths follow the paper (1024 input, 200 output tokens)."""

    train_file: str = ""
    """Policy-input JSON file to train on (`text` -> `answer[0]`)."""
    eval_file: str = ""
    """Dev file for ROUGE-Lsum; empty = no evaluation, the last model is kept."""
    model_name_or_path: str = "t5-large"
    """Model to start from: a hub name or a folder (`{tiny_t5}` / `{tiny_gpt2}` = build a tiny one)."""
    max_input_len: int = 1024
    """Prompt tokens kept (the rest is cut off)."""
    max_output_len: int = 200
    """Answer tokens learned, and tokens generated in evaluation."""
    epochs: int = 10
    """Passes over the training file."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0 = all epochs)."""
    batch_size: int = 4
    """Examples per forward pass on each device."""
    grad_accum: int = 4
    """Forward passes accumulated per optimizer step."""
    learning_rate: float = 1e-4
    """Peak AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_steps: int = 0
    """Optimizer steps of linear learning-rate warm-up."""
    max_grad_norm: float = 1.0
    """Gradient-norm clipping threshold (0 = no clipping)."""
    eval_every: int = 0
    """Evaluate and checkpoint every N optimizer steps (0 = each epoch end)."""
    eval_batch_size: int = 8
    """Examples per greedy-decoding batch in evaluation."""
    max_train_examples: int = 0
    """Use only the first N training examples (0 = all)."""
    max_eval_examples: int = 0
    """Evaluate on the first N dev examples (0 = all)."""
    log_every: int = 10
    """Report the running training loss every N optimizer steps."""
    seed: int = 42
    """Seed for initialisation and data order."""
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    """accelerate mixed precision."""
    sentence_splitter: str = "sentencizer"
    """spaCy pipeline that puts sentences on lines for ROUGE-Lsum."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: most of their memory for about a third more compute."""
    optim_8bit: bool = False
    """AdamW with 8-bit moments (bitsandbytes; CUDA GPUs only)."""

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        if not self.model_name_or_path.strip():
            problems.append(("model_name_or_path", "name a model: a hub name, a folder or {tiny_t5}"))
        for name in ("max_input_len", "max_output_len", "epochs", "batch_size", "grad_accum", "eval_batch_size", "log_every"):
            if getattr(self, name) < 1:
                problems.append((name, "must be at least 1"))
        for name in ("max_steps", "warmup_steps", "eval_every", "max_train_examples", "max_eval_examples"):
            if getattr(self, name) < 0:
                problems.append((name, "must be 0 (off) or positive"))
        if not self.learning_rate > 0:
            problems.append(("learning_rate", "must be positive"))
        if self.weight_decay < 0:
            problems.append(("weight_decay", "must not be negative"))
        if self.max_grad_norm < 0:
            problems.append(("max_grad_norm", "must be 0 (off) or positive"))
        return problems


# ---------------------------------------------------------------- reward models


@dataclass(config=STRICT)
class CommonRMConfig:
    """What both reward-model trainers read: data, base encoder, optimisation, evaluation."""

    train_file: str = ""
    """Training file (filled by the run system from the exported dataset)."""
    eval_file: str = ""
    """Dev file evaluated during training; empty = no evaluation, the last model is kept."""
    base_model: str = "allenai/longformer-base-4096"
    """Hugging Face encoder to start from: a hub name or a local folder (`{tiny_encoder}` = build a tiny one)."""
    max_length: int = 2048
    """Longest input in tokens; capped by the model's position table."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases and LayerNorm)."""
    warmup_ratio: float = 0.1
    """Share of the steps spent warming the learning rate up linearly."""
    max_grad_norm: float = 1.0
    """Gradient-norm clipping threshold."""
    eval_batch_size: int = 12
    """Examples per evaluation batch."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0 = run all epochs)."""
    max_train_examples: int = 0
    """Use only the first N training examples (0 = all)."""
    max_eval_examples: int = 0
    """Evaluate on the first N dev examples only (0 = all)."""
    eval_every_steps: int = 0
    """Evaluate (and checkpoint) every N steps; 0 = at the end of each epoch."""
    log_every_steps: int = 10
    """Report the running train loss every N steps."""
    seed: int = 42
    """Seed for initialisation and data order."""
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    """accelerate mixed precision (the paper trained in bf16 on GPUs)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: most of their memory for about a third more compute."""
    optim_8bit: bool = False
    """AdamW with 8-bit moments (bitsandbytes; CUDA GPUs only)."""

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        if not self.base_model.strip():
            problems.append(("base_model", "name a model: a hub name or a folder"))
        for name in ("max_length", "batch_size", "eval_batch_size", "epochs", "log_every_steps"):
            if getattr(self, name) < 1:
                problems.append((name, "must be at least 1"))
        for name in ("max_steps", "max_train_examples", "max_eval_examples", "eval_every_steps"):
            if getattr(self, name) < 0:
                problems.append((name, "must be 0 (off) or positive"))
        if not self.learning_rate > 0:
            problems.append(("learning_rate", "must be positive"))
        if not 0 <= self.warmup_ratio < 1:
            problems.append(("warmup_ratio", "must be in [0, 1)"))
        if self.weight_decay < 0:
            problems.append(("weight_decay", "must not be negative"))
        if not self.max_grad_norm > 0:
            problems.append(("max_grad_norm", "must be positive"))
        return problems


@dataclass(config=STRICT)
class TokenRMConfig(CommonRMConfig):
    """R1 / R2 token-level reward model. Defaults follow the paper's train_rel_rm.sh / train_fact_rm.sh."""

    learning_rate: float = 5e-6
    """Peak AdamW learning rate (paper: 5e-6)."""
    epochs: int = 50
    """Passes over the training file (paper: 50)."""
    batch_size: int = 12
    """Examples per step on each device (paper: 12 on each of 2 GPUs)."""
    labels: list[str] = dataclasses.field(default_factory=list)
    """Segment labels in id order; empty = from the run kind (O/NF-ERR for R1, O/F-ERR for R2)."""
    best_metric: Literal["macro_f1", "accuracy"] = "macro_f1"
    """Dev metric that picks the saved model (the paper used accuracy)."""

    def validate(self) -> list[tuple[str, str]]:
        problems = super().validate()
        if IGNORE_TAG in self.labels:
            problems.append(("labels", f"{IGNORE_TAG!r} is the unlabelled tag, not a label"))
        if len(set(self.labels)) != len(self.labels):
            problems.append(("labels", "labels must be distinct"))
        if self.labels and len(self.labels) < 2:
            problems.append(("labels", "need at least two labels"))
        return problems


@dataclass(config=STRICT)
class PreferenceRMConfig(CommonRMConfig):
    """R3 / holistic preference reward model. Defaults follow the paper's train_baseline_rm.sh."""

    learning_rate: float = 1e-5
    """Peak AdamW learning rate (paper: 1e-5 holistic, 5e-5 R3)."""
    epochs: int = 50
    """Passes over the training records; max_steps usually stops first."""
    batch_size: int = 4
    """Feedback records per step on each device; each brings all its non-tied pairs (paper: 6 pairs x 4 GPUs)."""
    eval_batch_size: int = 4
    """Records per evaluation batch."""
    max_steps: int = 6000
    """Stop after this many optimizer steps (paper: 6000; 0 = all epochs)."""
    eval_every_steps: int = 200
    """Evaluate (and checkpoint) every N steps (paper: 200); 0 = each epoch."""


# ---------------------------------------------------------------- PPO


def lora_problems(config: Any) -> list[tuple[str, str]]:
    """The LoRA settings' problems, for every policy config that has them (QA and detox PPO)."""
    problems: list[tuple[str, str]] = []
    if config.lora_r < 0:
        problems.append(("lora_r", "must be 0 (off) or positive"))
    if config.lora_alpha < 1:
        problems.append(("lora_alpha", "must be at least 1"))
    if not 0 <= config.lora_dropout < 1:
        problems.append(("lora_dropout", "must be in [0, 1)"))
    return problems


@dataclass(config=STRICT)
class PPOConfig:
    """PPO of the policy against reward models. Defaults are the paper's qa-feedback settings."""

    # -- data and models (paths are filled in by the run system)
    train_file: str = ""
    """Policy-input JSON file whose prompts are rolled out."""
    eval_file: str = ""
    """Dev file evaluated with greedy decoding; empty = no evaluation."""
    policy_model: str = ""
    """The SFT policy (folder or hub name); also the frozen reference policy."""
    value_model: str = ""
    """Where the value model starts (empty = a copy of the policy model's transformer with a new head)."""
    rm_relevance_model: str = ""
    """R1 relevance reward model folder (fine-grained; optional for holistic evaluation)."""
    rm_factuality_model: str = ""
    """R2 factuality reward model folder (fine-grained; optional for holistic evaluation)."""
    rm_completeness_model: str = ""
    """R3 completeness reward model folder (fine-grained; optional for holistic evaluation)."""
    rm_preference_model: str = ""
    """Holistic preference reward model folder (holistic runs)."""
    max_train_examples: int = 0
    """Use only the first N training prompts (0 = all)."""
    max_eval_examples: int = 0
    """Evaluate on the first N dev examples (0 = all)."""

    # -- rollout
    total_episodes: int = 80000
    """Sampled answers over the whole run (paper: 80,000)."""
    prompts_per_step: int = 8
    """Prompts per PPO step, over all devices (paper: 8)."""
    samples_per_prompt: int = 4
    """Answers sampled per prompt (paper: 4)."""
    max_input_len: int = 1024
    """Prompt tokens kept (paper: 1024)."""
    max_new_tokens: int = 200
    """Longest generated answer in tokens (paper: 200)."""
    top_k: int = 20
    """Sampling: keep the k most likely tokens (paper: 20; 0 = off)."""
    top_p: float = 1.0
    """Sampling: nucleus probability (1.0 = off, as in the paper)."""
    temperature: float = 0.7
    """Sampling temperature (paper: 0.7); log-probs use it too."""
    generation_batch_size: int = 32
    """Answers generated per call on each device."""

    # -- rewards
    kl_coef: float | None = None
    """beta of the per-token KL penalty (empty = paper: 0.3 fine-grained, 0.2 holistic)."""
    relevance_positive_reward: float = 0.3
    """R1 reward at a sub-sentence end judged `O`."""
    relevance_negative_reward: float = -0.3
    """R1 reward at a sub-sentence end judged an error."""
    factuality_positive_reward: float = 0.5
    """R2 reward at a sentence end judged `O`."""
    factuality_negative_reward: float = -0.5
    """R2 reward at a sentence end judged an error."""
    completeness_reward_scale: float = 0.3
    """R3 weight: the last token gets scale * (R3 - mean) / std."""
    scale_rewards: bool = True
    """Divide the rollout's token rewards by their std, keeping their mean."""

    # -- PPO
    gamma: float = 1.0
    """Discount (paper: 1)."""
    gae_lambda: float | None = None
    """GAE lambda (empty = paper: 0.95 fine-grained, 0.99 holistic)."""
    clip_range: float = 0.2
    """Policy ratio clip (paper: 0.2)."""
    clip_range_value: float = 0.2
    """Value clip around the rollout values (paper: 0.2)."""
    vf_coef: float = 1.0
    """Weight of the value loss."""
    ppo_epochs: int = 4
    """Passes over each rollout (paper: 4)."""
    train_batch_size: int = 32
    """Answers per optimizer update, over all devices (32 = the whole rollout)."""
    micro_batch_size: int = 4
    """Answers per forward pass on each device; the update averages them."""
    learning_rate: float = 1e-5
    """Adam learning rate of policy and value model (paper: 1e-5)."""
    adam_eps: float = 1e-8
    """Adam epsilon."""
    warmup_steps: int = 100
    """PPO steps of linear learning-rate warm-up; then linear decay to 0."""
    max_grad_norm: float = 0.0
    """Clip the gradient norm to this value (0 = no clipping)."""
    kl_threshold: float = 10.0
    """Stop a rollout's PPO epochs when KL(policy || reference) per answer exceeds this (paper: 10; 0 = off)."""

    # -- evaluation and checkpoints
    eval_every: int = 50
    """Evaluate on dev every N steps (and before the first)."""
    eval_batch_size: int = 16
    """Dev examples per greedy-decoding batch."""
    num_eval_samples: int = 4
    """Sample generations reported per evaluation."""
    save_every: int = 0
    """Save the last checkpoint every N steps (0 = at every evaluation)."""
    seed: int = 42
    """Seed; each step reseeds with seed + step, so a resumed run samples as the original would."""
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    """accelerate mixed precision."""
    sentence_splitter: str = "sentencizer"
    """spaCy pipeline that cuts answers into sentences and sub-sentences."""

    # -- memory savers (all off: the run is exactly as without them)
    gradient_checkpointing: bool = False
    """Recompute policy and value activations in the backward pass (less memory, about a third more compute)."""
    lora_r: int = 0
    """LoRA rank for policy and value model (0 = train all weights); with LoRA the reference is the policy with adapters off."""
    lora_alpha: int = 16
    """LoRA scaling numerator (the update is scaled by lora_alpha / lora_r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA path while training (PPO runs its passes in eval mode, so it stays off there)."""
    optim_8bit: bool = False
    """Adam with 8-bit moments (bitsandbytes; CUDA GPUs only)."""
    rm_dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights of the frozen reward models (bfloat16 halves their memory)."""

    def validate(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        problems.extend(lora_problems(self))
        for name in ("total_episodes", "prompts_per_step", "samples_per_prompt", "max_input_len", "max_new_tokens",
                     "generation_batch_size", "ppo_epochs", "train_batch_size", "micro_batch_size", "eval_every",
                     "eval_batch_size"):
            if getattr(self, name) < 1:
                problems.append((name, "must be at least 1"))
        for name in ("max_train_examples", "max_eval_examples", "top_k", "warmup_steps", "save_every", "num_eval_samples"):
            if getattr(self, name) < 0:
                problems.append((name, "must be 0 (off) or positive"))
        if not 0 < self.top_p <= 1:
            problems.append(("top_p", "must be in (0, 1]"))
        if not self.temperature > 0:
            problems.append(("temperature", "must be positive"))
        if self.kl_coef is not None and self.kl_coef < 0:
            problems.append(("kl_coef", "must not be negative"))
        if not 0 <= self.gamma <= 1:
            problems.append(("gamma", "must be in [0, 1]"))
        if self.gae_lambda is not None and not 0 <= self.gae_lambda <= 1:
            problems.append(("gae_lambda", "must be in [0, 1]"))
        for name in ("clip_range", "clip_range_value", "learning_rate", "adam_eps"):
            if not getattr(self, name) > 0:
                problems.append((name, "must be positive"))
        for name in ("vf_coef", "max_grad_norm", "kl_threshold", "completeness_reward_scale"):
            if getattr(self, name) < 0:
                problems.append((name, "must not be negative"))
        episodes = self.prompts_per_step * self.samples_per_prompt
        if self.train_batch_size >= 1 and episodes % self.train_batch_size:
            problems.append(("train_batch_size", f"must divide the answers per step ({self.prompts_per_step} x {self.samples_per_prompt} = {episodes})"))
        if self.micro_batch_size >= 1 and self.train_batch_size % self.micro_batch_size:
            problems.append(("micro_batch_size", f"must divide train_batch_size ({self.train_batch_size})"))
        return problems

    def problems_for(self, kind: str) -> list[tuple[str, str]]:
        """What this config lacks for a run of `kind` (the reward models each setting needs)."""
        problems = []
        if kind not in KIND_DEFAULTS:
            return [("kind", f"PPO runs are {FINE_GRAINED} or {HOLISTIC}, not {kind!r}")]
        if not self.policy_model.strip():
            problems.append(("policy_model", "name the SFT policy to start from"))
        if not self.train_file.strip():
            problems.append(("train_file", "name the file of training prompts"))
        needed = ("rm_relevance_model", "rm_factuality_model", "rm_completeness_model") if kind == FINE_GRAINED else ("rm_preference_model",)
        for name in needed:
            if not getattr(self, name).strip():
                problems.append((name, f"a {kind} run needs this reward model"))
        # `{tiny_t5}` / `{tiny_encoder}` build a fresh random model; SFT and reward-model runs accept them,
        # but PPO loads trained models, and would only fail later, in the worker, trying the model hub.
        for name in ("policy_model", "value_model", "rm_relevance_model", "rm_factuality_model",
                     "rm_completeness_model", "rm_preference_model"):
            value = getattr(self, name).strip()
            if value.startswith("{") and value.endswith("}"):
                problems.append((name, f"{value} builds an untrained model; PPO needs a trained one "
                                       "(a finished SFT or reward-model run's folder)"))
        return problems

    def resolved(self, kind: str) -> "PPOConfig":
        """A copy with the kind-dependent paper values filled in where left empty."""
        values = {k: v for k, v in KIND_DEFAULTS.get(kind, KIND_DEFAULTS[FINE_GRAINED]).items() if getattr(self, k) is None}
        return dataclasses.replace(self, **values)
