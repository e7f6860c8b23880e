"""Detox PPO: training.ml.ppo's rollout, rewards-with-KL, GAE and clipped updates, with a toxicity scorer's rewards.

No SFT: the policy is a causal LM (GPT-2 in the paper) used as is, and it is also
the frozen KL reference and, by default, the LM whose perplexity measures fluency.
The kind picks the reward: `ppo_detox_holistic` puts 1 - tox(y) on the last token,
`ppo_detox_fine_grained` puts each sentence's toxicity drop on its last token.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.ml.checkpoints import CheckpointFolders, load_training_state
from training.ml.configs import ConfigError
from training.ml.data import load_examples
from training.ml.detox.config import DETOX_FINE_GRAINED, TINY_POLICY, DetoxPPOConfig
from training.ml.detox.rewards import FINE_GRAINED, HOLISTIC, DetoxReward
from training.ml.detox.scorers import ScorerError, build_scorer
from training.ml.loop import Loop
from training.ml.ppo import PPOTrainer, _check_processes, _load_models, _start_state, linear_warmup_decay
from training.ml.progress import quiet_transformers

SCORER_CACHE = "scorer_cache.jsonl"


def build_reward(config: DetoxPPOConfig, *, kind: str, tokenizer: Any, nlp: Any, output_dir: Path) -> DetoxReward:
    try:
        scorer = build_scorer(config.scorer, model=config.scorer_model, toxic_label=config.toxic_label,
                              batch_size=config.scorer_batch_size, lexicon=config.lexicon_words,
                              requests_per_second=config.perspective_requests_per_second,
                              key_env=config.perspective_key_env, url=config.perspective_url,
                              cache_file=output_dir / SCORER_CACHE)
    except ScorerError as exc:
        raise ConfigError([("scorer", str(exc))]) from None
    mode = FINE_GRAINED if kind == DETOX_FINE_GRAINED else HOLISTIC
    return DetoxReward(scorer=scorer, tokenizer=tokenizer, nlp=nlp, mode=mode)


@dataclass
class DetoxTrainer(PPOTrainer):
    """PPOTrainer with the detox evaluation (samples per prompt, toxicity, perplexity, dist-n)."""

    perplexity_lm: Any = None
    same_tokens: bool = True

    def evaluate(self) -> float | None:
        from training.ml.detox.evaluate import evaluate_detox

        if not self.dev:
            return None
        report = evaluate_detox(self.policy, self.dev, reward_fn=self.reward_fn, perplexity_lm=self.perplexity_lm,
                                same_tokens=self.same_tokens, config=self.config, accelerator=self.accelerator)
        if self.accelerator.is_main_process:
            step = self.state["step"]
            self.reporter.metrics(step, report.metrics)
            for sample in report.samples:
                self.reporter.sample(step, prompt=sample["prompt"], text=sample["text"], segments=sample["segments"],
                                     total_reward=sample["total_reward"])
        return report.metrics["eval/mean_reward"]


def _with_tiny_policy(config: DetoxPPOConfig, *, output_dir: Path, texts: list[str], accelerator: Any) -> DetoxPPOConfig:
    """`{tiny_gpt2}`: a tiny random GPT-2 built (once, seeded, so a resume finds the same one) in the run folder."""
    if config.policy_model.strip() != TINY_POLICY:
        return config
    from training.ml.tiny import build_tiny_causal_lm

    folder = output_dir / "tiny_policy"
    if accelerator.is_main_process and not (folder / "config.json").is_file():
        build_tiny_causal_lm(folder, texts=texts, seed=config.seed)
    accelerator.wait_for_everyone()
    return dataclasses.replace(config, policy_model=str(folder))


def run(config: DetoxPPOConfig, *, kind: str, output_dir: Path, reporter: Any, resume_from: Path | None,
        reward_fn: Any = None) -> dict:
    """The detox PPO run; `reward_fn` replaces the configured scorer's reward (benchmarks)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from annotation.qa.text import load_splitter
    from training.ml.policy import Policy

    quiet_transformers()
    problems = config.problems_for(kind)
    if problems:
        raise ConfigError(problems)
    output_dir = Path(output_dir)
    train_examples = load_examples(config.train_file, limit=config.max_train_examples)
    dev = load_examples(config.eval_file, limit=config.max_eval_examples) if config.eval_file else []
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    _check_processes(config, accelerator.num_processes)
    set_seed(config.seed)
    config = _with_tiny_policy(config, output_dir=output_dir, texts=[e.text for e in train_examples + dev],
                               accelerator=accelerator)
    state = _start_state(kind, output_dir=output_dir, resume_from=resume_from)
    policy, reference, value = _load_models(config, resume_from=resume_from, device=accelerator.device)
    if policy.is_seq2seq:
        raise ConfigError([("policy_model", f"{config.policy_model} is a seq2seq model; the detox task trains a causal LM")])
    nlp, splitter = load_splitter(config.sentence_splitter)
    reward_fn = reward_fn or build_reward(config, kind=kind, tokenizer=policy.tokenizer, nlp=nlp, output_dir=output_dir)
    perplexity_lm, same_tokens = reference, True
    if config.perplexity_model.strip():
        perplexity_lm = Policy.load(config.perplexity_model, device=accelerator.device)
        perplexity_lm.model.requires_grad_(False)
        same_tokens = perplexity_lm.tokenizer.get_vocab() == policy.tokenizer.get_vocab()

    total_steps = math.ceil(config.total_episodes / (config.prompts_per_step * config.samples_per_prompt))
    optimizer = torch.optim.Adam(list(policy.model.parameters()) + list(value.parameters()),
                                 lr=config.learning_rate, eps=config.adam_eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_warmup_decay(config.warmup_steps, total_steps))
    if resume_from is not None:
        load_training_state(resume_from, optimizer=optimizer, scheduler=scheduler)
    policy.model, value_model, optimizer = accelerator.prepare(policy.model, value, optimizer)
    policy.model.eval()  # dropout off: the PPO ratio of the first epoch must be exactly 1
    value_model.eval()

    trainer = DetoxTrainer(config=config, kind=kind, state=state, accelerator=accelerator, policy=policy,
                           reference=reference, value_model=value_model, optimizer=optimizer, scheduler=scheduler,
                           reward_fn=reward_fn, judge_fn=None, nlp=nlp, train_examples=train_examples, dev=dev,
                           reporter=reporter, checkpoints=CheckpointFolders(output_dir, reporter),
                           perplexity_lm=perplexity_lm, same_tokens=same_tokens)
    loop = Loop(state, total_steps=total_steps, eval_every=config.eval_every,
                save_every=config.save_every or config.eval_every, reporter=reporter, accelerator=accelerator,
                evaluate_first=resume_from is None)  # step 0: the initial LM's figures are the baseline
    loop.run(trainer, kind=kind, train_examples=len(train_examples), eval_examples=len(dev),
             processes=accelerator.num_processes, sentence_splitter=splitter, scorer=config.scorer)
    accelerator.wait_for_everyone()
    return {"step": state["step"], "best_mean_reward": state["best"], "best_step": state["best_step"], "kind": kind}
