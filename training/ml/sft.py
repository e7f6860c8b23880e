"""Supervised fine-tuning of the policy: `text` -> `answer[0]`, best checkpoint by dev ROUGE-Lsum.

A seq2seq model (T5 in the paper) learns the answer as its decoder target; a
causal model (GPT-2 style) learns it as the continuation of the prompt and
its end-of-text marker, with the loss on the answer tokens only. The loss of
a batch is the mean over its answer tokens.

Writes `OUTPUT_DIR/model` (the best model by `eval/rouge_lsum`, the SFT policy
for PPO) and `OUTPUT_DIR/checkpoints/last` (model, optimizer, scheduler and
step), from which `resume_from` continues at the saved step.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.ml.checkpoints import CheckpointFolders, load_training_state, read_state, save_folder, save_training_state
from training.ml.configs import SFTConfig
from training.ml.data import Example, load_examples
from training.ml.distributed import configure_deepspeed, full_state_dict, gathered, optimizer_is_sharded
from training.ml.loop import Loop, RunningMean, epoch_batches, loss_report
from training.ml.perf import Throughput, parameter_count, peak_flops, training_flops
from training.ml.progress import quiet_transformers

TINY_T5_PLACEHOLDER = "{tiny_t5}"
TINY_GPT2_PLACEHOLDER = "{tiny_gpt2}"
IGNORE_INDEX = -100


# ---------------------------------------------------------------- batches


def sft_batch(policy: Any, examples: list[Example], *, max_input_len: int, max_output_len: int) -> dict[str, Any]:
    """Model inputs and labels for a batch; labels are -100 wherever no answer token is predicted."""
    import torch

    tokenizer = policy.tokenizer
    targets = [tokenizer(e.target, add_special_tokens=False)["input_ids"][: max_output_len - 1] + [policy.eos_token_id]
               for e in examples]
    if policy.is_seq2seq:
        prompts = policy.encode_prompts([e.text for e in examples], max_input_len=max_input_len)
        width = max(len(t) for t in targets)
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        for i, t in enumerate(targets):
            labels[i, : len(t)] = torch.tensor(t)
        return {"input_ids": prompts.input_ids, "attention_mask": prompts.attention_mask, "labels": labels}
    limit = policy.max_prompt_tokens(max_input_len, max_output_len)
    rows = [(policy.causal_prompt_ids(e.text, limit), t) for e, t in zip(examples, targets)]
    width = max(len(p) + len(t) for p, t in rows)
    ids = torch.full((len(rows), width), policy.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, (p, t) in enumerate(rows):  # right padding: the loss never looks past a row's last label
        ids[i, : len(p) + len(t)] = torch.tensor(p + t)
        mask[i, : len(p) + len(t)] = 1
        labels[i, len(p) : len(p) + len(t)] = torch.tensor(t)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "position_ids": positions}


def sft_loss(model: Any, batch: dict[str, Any], *, is_seq2seq: bool) -> Any:
    import torch.nn.functional as F

    if is_seq2seq:
        return model(**batch).loss
    labels = batch["labels"]
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    # Position i predicts token i + 1.
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1),
                           ignore_index=IGNORE_INDEX)


# ---------------------------------------------------------------- run


def resolve_model(name: str, *, output_dir: Path, texts: list[str], seed: int, reporter: Any) -> str:
    """The model folder to start from; a tiny placeholder builds a tiny model from the training texts."""
    from training.ml.tiny import build_tiny_gpt2, build_tiny_t5

    builders = {TINY_T5_PLACEHOLDER: build_tiny_t5, TINY_GPT2_PLACEHOLDER: build_tiny_gpt2}
    if name not in builders:
        return name
    folder = output_dir / name.strip("{}")
    if not (folder / "config.json").is_file():
        reporter.log(f"model_name_or_path is {name}: building a tiny model from the training texts")
        builders[name](folder, texts=texts, seed=seed)
    return str(folder)


def run(config: SFTConfig, *, kind: str, output_dir: Path, reporter: Any, resume_from: Path | None) -> dict:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    from annotation.qa.text import LazySplitter
    from training.ml.memory import enable_gradient_checkpointing, make_optimizer
    from training.ml.policy import Policy

    quiet_transformers()
    output_dir = Path(output_dir)
    if not config.train_file:
        raise ValueError("train_file is not set: name the policy-input file to train on")
    train = load_examples(config.train_file, need_answer=True, limit=config.max_train_examples)
    dev = load_examples(config.eval_file, need_answer=True, limit=config.max_eval_examples) if config.eval_file else []
    set_seed(config.seed)
    accelerator = Accelerator(mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum)
    state: dict[str, Any] = {"step": 0, "best": None, "best_step": 0, "last_eval_step": -1}
    if resume_from is not None:
        state.update(read_state(resume_from, needs=("policy",)))
        source = str(Path(resume_from) / "policy")
    else:
        source = _starting_model(config, output_dir=output_dir, train=train, reporter=reporter, accelerator=accelerator)
    policy = Policy.load(source, device=accelerator.device)
    nlp = LazySplitter(config.sentence_splitter)  # ROUGE-Lsum's sentences: loaded at the first evaluation

    processes = accelerator.num_processes
    batches_per_epoch = math.ceil(len(train) / config.batch_size)
    # Every process takes the same number of optimizer steps, or the gradient all-reduce would hang.
    steps_per_epoch = max(1, batches_per_epoch // (processes * config.grad_accum))
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(policy.model)
    optimizer = make_optimizer(policy.model.parameters(), kind="adamw", lr=config.learning_rate,
                               weight_decay=config.weight_decay, eight_bit=config.optim_8bit, device=accelerator.device)
    scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, total_steps)
    if resume_from is not None and state.get("optimizer_sharded"):  # see distributed.py: moments start afresh
        scheduler.load_state_dict(torch.load(Path(resume_from) / "scheduler.pt", map_location="cpu", weights_only=True))
    elif resume_from is not None:
        load_training_state(Path(resume_from), optimizer=optimizer, scheduler=scheduler)
    configure_deepspeed(accelerator, micro_batch_size=config.batch_size, grad_accum=config.grad_accum,
                        max_grad_norm=config.max_grad_norm)
    policy.model, optimizer = accelerator.prepare(policy.model, optimizer)
    if resume_from is not None and not (output_dir / "model" / "config.json").is_file():
        state.update(best=None, best_step=0)  # resumed into a new folder: the best is chosen afresh

    trainer = SFTTrainer(config=config, state=state, accelerator=accelerator, policy=policy, optimizer=optimizer,
                         scheduler=scheduler, train=train, dev=dev, nlp=nlp, reporter=reporter, output_dir=output_dir,
                         checkpoints=CheckpointFolders(output_dir, reporter), steps_per_epoch=steps_per_epoch,
                         total_steps=total_steps)
    policy.model.train()
    eval_every = config.eval_every or steps_per_epoch
    loop = Loop(state, total_steps=total_steps, eval_every=eval_every, save_every=eval_every, reporter=reporter,
                accelerator=accelerator)
    loop.run(trainer, train_examples=len(train), eval_examples=len(dev), processes=processes)
    if accelerator.is_main_process and not dev:
        trainer.save_model()  # without a dev file the last model is the model
        reporter.artifact(kind="model", name="last", path="model", step=state["step"])
    accelerator.wait_for_everyone()
    return {"step": state["step"], "best_rouge_lsum": state["best"], "best_step": state["best_step"]}


def _starting_model(config: SFTConfig, *, output_dir: Path, train: list[Example], reporter: Any, accelerator: Any) -> str:
    """The model folder a fresh run starts from; the main process builds a tiny one first if asked to."""
    texts = [e.text for e in train] + [a for e in train for a in e.answers]
    if accelerator.is_main_process:
        resolve_model(config.model_name_or_path, output_dir=output_dir, texts=texts, seed=config.seed, reporter=reporter)
    accelerator.wait_for_everyone()
    return resolve_model(config.model_name_or_path, output_dir=output_dir, texts=texts, seed=config.seed, reporter=reporter)


@dataclass
class SFTTrainer:
    """One SFT optimizer step, the dev ROUGE-Lsum evaluation and the saved model and checkpoint, for `Loop`."""

    config: SFTConfig
    state: dict[str, Any]
    accelerator: Any
    policy: Any  # policy.model is the prepared (possibly DDP-wrapped) module that trains
    optimizer: Any
    scheduler: Any
    train: list[Example]
    dev: list[Example]
    nlp: Any
    reporter: Any
    output_dir: Path
    checkpoints: CheckpointFolders
    steps_per_epoch: int
    total_steps: int
    running: RunningMean = field(default_factory=RunningMean)
    throughput: Throughput = field(default_factory=Throughput)
    full_weights: dict | None = None  # gathered from shards by every process before the main one saves

    def train_step(self, step: int) -> dict[str, float] | None:
        started = time.perf_counter()
        config, accelerator, model = self.config, self.accelerator, self.policy.model
        tokens = 0.0
        epoch, local_step = divmod(step, self.steps_per_epoch)
        batches = epoch_batches(len(self.train), config.batch_size, seed=config.seed, epoch=epoch)
        for k in range(config.grad_accum):
            indices = batches[(local_step * config.grad_accum + k) * accelerator.num_processes + accelerator.process_index]
            batch = sft_batch(self.policy, [self.train[i] for i in indices], max_input_len=config.max_input_len,
                              max_output_len=config.max_output_len)
            batch = {key: value.to(accelerator.device) for key, value in batch.items()}
            # Tokens through the model: the prompt (and, for a causal model, the answer) plus a seq2seq decoder's answer.
            tokens += float(batch["attention_mask"].sum())
            if self.policy.is_seq2seq:
                tokens += float(batch["labels"].ne(-100).sum())
            with accelerator.accumulate(model), accelerator.autocast():
                loss = sft_loss(model, batch, is_seq2seq=self.policy.is_seq2seq)
                # accumulate() divides by grad_accum: micro-batch losses are averaged, not summed.
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad()
            self.running.add(float(loss.detach()))
        self.scheduler.step()
        if not hasattr(self, "_params"):
            self._params = parameter_count(model)
        self.throughput.add(seconds=time.perf_counter() - started, tokens=tokens,
                            samples=float(config.batch_size * config.grad_accum), flops=training_flops(self._params, tokens))
        report = loss_report(self.running, self.scheduler, done=step + 1, every=config.log_every,
                             total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch)
        if report is not None:
            report.update(self.throughput.pop(processes=accelerator.num_processes, peak=peak_flops(accelerator.device)))
        return report

    def evaluate(self) -> float | None:
        from training.ml.evaluate import evaluate_policy

        self.state["last_eval_step"] = self.state["step"]
        if not self.dev:
            return None
        config, step = self.config, self.state["step"]
        with gathered(self.accelerator, self.policy.model):
            report = evaluate_policy(self.policy, self.dev, reward_fn=None, nlp=self.nlp,
                                     batch_size=config.eval_batch_size, max_input_len=config.max_input_len,
                                     max_new_tokens=config.max_output_len, num_samples=3, accelerator=self.accelerator)
        if self.accelerator.is_main_process:
            self.reporter.metrics(step, report.metrics)
            for sample in report.samples:
                self.reporter.sample(step, prompt=sample["prompt"], text=sample["text"],
                                     segments=[{"text": sample["text"], "reward": None, "label": ""}] if sample["text"] else [],
                                     total_reward=None)
        return report.metrics["eval/rouge_lsum"]

    def save(self, name: str) -> None:
        """`best`: the policy alone in OUTPUT_DIR/model; `last`: policy, optimizer, scheduler and state."""
        self.full_weights = full_state_dict(self.accelerator, self.policy.model)
        if name == "best":
            if self.accelerator.is_main_process:
                self.save_model()
                self.reporter.artifact(kind="model", name="best", path="model", step=self.state["step"],
                                       rouge_lsum=self.state["best"])
            self.accelerator.wait_for_everyone()
            return
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            self.checkpoints.save("last", self._write_checkpoint, step=self.state["step"])

    def save_model(self) -> None:
        save_folder(self.output_dir / "model", lambda folder: self.policy.save(folder, state_dict=self.full_weights))

    def _write_checkpoint(self, folder: Path) -> None:
        self.policy.save(folder / "policy", state_dict=self.full_weights)
        state = {**self.state, "config": dataclasses.asdict(self.config)}
        if optimizer_is_sharded(self.accelerator):
            state.update(optimizer_sharded=True, processes=self.accelerator.num_processes)
        save_training_state(folder, optimizer=self.optimizer, scheduler=self.scheduler, state=state)
