"""Train the reward models of Fine-Grained RLHF (paper section 3 / FINE_GRAINED_RLHF.md section 3).

- `run_token_rm` (rm_relevance = R1 on NF-ERR_subsentence, rm_factuality = R2 on
  F-ERR_sentence): token classification over the word list; only the first
  sub-token of each `</s>` carries its segment's label, `Ignore` becomes -100.
  Dev precision/recall/F1 per class, macro F1 and accuracy are reported at
  every evaluation and the best checkpoint (by `best_metric`) is the saved model.
- `run_preference_rm` (rm_completeness = R3 on COMP_sequence, rm_preference =
  the holistic RM on feedback records with human preferences): one scalar per
  text, loss `-log sigmoid(s_preferred - s_other)` over every non-tied pair of
  the four predictions, pairwise accuracy on dev. After training, the mean and
  std of the best model's scores on the training split are saved beside it
  (`reward_stats.json`) and in its config, so PPO normalises without copying numbers.

Both write `OUTPUT_DIR/model` (the best model, loadable with
`training.ml.reward_models`) and `OUTPUT_DIR/checkpoints/last` (model,
optimizer, scheduler and step), from which `resume_from` continues.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotation.qa.vocab import (
    FACTUALITY_LABELS,
    FIRST_PREFERRED,
    NO_PREFERENCE,
    PREDICTION_KEYS,
    PREFERENCE_INDEX_PAIRS,
    RELEVANCE_LABELS,
    SECOND_PREFERRED,
)
from training.ml.checkpoints import (
    CheckpointFolders,
    load_training_state,
    read_state,
    save_folder,
    save_training_state,
)
from training.ml.configs import CommonRMConfig as _CommonRMConfig
from training.ml.configs import PreferenceRMConfig, TokenRMConfig
from training.ml.distributed import configure_deepspeed, full_state_dict, optimizer_is_sharded
from training.ml.loop import Loop, RunningMean, epoch_batches, loss_report
from training.ml.perf import Throughput, parameter_count, peak_flops, training_flops
from training.ml.progress import quiet_transformers
from training.ml.reward_models import (
    IGNORE_INDEX,
    IGNORE_TAG,
    STATS_FILE,
    encode_preference_texts,
    ensure_separator_token,
    first_token_positions,
    fit_words,
    load_tokenizer,
    model_max_length,
    preference_rm_text,
    separator_answer_start,
)

# The labels of each token-level kind; `O` (no error) always comes first so label ids are stable.
DEFAULT_LABELS: dict[str, list[str]] = {
    "rm_relevance": list(RELEVANCE_LABELS),
    "rm_factuality": list(FACTUALITY_LABELS),
}
# A `tiny` preset names this instead of a model; the run system replaces it with a built tiny encoder's
# path, and a run that still sees it builds one itself from its training texts.
TINY_ENCODER_PLACEHOLDER = "{tiny_encoder}"
CHECKPOINT_STATE = "trainer_state.json"


# ---------------------------------------------------------------- data: token-level files


@dataclass
class TokenExample:
    id: str
    words: list[str]
    tags: list[str]


def read_token_rm_file(path: str | os.PathLike, *, labels: Sequence[str]) -> list[TokenExample]:
    """Read NF-ERR_subsentence / F-ERR_sentence JSON lines, refusing malformed lines by number."""
    allowed = {IGNORE_TAG, *labels}
    examples = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected an object with lists 'text' and 'feedback_tags'")
            words, tags = row.get("text"), row.get("feedback_tags")
            if not isinstance(words, list) or not isinstance(tags, list):
                raise ValueError(f"{where}: expected an object with lists 'text' and 'feedback_tags'")
            if len(words) != len(tags):
                raise ValueError(f"{where}: {len(words)} words but {len(tags)} tags")
            unknown = sorted({t for t in tags if t not in allowed})
            if unknown:
                raise ValueError(f"{where}: unknown tag(s) {', '.join(map(repr, unknown))}; expected {', '.join(sorted(allowed))}")
            examples.append(TokenExample(id=str(row.get("id", number - 1)), words=[str(w) for w in words], tags=tags))
    return examples


def align_labels(word_ids: Sequence[int | None], tags: Sequence[str], label2id: dict[str, int]) -> list[int]:
    """Per token: the label id on the first sub-token of each labelled word, -100 everywhere else."""
    labels = [IGNORE_INDEX] * len(word_ids)
    for word_id, position in first_token_positions(word_ids).items():
        tag = tags[word_id]
        if tag != IGNORE_TAG:
            labels[position] = label2id[tag]
    return labels


def encode_token_examples(tokenizer: Any, examples: Sequence[TokenExample], *, label2id: dict[str, int],
                          max_length: int) -> list[dict[str, list[int]]]:
    """input_ids / attention_mask / labels per example; examples left with no label are dropped."""
    kept = fit_words(tokenizer, [e.words for e in examples], max_length=max_length, answer_start_of=separator_answer_start)
    encoded = []
    for example, keep in zip(examples, kept):
        words = [example.words[i] for i in keep]
        tags = [example.tags[i] for i in keep]
        encoding = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        labels = align_labels(encoding.word_ids(), tags, label2id)
        if all(label == IGNORE_INDEX for label in labels):
            continue
        encoded.append({"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"], "labels": labels})
    return encoded


def _pad(rows: list[list[int]], value: int) -> list[list[int]]:
    width = max(len(r) for r in rows)
    return [r + [value] * (width - len(r)) for r in rows]


def collate_token_batch(items: Sequence[dict[str, list[int]]], *, pad_token_id: int) -> dict[str, Any]:
    import torch

    return {
        "input_ids": torch.tensor(_pad([i["input_ids"] for i in items], pad_token_id)),
        "attention_mask": torch.tensor(_pad([i["attention_mask"] for i in items], 0)),
        "labels": torch.tensor(_pad([i["labels"] for i in items], IGNORE_INDEX)),
    }


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict[str, float]:
    """Per-class precision, recall and F1, their macro F1, and accuracy (a zero denominator gives 0)."""
    metrics: dict[str, float] = {}
    f1s = []
    for index, name in enumerate(labels):
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == index and p == index)
        fp = sum(1 for t, p in zip(y_true, y_pred) if t != index and p == index)
        fn = sum(1 for t, p in zip(y_true, y_pred) if t == index and p != index)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        metrics[f"precision_{name}"] = precision
        metrics[f"recall_{name}"] = recall
        metrics[f"f1_{name}"] = f1
        f1s.append(f1)
    metrics["macro_f1"] = sum(f1s) / len(f1s) if f1s else 0.0
    metrics["accuracy"] = sum(1 for t, p in zip(y_true, y_pred) if t == p) / len(y_true) if y_true else 0.0
    return metrics


# ---------------------------------------------------------------- data: preference records


def preference_pairs(preference: Sequence[int]) -> list[tuple[int, int]]:
    """(preferred, other) prediction indices for every non-tied pair; 1 = first preferred, 2 = second, 0 = tie."""
    # `preference` holds one entry per pair, in PREFERENCE_INDEX_PAIRS order: p12, p13, p14, p23, p24, p34.
    if len(preference) != len(PREFERENCE_INDEX_PAIRS):
        raise ValueError(f"preference needs {len(PREFERENCE_INDEX_PAIRS)} entries (p12 p13 p14 p23 p24 p34), got {len(preference)}")
    pairs = []
    for (a, b), value in zip(PREFERENCE_INDEX_PAIRS, preference):
        if value == FIRST_PREFERRED:
            pairs.append((a, b))
        elif value == SECOND_PREFERRED:
            pairs.append((b, a))
        elif value != NO_PREFERENCE:
            raise ValueError(f"preference values are 0, 1 or 2; got {value!r}")
    return pairs


def pairwise_loss(scores: Any, preferred: Any, other: Any) -> Any:
    """Mean of -log sigmoid(s_preferred - s_other) over the pairs (indices into `scores`)."""
    import torch.nn.functional as F

    return -F.logsigmoid(scores[preferred] - scores[other]).mean()


@dataclass
class PreferenceRecord:
    texts: list[str]
    pairs: list[tuple[int, int]]


def read_preference_file(path: str | os.PathLike) -> list[PreferenceRecord]:
    """Feedback-format records (COMP_sequence or raw feedback) as four RM texts and their pairs."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of feedback records")
    records = []
    for index, row in enumerate(data):
        where = f"{path}, record {index}"
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected an object")
        missing = [k for k in ("question", "passages", "preference", *PREDICTION_KEYS) if k not in row]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(missing)}")
        try:
            pairs = preference_pairs(row["preference"])
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        texts = [preference_rm_text(question=row["question"], passages=row["passages"], answer=row[k]) for k in PREDICTION_KEYS]
        records.append(PreferenceRecord(texts=texts, pairs=pairs))
    return records


def collate_preference_batch(records: Sequence[PreferenceRecord], *, tokenizer: Any, max_length: int) -> dict[str, Any]:
    """Tensors for the texts that take part in some pair, and index tensors of the pairs over them."""
    import torch

    texts: list[str] = []
    preferred: list[int] = []
    other: list[int] = []
    for record in records:
        slot: dict[int, int] = {}
        for winner, loser in record.pairs:
            for index in (winner, loser):
                if index not in slot:
                    slot[index] = len(texts)
                    texts.append(record.texts[index])
            preferred.append(slot[winner])
            other.append(slot[loser])
    encoding = encode_preference_texts(tokenizer, texts, max_length=max_length)
    return {"inputs": dict(encoding), "preferred": torch.tensor(preferred), "other": torch.tensor(other)}


# ---------------------------------------------------------------- shared training loop


def _optimizer_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _save_pretrained(model: Any, tokenizer: Any, folder: Path, state_dict: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, state_dict=state_dict)
    tokenizer.save_pretrained(folder)


def _to_device(batch: Any, device: Any) -> Any:
    if hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


@dataclass
class RMTrainer:
    """One reward-model optimizer step, the dev evaluation and the saved model and checkpoint, for `Loop`.

    The two trainers differ only in `collate`, `compute_loss`, `evaluate_fn` and `best_key`.
    """

    config: _CommonRMConfig
    state: dict[str, Any]
    accelerator: Any
    model: Any  # prepared (possibly DDP-wrapped)
    tokenizer: Any
    optimizer: Any
    scheduler: Any
    items: Sequence[Any]
    collate: Callable[[Sequence[Any]], dict[str, Any]]
    compute_loss: Callable[[Any, dict[str, Any]], Any]
    evaluate_fn: Callable[[Any], dict[str, float]] | None
    best_key: str
    reporter: Any
    output_dir: Path
    checkpoints: CheckpointFolders
    steps_per_epoch: int
    total_steps: int
    running: RunningMean = field(default_factory=RunningMean)
    latest_eval: dict[str, float] = field(default_factory=dict)
    throughput: Throughput = field(default_factory=Throughput)
    full_weights: dict | None = None  # gathered from shards by every process before the main one saves

    def train_step(self, step: int) -> dict[str, float] | None:
        config, accelerator = self.config, self.accelerator
        epoch, local_step = divmod(step, self.steps_per_epoch)
        batches = epoch_batches(len(self.items), config.batch_size, seed=config.seed, epoch=epoch)
        indices = batches[local_step * accelerator.num_processes + accelerator.process_index]
        batch = _to_device(self.collate([self.items[i] for i in indices]), accelerator.device)
        started = time.perf_counter()
        with accelerator.autocast():
            loss = self.compute_loss(self.model, batch)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        self.running.add(float(loss.detach()))
        tokens = float(batch["attention_mask"].sum()) if "attention_mask" in batch else 0.0
        if not hasattr(self, "_params"):
            self._params = parameter_count(self.model)
        self.throughput.add(seconds=time.perf_counter() - started, tokens=tokens, samples=float(len(indices)),
                            flops=training_flops(self._params, tokens))
        report = loss_report(self.running, self.scheduler, done=step + 1, every=config.log_every_steps,
                             total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch)
        if report is not None:
            report.update(self.throughput.pop(processes=accelerator.num_processes, peak=peak_flops(accelerator.device)))
        return report

    def evaluate(self) -> float | None:
        """Dev metrics on the main process; the score is shared so every process keeps the same best."""
        self.state["last_eval_step"] = self.state["step"]
        if self.evaluate_fn is None:
            return None
        score = None
        if self.accelerator.is_main_process:
            unwrapped = self.accelerator.unwrap_model(self.model)
            unwrapped.eval()
            self.latest_eval = self.evaluate_fn(unwrapped)
            unwrapped.train()
            self.reporter.metrics(self.state["step"], {f"eval/{k}": v for k, v in self.latest_eval.items()})
            score = self.latest_eval[self.best_key]
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            score = broadcast_object_list([score])[0]
        return score

    def save(self, name: str) -> None:
        """`best`: the model alone in OUTPUT_DIR/model; `last`: model, optimizer, scheduler and trainer state."""
        self.full_weights = full_state_dict(self.accelerator, self.model)
        if name == "best":
            if self.accelerator.is_main_process:
                self.state["eval"] = self.latest_eval
                self.save_model()
            return
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            self.checkpoints.save("last", self._write_checkpoint, step=self.state["step"])

    def save_model(self) -> None:
        save_folder(self.output_dir / "model",
                    lambda folder: _save_pretrained(self.accelerator.unwrap_model(self.model), self.tokenizer, folder,
                                                    self.full_weights))

    def _write_checkpoint(self, folder: Path) -> None:
        _save_pretrained(self.accelerator.unwrap_model(self.model), self.tokenizer, folder, self.full_weights)
        state = {**self.state, "config": dataclasses.asdict(self.config)}
        if optimizer_is_sharded(self.accelerator):
            state.update(optimizer_sharded=True, processes=self.accelerator.num_processes)
        save_training_state(folder, optimizer=self.optimizer, scheduler=self.scheduler, state=state,
                            state_file=CHECKPOINT_STATE)


def _train(config: _CommonRMConfig, *, model: Any, tokenizer: Any, items: Sequence[Any],
           collate: Callable[[Sequence[Any]], dict[str, Any]], compute_loss: Callable[[Any, dict[str, Any]], Any],
           evaluate_fn: Callable[[Any], dict[str, float]] | None, best_key: str, output_dir: Path, reporter: Any,
           resume_from: Path | None, accelerator: Any) -> dict[str, Any]:
    """Train either reward model to the end; returns the final state (step, best, best_step, eval)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    processes = accelerator.num_processes
    batches_per_epoch = math.ceil(len(items) / config.batch_size)
    # Every process must take the same number of steps, or the gradient all-reduce would hang.
    steps_per_epoch = max(1, batches_per_epoch // processes)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    from training.ml.memory import enable_gradient_checkpointing, make_optimizer

    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    optimizer = make_optimizer(_optimizer_groups(model, config.weight_decay), kind="adamw", lr=config.learning_rate,
                               eight_bit=config.optim_8bit, device=accelerator.device)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    state: dict[str, Any] = {"step": 0, "best": None, "best_step": 0, "last_eval_step": 0, "eval": {}}
    if resume_from is not None:
        state.update(read_state(resume_from, state_file=CHECKPOINT_STATE))
        if state.get("optimizer_sharded"):  # see distributed.py: moments start afresh
            scheduler.load_state_dict(torch.load(Path(resume_from) / "scheduler.pt", map_location="cpu", weights_only=True))
        else:
            load_training_state(resume_from, optimizer=optimizer, scheduler=scheduler)
    configure_deepspeed(accelerator, micro_batch_size=config.batch_size, grad_accum=1, max_grad_norm=config.max_grad_norm)
    model, optimizer = accelerator.prepare(model, optimizer)
    if not (output_dir / "model" / "config.json").is_file():
        # Resumed into a new folder: the old best model is not here, so the best is chosen afresh.
        state.update(best=None, best_step=0, eval={})

    trainer = RMTrainer(config=config, state=state, accelerator=accelerator, model=model, tokenizer=tokenizer,
                        optimizer=optimizer, scheduler=scheduler, items=items, collate=collate,
                        compute_loss=compute_loss, evaluate_fn=evaluate_fn, best_key=best_key, reporter=reporter,
                        output_dir=output_dir, checkpoints=CheckpointFolders(output_dir, reporter),
                        steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    model.train()
    eval_every = config.eval_every_steps or steps_per_epoch
    loop = Loop(state, total_steps=total_steps, eval_every=eval_every, save_every=eval_every, reporter=reporter,
                accelerator=accelerator)
    loop.run(trainer, train_examples=len(items), processes=processes)
    if evaluate_fn is None and accelerator.is_main_process:
        # Without a dev file the last model is the model.
        state["best_step"] = state["step"]
        trainer.save_model()
    accelerator.wait_for_everyone()
    return state


def _accelerator(config: _CommonRMConfig) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    set_seed(config.seed)
    return Accelerator(mixed_precision=config.mixed_precision)


def _resolve_base_model(config: _CommonRMConfig, output_dir: Path, texts: Callable[[], list[str]], reporter: Any) -> str:
    if config.base_model != TINY_ENCODER_PLACEHOLDER:
        return config.base_model
    from training.ml.tiny import build_tiny_encoder

    folder = output_dir / "tiny_encoder"
    if not (folder / "config.json").is_file():
        reporter.log(f"base_model is {TINY_ENCODER_PLACEHOLDER}: building a tiny encoder from the training texts")
        build_tiny_encoder(folder, texts=texts(), seed=config.seed)
    return str(folder)


def _check_resume_from(resume_from: Path | None) -> None:
    if resume_from is not None and not (Path(resume_from) / CHECKPOINT_STATE).is_file():
        raise ValueError(f"resume_from {resume_from} is not a checkpoint folder: {CHECKPOINT_STATE} is missing")


def _require_file(config: _CommonRMConfig, name: str) -> Path:
    value = getattr(config, name)
    if not value:
        raise ValueError(f"{name} is not set: name the file to read")
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"{name} {value} does not exist")
    return path


# ---------------------------------------------------------------- R1 / R2


def _evaluate_token_model(model: Any, items: Sequence[dict], *, labels: list[str], pad_token_id: int,
                          batch_size: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    y_true: list[int] = []
    y_pred: list[int] = []
    loss_sum, count = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            batch = _to_device(collate_token_batch(items[start : start + batch_size], pad_token_id=pad_token_id), device)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            mask = batch["labels"] != IGNORE_INDEX
            gold = batch["labels"][mask]
            loss_sum += float(F.cross_entropy(logits[mask], gold, reduction="sum"))
            count += int(mask.sum())
            y_true += gold.tolist()
            y_pred += logits[mask].argmax(-1).tolist()
    metrics = classification_metrics(y_true, y_pred, labels)
    metrics["loss"] = loss_sum / count if count else 0.0
    metrics["segments"] = float(count)
    return metrics


def _token_loss(model: Any, batch: dict[str, Any]) -> Any:
    # The model's own loss is token cross-entropy with -100 ignored, as the method asks.
    return model(**batch).loss


def run_token_rm(config: TokenRMConfig, *, kind: str, output_dir: Path, reporter: Any, resume_from: Path | None) -> dict:
    """Train R1 (rm_relevance) or R2 (rm_factuality); returns the run summary."""
    from transformers import AutoModelForTokenClassification

    quiet_transformers()
    _check_resume_from(resume_from)
    output_dir = Path(output_dir)
    labels = list(config.labels) or DEFAULT_LABELS.get(kind, [])
    if not labels:
        raise ValueError(f"labels is empty and run kind {kind!r} has no default labels; set labels")
    label2id = {name: i for i, name in enumerate(labels)}
    train = read_token_rm_file(_require_file(config, "train_file"), labels=labels)
    dev = read_token_rm_file(_require_file(config, "eval_file"), labels=labels) if config.eval_file else []
    if config.max_train_examples:
        train = train[: config.max_train_examples]
    if config.max_eval_examples:
        dev = dev[: config.max_eval_examples]
    if not train:
        raise ValueError(f"train_file {config.train_file} holds no examples")

    accelerator = _accelerator(config)
    source = str(resume_from) if resume_from else _resolve_base_model(
        config, output_dir, lambda: [" ".join(e.words) for e in train], reporter)
    tokenizer = load_tokenizer(source)
    grew = ensure_separator_token(tokenizer)
    model = AutoModelForTokenClassification.from_pretrained(
        source, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id, ignore_mismatched_sizes=True,
    )
    if grew or len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    max_length = model_max_length(model.config, tokenizer, config.max_length)
    model.config.rm_max_length = max_length
    model.config.rm_kind = kind

    train_items = encode_token_examples(tokenizer, train, label2id=label2id, max_length=max_length)
    dev_items = encode_token_examples(tokenizer, dev, label2id=label2id, max_length=max_length)
    if not train_items:
        raise ValueError(f"train_file {config.train_file}: no example has a labelled separator")
    pad_id = tokenizer.pad_token_id

    evaluate_fn = None
    if dev_items:
        evaluate_fn = functools.partial(_evaluate_token_model, items=dev_items, labels=labels, pad_token_id=pad_id,
                                        batch_size=config.eval_batch_size)
    state = _train(config, model=model, tokenizer=tokenizer, items=train_items,
                   collate=functools.partial(collate_token_batch, pad_token_id=pad_id), compute_loss=_token_loss,
                   evaluate_fn=evaluate_fn, best_key=config.best_metric, output_dir=output_dir, reporter=reporter,
                   resume_from=resume_from, accelerator=accelerator)
    reporter.artifact(kind="model", name="model", path="model", labels=labels, best_step=state["best_step"])
    return {
        "model_path": "model",
        "steps": state["step"],
        "best_step": state["best_step"],
        f"best_{config.best_metric}": state["best"],
        **{f"eval/{k}": v for k, v in state["eval"].items()},
        "labels": labels,
        "max_length": max_length,
        "train_examples": len(train_items),
        "eval_examples": len(dev_items),
    }


# ---------------------------------------------------------------- R3 / holistic


def _score_texts(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int) -> list[float]:
    import torch

    scores: list[float] = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            encoding = encode_preference_texts(tokenizer, texts[start : start + batch_size], max_length=max_length)
            scores += model(**{k: v.to(device) for k, v in encoding.items()}).logits[:, 0].float().cpu().tolist()
    return scores


def _evaluate_preference_model(model: Any, records: Sequence[PreferenceRecord], *, tokenizer: Any, max_length: int,
                               batch_size: int) -> dict[str, float]:
    import torch

    # Score each text once, whatever number of pairs it takes part in.
    texts = [t for r in records for t in r.texts]
    scores = torch.tensor(_score_texts(model, tokenizer, texts, max_length=max_length, batch_size=batch_size))
    offsets = [i * len(PREDICTION_KEYS) for i in range(len(records))]
    preferred = torch.tensor([offset + w for offset, r in zip(offsets, records) for w, _ in r.pairs], dtype=torch.long)
    other = torch.tensor([offset + o for offset, r in zip(offsets, records) for _, o in r.pairs], dtype=torch.long)
    total = len(preferred)
    loss_sum = float(pairwise_loss(scores, preferred, other)) * total if total else 0.0
    correct = int((scores[preferred] > scores[other]).sum()) if total else 0
    return {"pairwise_accuracy": correct / total if total else 0.0, "loss": loss_sum / total if total else 0.0, "pairs": float(total)}


def _preference_loss(model: Any, batch: dict[str, Any]) -> Any:
    scores = model(**batch["inputs"]).logits[:, 0].float()
    return pairwise_loss(scores, batch["preferred"], batch["other"])


def run_preference_rm(config: PreferenceRMConfig, *, kind: str, output_dir: Path, reporter: Any,
                      resume_from: Path | None) -> dict:
    """Train R3 (rm_completeness) or the holistic RM (rm_preference); returns the run summary."""
    from transformers import AutoModelForSequenceClassification

    quiet_transformers()
    _check_resume_from(resume_from)
    output_dir = Path(output_dir)
    train_all = read_preference_file(_require_file(config, "train_file"))
    dev_all = read_preference_file(_require_file(config, "eval_file")) if config.eval_file else []
    if config.max_train_examples:
        train_all = train_all[: config.max_train_examples]
    if config.max_eval_examples:
        dev_all = dev_all[: config.max_eval_examples]
    # All-tie records teach nothing but still belong to the training distribution of scores.
    train = [r for r in train_all if r.pairs]
    dev = [r for r in dev_all if r.pairs]
    if not train:
        raise ValueError(f"train_file {config.train_file}: no record has a non-tied pair")

    accelerator = _accelerator(config)
    source = str(resume_from) if resume_from else _resolve_base_model(
        config, output_dir, lambda: [t for r in train for t in r.texts], reporter)
    tokenizer = load_tokenizer(source)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, ignore_mismatched_sizes=True)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    max_length = model_max_length(model.config, tokenizer, config.max_length)
    model.config.rm_max_length = max_length
    model.config.rm_kind = kind

    evaluate_fn = None
    if dev:
        evaluate_fn = functools.partial(_evaluate_preference_model, records=dev, tokenizer=tokenizer,
                                        max_length=max_length, batch_size=config.eval_batch_size)
    state = _train(config, model=model, tokenizer=tokenizer, items=train,
                   collate=functools.partial(collate_preference_batch, tokenizer=tokenizer, max_length=max_length),
                   compute_loss=_preference_loss, evaluate_fn=evaluate_fn, best_key="pairwise_accuracy",
                   output_dir=output_dir, reporter=reporter, resume_from=resume_from, accelerator=accelerator)

    mean = std = 0.0
    if accelerator.is_main_process:
        mean, std, count = _save_reward_stats(output_dir / "model", train_all, max_length=max_length,
                                              batch_size=config.eval_batch_size, device=accelerator.device)
        reporter.metrics(state["step"], {"reward/train_mean": mean, "reward/train_std": std})
        reporter.artifact(kind="model", name="model", path="model", best_step=state["best_step"], reward_mean=mean,
                          reward_std=std)
    accelerator.wait_for_everyone()
    return {
        "model_path": "model",
        "steps": state["step"],
        "best_step": state["best_step"],
        "best_pairwise_accuracy": state["best"],
        **{f"eval/{k}": v for k, v in state["eval"].items()},
        "reward_mean": mean,
        "reward_std": std,
        "max_length": max_length,
        "train_records": len(train),
        "eval_records": len(dev),
    }


def _save_reward_stats(model_dir: Path, records: Sequence[PreferenceRecord], *, max_length: int, batch_size: int,
                       device: Any) -> tuple[float, float, int]:
    """Score every prediction of the training split with the saved (best) model; store mean and std with it."""
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(device).eval()
    scores = _score_texts(model, tokenizer, [t for r in records for t in r.texts], max_length=max_length, batch_size=batch_size)
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    (model_dir / STATS_FILE).write_text(
        json.dumps({"mean": mean, "std": std, "count": len(scores), "split": "train"}, indent=2), encoding="utf-8"
    )
    model.config.reward_mean = mean
    model.config.reward_std = std
    model.config.save_pretrained(model_dir)
    return mean, std, len(scores)
