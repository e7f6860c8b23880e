"""PPO for a language-model policy with fine-grained or holistic rewards (paper section 4).

One step = one rollout and its updates:
  1. rollout: `prompts_per_step` prompts x `samples_per_prompt` sampled answers
     (top-k, temperature); log-probs under the policy and the frozen reference
     (the SFT model), values from the separate value model;
  2. rewards: the reward function's token rewards (rewards.py) minus
     `kl_coef * (log pi - log pi_ref)` on every token; optionally scaled by
     their std with the mean kept;
  3. GAE advantages (whitened) and returns;
  4. `ppo_epochs` passes over the rollout in mini-batches with the clipped
     policy loss (`pg_loss`) and clipped value loss (`vf_loss`), stopping
     early when the policy's KL from the reference passes `kl_threshold`.
The learning rate warms up linearly for `warmup_steps` steps, then decays
linearly to zero at the last step. Dev evaluation (evaluate.py) runs before
training and every `eval_every` steps; the best step by `eval/mean_reward`
and the last step are kept as resumable checkpoints.

Data parallel through accelerate: each process rolls out its share of the
step's prompts; statistics (reward scaling, advantage whitening, metrics,
early stopping) are reduced across processes so every process takes the
same decisions. The same code runs on one CPU for tests and the demo.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.ml.checkpoints import STATE_FILE, CheckpointFolders, load_training_state, read_state, save_training_state
from training.ml.configs import FINE_GRAINED, ConfigError, PPOConfig
from training.ml.data import load_examples
from training.ml.distributed import (
    configure_deepspeed,
    full_state_dict,
    gathered,
    is_deepspeed,
    is_sharded,
    no_sync,
    optimizer_is_sharded,
    prepare_pairs,
)
from training.ml.loop import Loop
from training.ml.perf import StepTimer, forward_flops, parameter_count, peak_flops, training_flops
from training.ml.progress import quiet_transformers
from training.ml.rewards import kl_penalized_rewards

# ---------------------------------------------------------------- tensor helpers


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool, accelerator: Any = None) -> torch.Tensor:
    """(x - mean) / std over the valid entries (of all processes); `shift_mean=False` adds the mean back."""
    stats = torch.stack([(x * mask).sum(), (x * x * mask).sum(), mask.sum()]).double()
    if accelerator is not None and accelerator.num_processes > 1:
        stats = accelerator.reduce(stats, reduction="sum")
    total, squares, count = stats.tolist()
    count = max(count, 1.0)
    mean = total / count
    var = max(squares / count - mean * mean, 0.0) * count / max(count - 1.0, 1.0)
    out = (x - mean) / math.sqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns; after an answer's end values and rewards are 0."""
    advantages = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] * mask[:, t + 1] if t + 1 < length else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        advantages[:, t] = last
    return advantages, (advantages + values) * mask


# ---------------------------------------------------------------- PPO maths (paper section 4; cleanrl's names)


@dataclass
class Rollout:
    """One step's sampled answers on this process, one row each, with what the update needs of them."""

    prompts: Any  # policy.Batch, one row per answer
    response: torch.Tensor
    mask: torch.Tensor
    logprobs: torch.Tensor  # under the policy that sampled them (the ratio's denominator)
    ref_logprobs: torch.Tensor  # under the frozen reference (the KL penalty)
    values: torch.Tensor
    scores: torch.Tensor  # the reward function's token rewards, no KL
    results: list  # the reward function's RewardResult per answer


@dataclass
class PPOLosses:
    pg_loss: torch.Tensor  # clipped policy loss
    vf_loss: torch.Tensor  # clipped value loss, halved
    approx_kl: torch.Tensor  # mean of (ratio - 1) - log ratio, a low-variance KL(old || new) estimate
    clipfrac: torch.Tensor  # share of tokens whose ratio left [1 - clip, 1 + clip]
    ratio: torch.Tensor  # pi_new / pi_old per token (1 on padding)


def ppo_losses(new_logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
               new_values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, *,
               clip_range: float, clip_range_value: float) -> PPOLosses:
    """The clipped PPO objectives of one micro-batch, each a mean over its answer tokens."""
    logratio = (new_logprobs - old_logprobs) * mask
    ratio = torch.exp(logratio)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    pg_loss = masked_mean(torch.max(pg_losses, pg_losses2), mask)
    v_clipped = old_values + torch.clamp(new_values - old_values, -clip_range_value, clip_range_value)
    vf_losses = torch.max((new_values - returns) ** 2, (v_clipped - returns) ** 2)
    vf_loss = 0.5 * masked_mean(vf_losses, mask)
    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1) - logratio, mask)
        clipfrac = masked_mean((torch.abs(ratio - 1.0) > clip_range).float(), mask)
    return PPOLosses(pg_loss=pg_loss, vf_loss=vf_loss, approx_kl=approx_kl, clipfrac=clipfrac, ratio=ratio)


def answer_kl_sum(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> float:
    """Sum over answers of each answer's KL(policy || reference) estimate, sum_t log pi - log pi_ref."""
    return float(((logprobs - ref_logprobs) * mask).sum())


def kl_exceeded(answer_kl: float, threshold: float) -> bool:
    """The early stop of a rollout's PPO epochs: mean KL per answer above the threshold (0 = never)."""
    return bool(threshold) and answer_kl > threshold


def mean_over_processes(values: dict[str, float], accelerator: Any) -> dict[str, float]:
    """The same numbers on every process: each key's mean over processes (keys sorted)."""
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=accelerator.device)
    if accelerator.num_processes > 1:
        tensor = accelerator.reduce(tensor, reduction="mean")
    return dict(zip(keys, tensor.tolist()))


def ppo_update(data: Rollout, advantages: torch.Tensor, returns: torch.Tensor, *, step: int, policy: Any,
               policy_model: Any, value_model: Any, optimizer: Any, accelerator: Any, config: PPOConfig) -> dict[str, float]:
    """`ppo_epochs` passes over a rollout; the mean losses, the epochs run and whether KL stopped them early.

    Each optimizer update takes `train_batch_size` answers (over all processes) in micro-batches whose
    losses are averaged, not summed; gradients are all-reduced once per update, at its last micro-batch.
    After each epoch the mean per-answer KL from the reference, the same on every process, stops the
    remaining epochs once it passes `kl_threshold`. Under DeepSpeed each model is an engine that
    averages its micro-batches and steps at the update's end itself (`configure_deepspeed`).
    """
    per_process_batch = config.train_batch_size // accelerator.num_processes
    micro_steps = per_process_batch // config.micro_batch_size
    sums = {"pg_loss": 0.0, "vf_loss": 0.0, "approx_kl": 0.0, "clipfrac": 0.0, "entropy": 0.0}
    passes, epochs_run, stopped = 0, 0, False
    rows = data.response.shape[0]
    mask = data.mask
    device = accelerator.device
    for epoch in range(config.ppo_epochs):
        order = torch.randperm(rows, generator=torch.Generator().manual_seed(config.seed + step * 101 + epoch))
        seq_kl_sum, seq_count = 0.0, 0
        for start in range(0, rows, per_process_batch):
            batch_rows = order[start : start + per_process_batch]
            for m in range(micro_steps):
                idx = batch_rows[m * config.micro_batch_size : (m + 1) * config.micro_batch_size].to(device)
                if len(idx) == 0:
                    continue
                mb_mask = mask[idx]
                width = max(1, int(mb_mask.sum(1).max()))
                mb_mask = mb_mask[:, :width]
                mb_resp = data.response[idx][:, :width]
                mb_prompts = data.prompts.rows(idx).trimmed(left_padded=not policy.is_seq2seq)
                # DDP: the gradient all-reduce waits for the update's last micro-batch.
                with no_sync(accelerator, (policy_model, value_model), sync=m == micro_steps - 1):
                    with accelerator.autocast():
                        new_logprobs, entropy = policy.score(mb_prompts, mb_resp, mb_mask, temperature=config.temperature,
                                                             model=policy_model, with_entropy=True)
                        new_values = value_model(mb_prompts.input_ids, mb_prompts.attention_mask, mb_resp, mb_mask)
                    losses = ppo_losses(new_logprobs, data.logprobs[idx][:, :width], advantages[idx][:, :width],
                                        new_values, data.values[idx][:, :width], returns[idx][:, :width], mb_mask,
                                        clip_range=config.clip_range, clip_range_value=config.clip_range_value)
                    backward(losses, accelerator=accelerator, policy_model=policy_model, value_model=value_model,
                             vf_coef=config.vf_coef, micro_steps=micro_steps)
                with torch.no_grad():
                    sums["pg_loss"] += float(losses.pg_loss)
                    sums["vf_loss"] += float(losses.vf_loss)
                    sums["approx_kl"] += float(losses.approx_kl)
                    sums["clipfrac"] += float(losses.clipfrac)
                    sums["entropy"] += float(masked_mean(entropy, mb_mask))
                    seq_kl_sum += answer_kl_sum(new_logprobs, data.ref_logprobs[idx][:, :width], mb_mask)
                    seq_count += len(idx)
                passes += 1
            if is_deepspeed(accelerator):
                continue  # the engines stepped (and clipped, by their config) at the update's last micro-batch
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(list(policy_model.parameters()) + list(value_model.parameters()), config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
        epochs_run += 1
        # Every process sees the same mean, so all stop together.
        epoch_kl = mean_over_processes({"kl": seq_kl_sum / max(1, seq_count)}, accelerator)["kl"]
        if kl_exceeded(epoch_kl, config.kl_threshold):
            stopped = True
            break
    out = {k: v / max(1, passes) for k, v in sums.items()}
    out.update({"ppo_epochs": float(epochs_run), "kl_early_stop": float(stopped)})
    return out


def backward(losses: PPOLosses, *, accelerator: Any, policy_model: Any, value_model: Any, vf_coef: float,
             micro_steps: int) -> None:
    """Gradients of one micro-batch's `pg_loss + vf_coef * vf_loss`, averaged over the update's micro-batches."""
    if is_deepspeed(accelerator):
        # Two engines, one per model; the losses share no weights, so each engine takes its own.
        policy_model.backward(losses.pg_loss)
        value_model.backward(vf_coef * losses.vf_loss)
        policy_model.step()
        value_model.step()
        return
    accelerator.backward((losses.pg_loss + vf_coef * losses.vf_loss) / micro_steps)


def linear_warmup_decay(warmup: int, total: int):
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


# ---------------------------------------------------------------- reward functions from config


def build_reward_fns(config: PPOConfig, *, kind: str, tokenizer: Any, nlp: Any, device: Any) -> tuple[Any, Any]:
    """(reward function of the run, fine-grained judge for holistic evaluation or None)."""
    from training.ml.memory import rm_dtype
    from training.ml.reward_models import PreferenceRewardModel, TokenRewardModel
    from training.ml.rewards import FineGrainedReward, FineGrainedWeights, HolisticReward

    dtype = rm_dtype(config.rm_dtype)

    weights = FineGrainedWeights(
        relevance_positive=config.relevance_positive_reward,
        relevance_negative=config.relevance_negative_reward,
        factuality_positive=config.factuality_positive_reward,
        factuality_negative=config.factuality_negative_reward,
        completeness_scale=config.completeness_reward_scale,
    )
    fine = None
    paths = (config.rm_relevance_model, config.rm_factuality_model, config.rm_completeness_model)
    if all(p.strip() for p in paths):
        for name, p in zip(("rm_relevance_model", "rm_factuality_model", "rm_completeness_model"), paths):
            if not Path(p).is_dir():
                raise ConfigError([(name, f"{p} is not a folder")])
        fine = FineGrainedReward(
            relevance=TokenRewardModel.load(paths[0], device=device, dtype=dtype),
            factuality=TokenRewardModel.load(paths[1], device=device, dtype=dtype),
            completeness=PreferenceRewardModel.load(paths[2], device=device, dtype=dtype),
            tokenizer=tokenizer, nlp=nlp, weights=weights,
        )
    if kind == FINE_GRAINED:
        return fine, None
    if not Path(config.rm_preference_model).is_dir():
        raise ConfigError([("rm_preference_model", f"{config.rm_preference_model} is not a folder")])
    holistic = HolisticReward(preference=PreferenceRewardModel.load(config.rm_preference_model, device=device, dtype=dtype),
                              tokenizer=tokenizer)
    return holistic, fine


# ---------------------------------------------------------------- the run


@functools.lru_cache(maxsize=2)
def _pass_order(num_examples: int, seed: int, data_pass: int) -> tuple[int, ...]:
    order = list(range(num_examples))
    random.Random(seed * 1_000_003 + data_pass).shuffle(order)
    return tuple(order)


def step_prompts(num_examples: int, *, step: int, per_step: int, seed: int) -> list[int]:
    """Indices of the prompts of `step`: consecutive slices of a fresh shuffle per pass over the data.

    A function of the step alone, so a resumed run rolls out the prompts the original would have.
    """
    out = []
    for position in range(step * per_step, (step + 1) * per_step):
        data_pass, offset = divmod(position, num_examples)
        out.append(_pass_order(num_examples, seed, data_pass)[offset])
    return out


def run(config: PPOConfig, *, kind: str, output_dir: Path, reporter: Any, resume_from: Path | None) -> dict:
    return train(config, kind=kind, output_dir=output_dir, reporter=reporter, resume_from=resume_from)


def train(
    config: PPOConfig,
    *,
    kind: str,
    output_dir: Path,
    reporter: Any,
    resume_from: Path | None,
    reward_fn: Any = None,
    judge_fn: Any = None,
) -> dict:
    """The PPO run. `reward_fn` / `judge_fn` replace the reward models named in the config (benchmarks)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from annotation.qa.text import LazySplitter

    quiet_transformers()
    config = _checked_config(config, kind, own_reward_fn=reward_fn is not None)
    output_dir = Path(output_dir)
    train_examples = load_examples(config.train_file, limit=config.max_train_examples)
    dev = load_examples(config.eval_file, need_answer=True, limit=config.max_eval_examples) if config.eval_file else []
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    _check_processes(config, accelerator.num_processes)
    _check_memory_savers(config, accelerator)
    set_seed(config.seed)
    state = _start_state(kind, output_dir=output_dir, resume_from=resume_from)
    policy, reference, value = _load_models(config, resume_from=resume_from, device=accelerator.device)
    # spaCy loads when text is first split: at once for fine-grained rewards, never for a holistic
    # run without a fine-grained judge or ROUGE evaluation.
    nlp = LazySplitter(config.sentence_splitter)
    if reward_fn is None:
        reward_fn, built_judge = build_reward_fns(config, kind=kind, tokenizer=policy.tokenizer, nlp=nlp,
                                                  device=accelerator.device)
        judge_fn = judge_fn or built_judge

    total_steps = math.ceil(config.total_episodes / (config.prompts_per_step * config.samples_per_prompt))
    optimizer, scheduler = _optimizers(config, policy.model, value, accelerator=accelerator, total_steps=total_steps)
    if resume_from is not None:
        _load_optimizer_state(resume_from, state, optimizer=optimizer, scheduler=scheduler, reporter=reporter)
    configure_deepspeed(accelerator, micro_batch_size=config.micro_batch_size,
                        grad_accum=config.train_batch_size // accelerator.num_processes // config.micro_batch_size,
                        max_grad_norm=config.max_grad_norm)
    if isinstance(optimizer, OptimizerPair):
        (policy.model, optimizer.policy), (value_model, optimizer.value) = prepare_pairs(
            accelerator, [(policy.model, optimizer.policy), (value, optimizer.value)])
    else:
        policy.model, value_model, optimizer = accelerator.prepare(policy.model, value, optimizer)
    # Dropout off: the PPO ratio of the first epoch must be exactly 1.
    _dropout_off(policy.model, checkpointing=config.gradient_checkpointing)
    _dropout_off(value_model, checkpointing=config.gradient_checkpointing)
    splitter = nlp.resolved if kind == FINE_GRAINED else f"{config.sentence_splitter} (loaded if text is split)"

    trainer = PPOTrainer(config=config, kind=kind, state=state, accelerator=accelerator, policy=policy,
                         reference=reference, value_model=value_model, optimizer=optimizer, scheduler=scheduler,
                         reward_fn=reward_fn, judge_fn=judge_fn, nlp=nlp, train_examples=train_examples, dev=dev,
                         reporter=reporter, checkpoints=CheckpointFolders(output_dir, reporter))
    loop = Loop(state, total_steps=total_steps, eval_every=config.eval_every,
                save_every=config.save_every or config.eval_every, reporter=reporter, accelerator=accelerator,
                evaluate_first=resume_from is None)  # step 0: the SFT policy's figures are the baseline
    loop.run(trainer, kind=kind, train_examples=len(train_examples), eval_examples=len(dev),
             processes=accelerator.num_processes, sentence_splitter=splitter,
             distributed=str(getattr(accelerator.distributed_type, "value", accelerator.distributed_type)))
    accelerator.wait_for_everyone()
    return {"step": state["step"], "best_mean_reward": state["best"], "best_step": state["best_step"], "kind": kind}


def _checked_config(config: PPOConfig, kind: str, *, own_reward_fn: bool) -> PPOConfig:
    problems = config.problems_for(kind)
    if own_reward_fn:
        problems = [p for p in problems if not p[0].startswith("rm_")]
    if problems:
        raise ConfigError(problems)
    return config.resolved(kind)


def _check_processes(config: PPOConfig, world: int) -> None:
    if config.prompts_per_step % world:
        raise ConfigError([("prompts_per_step", f"must be a multiple of the number of processes ({world})")])
    if config.train_batch_size % (config.micro_batch_size * world):
        raise ConfigError([("train_batch_size", f"must be a multiple of micro_batch_size x processes ({config.micro_batch_size} x {world})")])


def _start_state(kind: str, *, output_dir: Path, resume_from: Path | None) -> dict[str, Any]:
    state: dict[str, Any] = {"step": 0, "best": None, "best_step": None}
    if resume_from is None:
        return state
    state.update(read_state(resume_from, needs=("policy", "value")))
    if state.get("kind", kind) != kind:
        raise ConfigError([("resume_from", f"{resume_from} is a checkpoint of a {state['kind']} run, not {kind}")])
    if not (output_dir / "checkpoints" / "best" / STATE_FILE).is_file():
        state.update(best=None, best_step=None)  # resumed into a new folder: the best is chosen afresh
    return state


def _load_models(config: PPOConfig, *, resume_from: Path | None, device: Any) -> tuple[Any, Any, Any]:
    """The policy (trained), the frozen reference policy (the SFT model; None under LoRA) and the value model.

    Under LoRA the policy is the SFT model with adapters (fresh, or the checkpoint's), and the
    reference is that same model with its adapters switched off.
    """
    from training.ml.memory import adapter_folder, enable_gradient_checkpointing, with_lora
    from training.ml.policy import Policy
    from training.ml.value import ValueModel

    value_start = config.value_model or config.policy_model
    if config.lora_r:
        lora = {"r": config.lora_r, "alpha": config.lora_alpha, "dropout": config.lora_dropout}
        policy = Policy.load(config.policy_model, device=device)
        policy.model = with_lora(policy.model, **lora, adapter=adapter_folder(resume_from / "policy") if resume_from else None)
        reference = None
        value = ValueModel.load(value_start, device=device)
        value.trunk = with_lora(value.trunk, **lora, adapter=adapter_folder(resume_from / "value") if resume_from else None)
        if resume_from is not None:
            value.load_head(resume_from / "value")
    else:
        policy = Policy.load(resume_from / "policy" if resume_from else config.policy_model, device=device)
        reference = Policy.load(config.policy_model, device=device)
        reference.model.requires_grad_(False)
        reference.model.eval()
        value = ValueModel.load(resume_from / "value" if resume_from else value_start, device=device)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(policy.model)
        enable_gradient_checkpointing(value.trunk)
    return policy, reference, value


def _dropout_off(model: Any, *, checkpointing: bool) -> None:
    from training.ml.memory import train_without_dropout

    if checkpointing:
        train_without_dropout(model)  # transformers checkpoints only modules in training mode
    else:
        model.eval()


def _check_memory_savers(config: PPOConfig, accelerator: Any) -> None:
    from training.ml.memory import check_eight_bit

    if config.optim_8bit:
        check_eight_bit(accelerator.device)
    if config.lora_r and is_sharded(accelerator):
        raise ConfigError([("lora_r", "LoRA adapters are small enough to train unsharded: use DDP or ZeRO-2, not ZeRO-3 / FSDP")])


class OptimizerPair:
    """PPO's two optimizers under DeepSpeed (one engine per model), read and written as one."""

    def __init__(self, policy: Any, value: Any) -> None:
        self.policy, self.value = policy, value

    def step(self) -> None:
        self.policy.step()
        self.value.step()

    def zero_grad(self) -> None:
        self.policy.zero_grad()
        self.value.zero_grad()

    @property
    def param_groups(self) -> list:
        return [*self.policy.param_groups, *self.value.param_groups]

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "value": self.value.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])


def _optimizers(config: PPOConfig, policy_model: Any, value: Any, *, accelerator: Any, total_steps: int) -> tuple[Any, Any]:
    """Adam over the trainable weights of policy and value model (one per model under DeepSpeed), and its schedule."""
    from training.ml.memory import make_optimizer, trainable

    def adam(params: list) -> Any:
        return make_optimizer(params, kind="adam", lr=config.learning_rate, eps=config.adam_eps,
                              eight_bit=config.optim_8bit, device=accelerator.device)

    if is_deepspeed(accelerator):
        pair = OptimizerPair(adam(trainable(policy_model.parameters())), adam(trainable(value.parameters())))
        schedule = linear_warmup_decay(config.warmup_steps, total_steps)
        return pair, SchedulerPair(*(torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in (pair.policy, pair.value)))
    optimizer = adam(trainable(list(policy_model.parameters()) + list(value.parameters())))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_warmup_decay(config.warmup_steps, total_steps))
    return optimizer, scheduler


class SchedulerPair:
    """The same learning-rate schedule on both optimizers of an OptimizerPair."""

    def __init__(self, policy: Any, value: Any) -> None:
        self.policy, self.value = policy, value

    def step(self) -> None:
        self.policy.step()
        self.value.step()

    def get_last_lr(self) -> list[float]:
        return self.policy.get_last_lr()

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "value": self.value.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])


def _load_optimizer_state(folder: Path, state: dict, *, optimizer: Any, scheduler: Any, reporter: Any) -> None:
    """Optimizer and schedule of a checkpoint; a sharded optimizer's moments start afresh (see distributed.py)."""
    if state.get("optimizer_sharded"):
        scheduler.load_state_dict(torch.load(Path(folder) / "scheduler.pt", map_location="cpu", weights_only=True))
        reporter.log(f"{folder}: its optimizer state was sharded over {state.get('processes')} processes; "
                     "Adam's moments start afresh, weights, step and schedule are resumed")
        return
    load_training_state(folder, optimizer=optimizer, scheduler=scheduler)


@dataclass
class PPOTrainer:
    """One PPO step (rollout, rewards, advantages, update), the dev evaluation and the checkpoints, for `Loop`."""

    config: PPOConfig
    kind: str
    state: dict[str, Any]
    accelerator: Any
    policy: Any  # policy.model is the prepared (possibly DDP-wrapped) module that trains
    reference: Any  # None under LoRA: the policy with its adapters off
    value_model: Any
    optimizer: Any
    scheduler: Any
    reward_fn: Any
    judge_fn: Any
    nlp: Any
    train_examples: list
    dev: list
    reporter: Any
    checkpoints: CheckpointFolders

    def train_step(self, step: int) -> dict[str, float]:
        from accelerate.utils import set_seed

        config = self.config
        set_seed(config.seed + step)
        timer = StepTimer(self.accelerator.device)
        data = self.rollout(step, timer)
        penalized, kl = kl_penalized_rewards(data.scores, data.logprobs, data.ref_logprobs, data.mask,
                                             beta=float(config.kl_coef))
        rewards = penalized
        if config.scale_rewards:
            rewards = masked_whiten(penalized, data.mask, shift_mean=False, accelerator=self.accelerator)
        advantages, returns = gae(rewards, data.values, data.mask, gamma=config.gamma, lam=float(config.gae_lambda))
        advantages = masked_whiten(advantages, data.mask, shift_mean=True, accelerator=self.accelerator)
        with timer.section("training"):
            update = ppo_update(data, advantages, returns, step=step, policy=self.policy, policy_model=self.policy.model,
                                value_model=self.value_model, optimizer=self.optimizer, accelerator=self.accelerator,
                                config=config)
        lr_used = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        metrics = step_metrics(data, penalized, kl, update, lr=lr_used)
        metrics.update(self.perf(data, timer, epochs=update["ppo_epochs"]))
        return mean_over_processes(metrics, self.accelerator)

    def perf(self, data: Rollout, timer: StepTimer, *, epochs: float) -> dict[str, float]:
        """perf/: the step's time split, throughput and MFU (generation and scoring as forward passes, updates x3)."""
        if not hasattr(self, "_params"):
            self._params = (parameter_count(self.policy.model), parameter_count(self.value_model),
                            parameter_count(self.reference.model) if self.reference is not None else 0)
        policy_params, value_params, reference_params = self._params
        prompt_tokens = float(data.prompts.attention_mask.sum())
        answer_tokens = float(data.mask.sum())
        tokens = prompt_tokens + answer_tokens
        flops = (forward_flops(policy_params, tokens)  # generation: the prompt once, each answer token once
                 + forward_flops(policy_params + value_params + (reference_params or policy_params), tokens)
                 + epochs * training_flops(policy_params + value_params, tokens))
        return timer.metrics(tokens=tokens, samples=float(data.mask.shape[0]), flops=flops,
                             processes=self.accelerator.num_processes, peak=peak_flops(self.accelerator.device))

    def rollout(self, step: int, timer: StepTimer | None = None) -> Rollout:
        """This process's share of the step's prompts, each sampled `samples_per_prompt` times, and their scores."""
        config, policy, accelerator = self.config, self.policy, self.accelerator
        device = accelerator.device
        indices = step_prompts(len(self.train_examples), step=step, per_step=config.prompts_per_step, seed=config.seed)
        local = indices[accelerator.process_index :: accelerator.num_processes]
        examples = [self.train_examples[i] for i in local for _ in range(config.samples_per_prompt)]
        prompts = policy.encode_prompts([e.text for e in examples], max_input_len=config.max_input_len,
                                        max_new_tokens=config.max_new_tokens).to(device)
        timer = timer or StepTimer(device)
        responses, masks = [], []
        with timer.section("generation"), gathered(accelerator, policy.model):
            for start in range(0, len(examples), config.generation_batch_size):
                rows = prompts.rows(slice(start, start + config.generation_batch_size))
                with accelerator.autocast():
                    ids, mask = policy.generate(rows, max_new_tokens=config.max_new_tokens, do_sample=True,
                                                top_k=config.top_k, top_p=config.top_p, temperature=config.temperature)
                responses.append(ids)
                masks.append(mask)
        width = max(r.shape[1] for r in responses)
        response = torch.cat([torch.nn.functional.pad(r, (0, width - r.shape[1]), value=policy.pad_token_id) for r in responses])
        mask = torch.cat([torch.nn.functional.pad(m, (0, width - m.shape[1]), value=0) for m in masks]).float()
        with timer.section("scoring"):
            logprobs, ref_logprobs, values = self._score_rollout(prompts, response, mask)
            ids = [response[i][mask[i].bool()].tolist() for i in range(len(examples))]
            results = self.reward_fn(examples, ids)
        scores = torch.zeros_like(mask)
        for i, result in enumerate(results):
            scores[i, : len(result.token_rewards)] = torch.tensor(result.token_rewards, dtype=scores.dtype)
        return Rollout(prompts, response, mask, logprobs, ref_logprobs, values, scores.to(device), results)

    def _score_rollout(self, prompts: Any, response: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Log-probs under the policy and the reference, and values, of the sampled answers."""
        config = self.config
        logprobs, ref_logprobs, values = [], [], []
        # Same precision as the update's forward passes, so the first epoch's ratio is exactly 1.
        with torch.no_grad(), self.accelerator.autocast():
            for start in range(0, response.shape[0], config.micro_batch_size):
                sl = slice(start, start + config.micro_batch_size)
                p = prompts.rows(sl).trimmed(left_padded=not self.policy.is_seq2seq)
                lp, _ = self.policy.score(p, response[sl], mask[sl], temperature=config.temperature)
                rlp = self._reference_logprobs(p, response[sl], mask[sl])
                logprobs.append(lp)
                ref_logprobs.append(rlp)
                values.append(self.value_model(p.input_ids, p.attention_mask, response[sl], mask[sl]))
        return torch.cat(logprobs), torch.cat(ref_logprobs), torch.cat(values)

    def _reference_logprobs(self, prompts: Any, response: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from training.ml.memory import adapters_off

        if self.reference is not None:
            return self.reference.score(prompts, response, mask, temperature=self.config.temperature)[0]
        with adapters_off(self.policy.bare):
            return self.policy.score(prompts, response, mask, temperature=self.config.temperature)[0]

    def evaluate(self) -> float | None:
        from training.ml.evaluate import evaluate_policy

        if not self.dev:
            return None
        config, step = self.config, self.state["step"]
        with gathered(self.accelerator, self.policy.model):
            report = evaluate_policy(self.policy, self.dev, reward_fn=self.reward_fn, judge_fn=self.judge_fn,
                                     nlp=self.nlp, batch_size=config.eval_batch_size, max_input_len=config.max_input_len,
                                     max_new_tokens=config.max_new_tokens, num_samples=config.num_eval_samples,
                                     accelerator=self.accelerator)
        if self.accelerator.is_main_process:
            self.reporter.metrics(step, report.metrics)
            for sample in report.samples:
                self.reporter.sample(step, prompt=sample["prompt"], text=sample["text"], segments=sample["segments"],
                                     total_reward=sample["total_reward"])
        return report.metrics.get("eval/mean_reward")

    def save(self, name: str) -> None:
        """`checkpoints/last` or `checkpoints/best`: policy, value model, optimizer, scheduler and state."""
        self.accelerator.wait_for_everyone()
        # Sharded weights are gathered by every process; the main process writes them.
        self._full = (full_state_dict(self.accelerator, self.policy.model), full_state_dict(self.accelerator, self.value_model))
        if self.accelerator.is_main_process:
            self.checkpoints.save(name, self._write_checkpoint, step=self.state["step"])
            if name == "best":
                self.reporter.artifact(kind="model", name="best policy", path="checkpoints/best/policy",
                                       step=self.state["step"], mean_reward=self.state["best"])
        self.accelerator.wait_for_everyone()

    def _write_checkpoint(self, folder: Path) -> None:
        policy_weights, value_weights = getattr(self, "_full", (None, None))
        self.policy.save(folder / "policy", state_dict=policy_weights)
        self.accelerator.unwrap_model(self.value_model).save(folder / "value", state_dict=value_weights)
        state = {**self.state, "kind": self.kind, "config": dataclasses.asdict(self.config)}
        if optimizer_is_sharded(self.accelerator):
            state.update(optimizer_sharded=True, processes=self.accelerator.num_processes)
        save_training_state(folder, optimizer=self.optimizer, scheduler=self.scheduler, state=state)


def step_metrics(data: Rollout, penalized: torch.Tensor, kl: torch.Tensor, update: dict[str, float], *,
                 lr: float) -> dict[str, float]:
    """A step's figures on this process: the update's losses, KL, learning rate, lengths and rewards."""
    results = data.results
    n = max(1, len(results))
    metrics = {f"train/{k}": v for k, v in update.items()}
    metrics.update({
        "train/kl": (kl.sum(1)).mean().item(),
        "train/lr": lr,
        "train/response_length": float(data.mask.sum(1).mean()),
        "reward/mean": sum(r.total for r in results) / n,
        "reward/kl_penalized": float(penalized.sum(1).mean()),
    })
    for key in sorted({k for r in results for k in r.components}):
        metrics[f"reward/{key}"] = sum(r.components.get(key, 0.0) for r in results) / n
    return metrics
