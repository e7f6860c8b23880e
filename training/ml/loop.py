"""The training loop every trainer runs: steps, periodic evaluation, best and last checkpoints, cooperative cancel.

A trainer (reward models, SFT, PPO) supplies what differs: one optimizer step,
one evaluation, and how its folders are written. `Loop.run` drives them in
the same order for all of them:

    report start                          (total steps, the step resumed from)
    evaluate                              when asked first (PPO's step-0 baseline)
    evaluate, save `last`                 when resumed at the end into a folder without a best
    while step < total_steps:
        stop if a cancel came             saving `last` first (cooperative cancel)
        metrics = trainer.train_step(step)
        step += 1; report progress, then the metrics
        evaluate when due                 every `eval_every` steps and at the last;
                                          a better score saves `best`
        save `last` when due              every `save_every` steps and at the last

A cancel (SIGTERM from the UI) only sets `cancel_requested`; the loop looks at
it between steps, never in the middle of one, saves `last` so that a resumed
run continues where this one stopped, and raises `Cancelled`.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from typing import Any, Protocol


class CancelRequest:
    """Set from a signal handler (one attribute write, safe anywhere); read by the loop between steps."""

    def __init__(self) -> None:
        self.reason = ""

    def set(self, reason: str = "cancelled") -> None:
        self.reason = reason or "cancelled"

    def clear(self) -> None:
        self.reason = ""

    def __bool__(self) -> bool:
        return bool(self.reason)


cancel_requested = CancelRequest()


class Cancelled(KeyboardInterrupt):
    """The run stopped between two steps on request, after saving its last checkpoint."""


class Trainer(Protocol):
    def train_step(self, step: int) -> dict[str, float] | None:
        """Train step `step` (0-based: the steps done so far); its metrics, or None when none are due."""

    def evaluate(self) -> float | None:
        """Evaluate on dev; the score that picks the best (higher is better), the same on every process, or None."""

    def save(self, name: str) -> None:
        """Save `last` (the resumable checkpoint) or `best`; called on every process."""


@functools.lru_cache(maxsize=2)
def epoch_batches(num_items: int, batch_size: int, *, seed: int, epoch: int) -> tuple[tuple[int, ...], ...]:
    """The batches (item indices) of an epoch: a fresh shuffle per epoch, so a resumed run sees the same ones."""
    order = list(range(num_items))
    random.Random(seed + epoch).shuffle(order)
    return tuple(tuple(order[i : i + batch_size]) for i in range(0, num_items, batch_size))


class RunningMean:
    """The mean of the values added since it was last read (a loss reported every N steps)."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def pop(self) -> float:
        mean = self.total / max(1, self.count)
        self.total, self.count = 0.0, 0
        return mean


def loss_report(
    running: RunningMean, scheduler: Any, *, done: int, every: int, total_steps: int, steps_per_epoch: int
) -> dict[str, float] | None:
    """The running loss, learning rate and epoch after `done` steps: every `every` steps and at the last."""
    if done % every and done != total_steps:
        return None
    return {"train/loss": running.pop(), "train/lr": scheduler.get_last_lr()[0], "train/epoch": done / steps_per_epoch}


@dataclass
class Loop:
    state: dict[str, Any]  # step, best, best_step (and what the trainer adds); saved in its checkpoints
    total_steps: int
    eval_every: int
    save_every: int
    reporter: Any
    accelerator: Any = None
    evaluate_first: bool = False
    _saved_step: int = field(default=-1, init=False)

    def run(self, trainer: Trainer, **info: Any) -> dict[str, Any]:
        """Train to `total_steps` from `state["step"]`; `info` goes into the start event. Returns the state."""
        state = self.state
        self._saved_step = state["step"]
        self.reporter.start(total_steps=self.total_steps, resumed_from_step=state["step"], **info)
        self.stop_if_cancelled(trainer)  # cancelled while loading: stop before a first evaluation
        if self.evaluate_first:
            self.evaluate(trainer)
        if state["step"] >= self.total_steps and state["best"] is None:
            # Resumed at its end into a folder without its best: evaluate once, so the folder gets one.
            if self.evaluate(trainer) is not None:
                self.save_last(trainer)
        while state["step"] < self.total_steps:
            self.stop_if_cancelled(trainer)
            metrics = trainer.train_step(state["step"])
            state["step"] += 1
            step = state["step"]
            self.reporter.progress(step)
            if metrics:
                self.reporter.metrics(step, metrics)
            last = step == self.total_steps
            if step % self.eval_every == 0 or last:
                self.evaluate(trainer)
            if step % self.save_every == 0 or last:
                self.save_last(trainer)
        return state

    def evaluate(self, trainer: Trainer) -> float | None:
        score = trainer.evaluate()
        if score is not None and (self.state["best"] is None or score > self.state["best"]):
            self.state.update(best=score, best_step=self.state["step"])
            trainer.save("best")
        return score

    def save_last(self, trainer: Trainer) -> None:
        trainer.save("last")
        self._saved_step = self.state["step"]

    def stop_if_cancelled(self, trainer: Trainer) -> None:
        if not self._cancel_agreed():
            return
        if self.state["step"] != self._saved_step:
            self.save_last(trainer)
        reason = cancel_requested.reason or "cancelled"
        cancel_requested.clear()
        raise Cancelled(reason)

    def _cancel_agreed(self) -> bool:
        # Every process must stop at the same step, or the others would wait forever in the next one's all-reduce.
        wanted = bool(cancel_requested)
        if self.accelerator is None or self.accelerator.num_processes == 1:
            return wanted
        import torch

        flag = torch.tensor([1.0 if wanted else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)
