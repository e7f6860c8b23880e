"""The training loop shared by every trainer: cadence of evaluations and saves, the best, cooperative cancel."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from training.ml.loop import Cancelled, Loop, RunningMean, cancel_requested, epoch_batches
from training.ml.progress import Reporter


@pytest.fixture(autouse=True)
def _no_cancel_left_over():
    cancel_requested.clear()
    yield
    cancel_requested.clear()


class Recorder:
    """A trainer double: records what the loop asks of it, scores evaluations from a table."""

    def __init__(self, state, *, scores=None, cancel_during=None, on_step=None):
        self.state = state
        self.scores = scores or {}
        self.cancel_during = cancel_during
        self.on_step = on_step
        self.calls: list[tuple] = []

    def train_step(self, step):
        self.calls.append(("train", step))
        if step == self.cancel_during:
            cancel_requested.set("received signal 15")  # as the SIGTERM handler does, in the middle of a step
        if self.on_step:
            self.on_step(step)
        return {"train/loss": float(step)}

    def evaluate(self):
        self.calls.append(("evaluate", self.state["step"]))
        return self.scores.get(self.state["step"])

    def save(self, name):
        self.calls.append((name, self.state["step"]))


class Events:
    def __init__(self):
        self.events = []

    def start(self, **info):
        self.events.append(("start", info))

    def progress(self, step, total=None):
        self.events.append(("progress", step))

    def metrics(self, step, metrics):
        self.events.append(("metrics", step))


def loop(state, **settings):
    defaults = {"total_steps": 5, "eval_every": 2, "save_every": 2, "reporter": Events()}
    return Loop(state, **{**defaults, **settings})


def new_state(step=0, best=None):
    return {"step": step, "best": best, "best_step": None}


def test_it_evaluates_and_saves_on_its_cadence_and_at_the_last_step_keeping_the_best():
    state = new_state()
    trainer = Recorder(state, scores={0: 0.2, 2: 0.1, 4: 0.5, 5: 0.3})

    loop(state, evaluate_first=True).run(trainer, kind="x")

    assert trainer.calls == [
        ("evaluate", 0), ("best", 0),
        ("train", 0), ("train", 1), ("evaluate", 2), ("last", 2),
        ("train", 2), ("train", 3), ("evaluate", 4), ("best", 4), ("last", 4),
        ("train", 4), ("evaluate", 5), ("last", 5),
    ]
    assert (state["step"], state["best"], state["best_step"]) == (5, 0.5, 4)


def test_it_reports_start_then_progress_before_each_steps_metrics():
    state, reporter = new_state(step=3), Events()

    loop(state, reporter=reporter).run(Recorder(state), kind="x")

    assert reporter.events == [("start", {"total_steps": 5, "resumed_from_step": 3, "kind": "x"}),
                               ("progress", 4), ("metrics", 4), ("progress", 5), ("metrics", 5)]


def test_a_cancel_lets_the_step_finish_saves_last_and_stops_before_the_next():
    state = new_state()
    trainer = Recorder(state, cancel_during=2)

    with pytest.raises(Cancelled, match="received signal 15") as raised:
        loop(state, total_steps=10, eval_every=100, save_every=100).run(trainer)

    assert isinstance(raised.value, KeyboardInterrupt)  # what the entry point turns into "stopped: ..." and 130
    assert trainer.calls == [("train", 0), ("train", 1), ("train", 2), ("last", 3)]
    assert state["step"] == 3
    assert not cancel_requested  # answered: a later run in this process starts afresh


def test_a_cancel_right_after_a_save_does_not_save_the_same_step_again():
    state = new_state()
    trainer = Recorder(state, cancel_during=1)

    with pytest.raises(Cancelled):
        loop(state, eval_every=100, save_every=1).run(trainer)

    assert trainer.calls == [("train", 0), ("last", 1), ("train", 1), ("last", 2)]


def test_a_cancel_before_the_first_step_stops_without_evaluating_or_saving():
    state = new_state(step=4)
    trainer = Recorder(state)
    cancel_requested.set("received signal 15")

    with pytest.raises(Cancelled):
        loop(state, total_steps=9, evaluate_first=True).run(trainer)

    assert trainer.calls == []


def test_a_run_resumed_at_its_end_without_a_best_evaluates_once():
    state = new_state(step=5)
    trainer = Recorder(state, scores={5: 0.7})

    loop(state).run(trainer)

    assert trainer.calls == [("evaluate", 5), ("best", 5), ("last", 5)]
    state = new_state(step=5, best=0.9)
    trainer = Recorder(state, scores={5: 0.7})
    loop(state).run(trainer)
    assert trainer.calls == []


def test_the_sigterm_handler_only_asks_and_the_step_in_progress_completes():
    from training.ml.entry import _terminate

    state = new_state()
    after_signal = []

    def signalled(step):
        if step == 1:
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(1000))  # the handler runs here, between bytecodes: it must not raise
            after_signal.append(step)

    trainer = Recorder(state, on_step=signalled)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with pytest.raises(Cancelled, match="received signal 15"):
            loop(state, total_steps=10, eval_every=100, save_every=100).run(trainer)
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert after_signal == [1]
    assert trainer.calls == [("train", 0), ("train", 1), ("last", 2)]


def test_epoch_batches_reshuffle_per_epoch_and_cover_every_item_once():
    first = epoch_batches(10, 4, seed=1, epoch=0)
    again = epoch_batches(10, 4, seed=1, epoch=0)
    second = epoch_batches(10, 4, seed=1, epoch=1)

    assert first == again and first != second
    assert [len(b) for b in first] == [4, 4, 2]
    assert sorted(i for b in first for i in b) == list(range(10))


def test_a_running_mean_restarts_once_read():
    running = RunningMean()
    for value in (1.0, 2.0, 6.0):
        running.add(value)

    assert running.pop() == 3.0
    running.add(5.0)
    assert running.pop() == 5.0


@pytest.mark.slow
def test_a_sigterm_stops_a_real_sft_run_at_a_step_it_saved_and_the_run_resumes_from_there(tmp_path, qa_feedback_dir):
    import torch

    from training.ml.configs import from_dict
    from training.ml.entry import _terminate
    from training.ml.sft import SFTConfig, run

    records = json.loads((qa_feedback_dir / "dev.json").read_text(encoding="utf-8"))
    (tmp_path / "train.json").write_text(json.dumps(records[:16]), encoding="utf-8")
    config = from_dict(SFTConfig, {"train_file": str(tmp_path / "train.json"), "model_name_or_path": "{tiny_t5}",
                                   "max_input_len": 32, "max_output_len": 8, "epochs": 3, "batch_size": 4,
                                   "grad_accum": 1, "learning_rate": 1e-3, "log_every": 1})

    class CancelAt(Reporter):
        def progress(self, step, total=None):
            super().progress(step, total)
            if step == 2:
                os.kill(os.getpid(), signal.SIGTERM)  # the cancel from the UI, while step 2 is being reported

    out = tmp_path / "out"
    reporter = CancelAt(out / "events.jsonl")
    previous = signal.signal(signal.SIGTERM, _terminate)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(Cancelled, match="received signal 15"):
            run(config, kind="sft", output_dir=out, reporter=reporter, resume_from=None)
    finally:
        signal.signal(signal.SIGTERM, previous)
        reporter.close()

    events = [json.loads(line) for line in (out / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [e["step"] for e in events if e["event"] == "progress"] == [1, 2]
    assert ("train/loss" in next(e for e in events if e["event"] == "metrics" and e["step"] == 2)["metrics"])
    last = out / "checkpoints" / "last"
    assert json.loads((last / "state.json").read_text())["step"] == 2
    assert ("checkpoint", "checkpoints/last") in {(e["kind"], e["path"]) for e in events if e["event"] == "artifact"}

    (out / "events.jsonl").rename(out / "first.jsonl")
    reporter = Reporter(out / "events.jsonl")
    try:
        summary = run(config, kind="sft", output_dir=out, reporter=reporter, resume_from=last)
    finally:
        reporter.close()
        torch.set_num_threads(threads)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [e["step"] for e in events if e["event"] == "progress"] == list(range(3, 13))
    assert summary["step"] == 12
