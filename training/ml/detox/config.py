"""The detox PPO config: a GPT-2 (any causal LM) policy rewarded by a toxicity scorer, no SFT.

Its own class rather than PPOConfig with extra fields, so the launch form shows
the detox settings and none of qa-feedback's reward models. Field names shared
with PPOConfig mean the same thing, so training.ml.ppo's trainer runs either.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic.dataclasses import dataclass

from training.ml.configs import STRICT, lora_problems
from training.ml.detox.scorers import PERSPECTIVE_KEY_ENV, PERSPECTIVE_URL

DETOX_FINE_GRAINED = "ppo_detox_fine_grained"
DETOX_HOLISTIC = "ppo_detox_holistic"
DETOX_KINDS = (DETOX_HOLISTIC, DETOX_FINE_GRAINED)
# As policy_model: the trainer builds a tiny random GPT-2 (byte-level BPE trained on the prompts) in the run folder.
TINY_POLICY = "{tiny_gpt2}"


@dataclass(config=STRICT)
class DetoxPPOConfig:
    """PPO of a causal LM against a toxicity scorer (holistic or per-sentence rewards)."""

    # -- data and models (paths are filled in by the run system)
    train_file: str = ""
    """Prompt file (policy-input JSON: `text` is the prompt) whose prompts are rolled out."""
    eval_file: str = ""
    """Prompt file evaluated with `eval_samples_per_prompt` samples each; empty = no evaluation."""
    policy_model: str = "gpt2-large"
    """The causal LM to start from (hub name or folder; `{tiny_gpt2}` = build a tiny one); also the frozen KL reference."""
    value_model: str = ""
    """Where the value model starts (empty = the policy model's transformer with a new head)."""
    perplexity_model: str = ""
    """Reference LM whose perplexity of the generations measures fluency (empty = the initial policy)."""
    max_train_examples: int = 0
    """Use only the first N training prompts (0 = all)."""
    max_eval_examples: int = 0
    """Evaluate on the first N prompts (0 = all)."""

    # -- toxicity scorer
    scorer: Literal["perspective", "classifier", "lexicon"] = "perspective"
    """Which scorer gives toxicity: the Perspective API, a sequence classifier, or a word list."""
    scorer_model: str = ""
    """Classifier scorer: hub name or folder inside MODEL_ROOT of a sequence classifier."""
    toxic_label: str = "toxic"
    """Classifier scorer: the label (name or index) whose probability is the toxicity."""
    scorer_batch_size: int = 32
    """Classifier scorer: texts per forward pass."""
    lexicon_words: list[str] = dataclasses.field(default_factory=list)
    """Lexicon scorer: the word list (empty = a built-in list of mild words)."""
    perspective_key_env: str = PERSPECTIVE_KEY_ENV
    """Perspective scorer: environment variable holding the API key (on the worker)."""
    perspective_url: str = PERSPECTIVE_URL
    """Perspective scorer: the API endpoint."""
    perspective_requests_per_second: float = 1.0
    """Perspective scorer: request rate limit (the API's default quota is 1 per second)."""

    # -- rollout
    total_episodes: int = 80000
    """Sampled continuations over the whole run."""
    prompts_per_step: int = 8
    """Prompts per PPO step, over all devices."""
    samples_per_prompt: int = 4
    """Continuations sampled per prompt."""
    max_input_len: int = 128
    """Prompt tokens kept."""
    max_new_tokens: int = 20
    """Longest continuation in tokens (RealToxicityPrompts: 20)."""
    top_k: int = 0
    """Sampling: keep the k most likely tokens (0 = off)."""
    top_p: float = 0.9
    """Sampling: nucleus probability (RealToxicityPrompts: 0.9)."""
    temperature: float = 1.0
    """Sampling temperature; log-probs use it too."""
    generation_batch_size: int = 32
    """Continuations generated per call on each device."""

    # -- rewards and PPO
    kl_coef: float = 0.3
    """beta of the per-token KL penalty."""
    scale_rewards: bool = True
    """Divide the rollout's token rewards by their std, keeping their mean."""
    gamma: float = 1.0
    """Discount."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_range: float = 0.2
    """Policy ratio clip."""
    clip_range_value: float = 0.2
    """Value clip around the rollout values."""
    vf_coef: float = 1.0
    """Weight of the value loss."""
    ppo_epochs: int = 4
    """Passes over each rollout."""
    train_batch_size: int = 32
    """Continuations per optimizer update, over all devices."""
    micro_batch_size: int = 4
    """Continuations per forward pass on each device; the update averages them."""
    learning_rate: float = 1e-5
    """Adam learning rate of policy and value model."""
    adam_eps: float = 1e-8
    """Adam epsilon."""
    warmup_steps: int = 100
    """PPO steps of linear learning-rate warm-up; then linear decay to 0."""
    max_grad_norm: float = 0.0
    """Clip the gradient norm to this value (0 = no clipping)."""
    kl_threshold: float = 10.0
    """Stop a rollout's PPO epochs when KL(policy || reference) per continuation exceeds this (0 = off)."""

    # -- evaluation and checkpoints
    eval_every: int = 50
    """Evaluate every N steps (and before the first)."""
    eval_samples_per_prompt: int = 25
    """Continuations sampled per evaluation prompt (the literature: 25)."""
    toxicity_threshold: float = 0.5
    """A continuation at or above this toxicity counts as toxic (toxicity probability)."""
    eval_batch_size: int = 32
    """Continuations generated per evaluation batch."""
    num_eval_samples: int = 4
    """Prompts whose first continuation is reported on the run page per evaluation."""
    save_every: int = 0
    """Save the last checkpoint every N steps (0 = at every evaluation)."""
    seed: int = 42
    """Seed; each step reseeds with seed + step, so a resumed run samples as the original would."""
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    """accelerate mixed precision."""
    sentence_splitter: str = "sentencizer"
    """spaCy pipeline that cuts continuations into sentences (fine-grained rewards, the sample table)."""

    # -- memory savers (all off), as for QA PPO: the trainer is the same
    gradient_checkpointing: bool = False
    """Recompute policy and value activations in the backward pass (less memory, about a third more compute)."""
    lora_r: int = 0
    """LoRA rank for policy and value model (0 = train all weights); with LoRA the reference is the policy with adapters off."""
    lora_alpha: int = 16
    """LoRA scaling numerator (the update is scaled by lora_alpha / lora_r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA path while training."""
    optim_8bit: bool = False
    """Adam with 8-bit moments (bitsandbytes; CUDA GPUs only)."""

    def validate(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = lora_problems(self)
        for name in ("total_episodes", "prompts_per_step", "samples_per_prompt", "max_input_len", "max_new_tokens",
                     "generation_batch_size", "ppo_epochs", "train_batch_size", "micro_batch_size", "eval_every",
                     "eval_batch_size", "eval_samples_per_prompt", "scorer_batch_size"):
            if getattr(self, name) < 1:
                problems.append((name, "must be at least 1"))
        for name in ("max_train_examples", "max_eval_examples", "top_k", "warmup_steps", "save_every", "num_eval_samples"):
            if getattr(self, name) < 0:
                problems.append((name, "must be 0 (off) or positive"))
        if not 0 < self.top_p <= 1:
            problems.append(("top_p", "must be in (0, 1]"))
        for name in ("temperature", "clip_range", "clip_range_value", "learning_rate", "adam_eps",
                     "perspective_requests_per_second"):
            if not getattr(self, name) > 0:
                problems.append((name, "must be positive"))
        for name in ("kl_coef", "vf_coef", "max_grad_norm", "kl_threshold"):
            if getattr(self, name) < 0:
                problems.append((name, "must not be negative"))
        for name in ("gamma", "gae_lambda", "toxicity_threshold"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append((name, "must be in [0, 1]"))
        episodes = self.prompts_per_step * self.samples_per_prompt
        if self.train_batch_size >= 1 and episodes % self.train_batch_size:
            problems.append(("train_batch_size", f"must divide the continuations per step ({self.prompts_per_step} x {self.samples_per_prompt} = {episodes})"))
        if self.micro_batch_size >= 1 and self.train_batch_size % self.micro_batch_size:
            problems.append(("micro_batch_size", f"must divide train_batch_size ({self.train_batch_size})"))
        return problems

    def problems_for(self, kind: str) -> list[tuple[str, str]]:
        """What this config lacks for a run of `kind`."""
        problems = []
        if kind not in DETOX_KINDS:
            return [("kind", f"detox PPO runs are {' or '.join(DETOX_KINDS)}, not {kind!r}")]
        if not self.policy_model.strip():
            problems.append(("policy_model", "name the causal LM to start from"))
        if not self.train_file.strip():
            problems.append(("train_file", "name the file of training prompts"))
        if self.scorer == "classifier" and not self.scorer_model.strip():
            problems.append(("scorer_model", "the classifier scorer needs a sequence classifier (hub name or folder)"))
        for name in ("policy_model", "value_model", "perplexity_model", "scorer_model"):
            value = getattr(self, name).strip()
            if value.startswith("{") and value.endswith("}") and not (name == "policy_model" and value == TINY_POLICY):
                problems.append((name, f"{value} is a placeholder, not a model; name a folder or a hub model"))
        return problems
