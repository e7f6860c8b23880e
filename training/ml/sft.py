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
import os
import random
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from training.ml.checkpoints import fresh_tmp, load_training_state, read_state, replace_dir, save_training_state  # noqa: E402
from training.ml.configs import SFTConfig  # noqa: E402
from training.ml.data import Example, load_examples  # noqa: E402

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


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def run(config: SFTConfig, *, kind: str, output_dir: Path, reporter: Any, resume_from: Path | None) -> dict:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    from training.ml.evaluate import evaluate_policy
    from training.ml.policy import Policy
    from annotation.qa.text import load_splitter

    quiet_transformers()
    output_dir = Path(output_dir)
    if not config.train_file:
        raise ValueError("train_file is not set: name the policy-input file to train on")
    train = load_examples(config.train_file, need_answer=True, limit=config.max_train_examples)
    dev = load_examples(config.eval_file, need_answer=True, limit=config.max_eval_examples) if config.eval_file else []
    set_seed(config.seed)
    accelerator = Accelerator(mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum)
    main = accelerator.is_main_process

    state: dict[str, Any] = {"step": 0, "best": None, "best_step": 0, "last_eval_step": -1}
    if resume_from is not None:
        state.update(read_state(resume_from, needs=("policy",)))
        source = str(Path(resume_from) / "policy")
    else:
        texts = [e.text for e in train] + [a for e in train for a in e.answers]
        if main:
            source = resolve_model(config.model_name_or_path, output_dir=output_dir, texts=texts, seed=config.seed, reporter=reporter)
        accelerator.wait_for_everyone()
        source = resolve_model(config.model_name_or_path, output_dir=output_dir, texts=texts, seed=config.seed, reporter=reporter)
    policy = Policy.load(source, device=accelerator.device)
    nlp, _ = load_splitter(config.sentence_splitter)

    processes, rank = accelerator.num_processes, accelerator.process_index
    batches_per_epoch = math.ceil(len(train) / config.batch_size)
    # Every process takes the same number of optimizer steps, or the gradient all-reduce would hang.
    steps_per_epoch = max(1, batches_per_epoch // (processes * config.grad_accum))
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, total_steps)
    if resume_from is not None:
        load_training_state(Path(resume_from), optimizer=optimizer, scheduler=scheduler)
    model, optimizer = accelerator.prepare(policy.model, optimizer)
    policy.model = model
    model_dir, last_dir = output_dir / "model", output_dir / "checkpoints" / "last"
    if resume_from is not None and not (model_dir / "config.json").is_file():
        state.update(best=None, best_step=0)  # resumed into a new folder: the best is chosen afresh
    announced = {"last": False}

    def save_last() -> None:
        accelerator.wait_for_everyone()
        if not main:
            return
        tmp = fresh_tmp(last_dir)
        policy.save(tmp / "policy")
        save_training_state(tmp, optimizer=optimizer, scheduler=scheduler,
                            state={**state, "config": dataclasses.asdict(config)})
        replace_dir(tmp, last_dir)
        if not announced["last"]:
            reporter.artifact(kind="checkpoint", name="last", path="checkpoints/last", step=state["step"])
            announced["last"] = True

    def save_model() -> None:
        tmp = fresh_tmp(model_dir)
        policy.save(tmp)
        replace_dir(tmp, model_dir)

    def evaluate_and_keep_best() -> None:
        state["last_eval_step"] = state["step"]
        if not dev:
            return
        report = evaluate_policy(policy, dev, reward_fn=None, nlp=nlp, batch_size=config.eval_batch_size,
                                 max_input_len=config.max_input_len, max_new_tokens=config.max_output_len,
                                 num_samples=3, accelerator=accelerator)
        if main:
            reporter.metrics(state["step"], report.metrics)
            for sample in report.samples:
                reporter.sample(state["step"], prompt=sample["prompt"], text=sample["text"],
                                segments=[{"text": sample["text"], "reward": None, "label": ""}] if sample["text"] else [],
                                total_reward=None)
        score = report.metrics["eval/rouge_lsum"]
        if state["best"] is None or score > state["best"]:
            state.update(best=score, best_step=state["step"])
            if main:
                save_model()
                reporter.artifact(kind="model", name="best", path="model", step=state["step"], rouge_lsum=score)
        accelerator.wait_for_everyone()

    reporter.start(total_steps=total_steps, resumed_from_step=state["step"], train_examples=len(train),
                   eval_examples=len(dev), processes=processes)
    model.train()
    running, running_n = 0.0, 0
    micro = config.batch_size
    while state["step"] < total_steps:
        epoch, skip = divmod(state["step"], steps_per_epoch)
        order = list(range(len(train)))
        random.Random(config.seed + epoch).shuffle(order)
        batches = [order[i : i + micro] for i in range(0, len(order), micro)]
        for local_step in range(skip, steps_per_epoch):
            if state["step"] >= total_steps:
                break
            for k in range(config.grad_accum):
                indices = batches[(local_step * config.grad_accum + k) * processes + rank]
                batch = sft_batch(policy, [train[i] for i in indices], max_input_len=config.max_input_len,
                                  max_output_len=config.max_output_len)
                batch = {key: value.to(accelerator.device) for key, value in batch.items()}
                with accelerator.accumulate(model), accelerator.autocast():
                    loss = sft_loss(model, batch, is_seq2seq=policy.is_seq2seq)
                    # accumulate() divides by grad_accum: micro-batch losses are averaged, not summed.
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad()
                running += float(loss.detach())
                running_n += 1
            scheduler.step()
            state["step"] += 1
            step = state["step"]
            reporter.progress(step)
            if step % config.log_every == 0 or step == total_steps:
                reporter.metrics(step, {"train/loss": running / max(1, running_n), "train/lr": scheduler.get_last_lr()[0],
                                        "train/epoch": step / steps_per_epoch})
                running, running_n = 0.0, 0
            if config.eval_every and step % config.eval_every == 0:
                evaluate_and_keep_best()
                save_last()
        if not config.eval_every and state["step"] % steps_per_epoch == 0 and state["last_eval_step"] != state["step"]:
            evaluate_and_keep_best()
            save_last()
    if state["last_eval_step"] != state["step"]:
        evaluate_and_keep_best()
        save_last()
    if main and not dev:
        save_model()  # without a dev file the last model is the model
        reporter.artifact(kind="model", name="last", path="model", step=state["step"])
    accelerator.wait_for_everyone()
    return {"step": state["step"], "best_rouge_lsum": state["best"], "best_step": state["best_step"]}
