"""A stand-in trainer for run-system tests: same command line and events as training.ml.entry, no torch.

Used through the TRAINING_CHILD_COMMAND setting:
    [sys.executable, "tests/training/fake_trainer.py", "--mode", MODE]
Modes:
    ok        start, progress, metrics and a sample per step, a saved model, done (exit 0)
    slow      one step every 0.1 s for a long time; SIGTERM ends it with an error event (exit 130)
    stubborn  like slow but ignores SIGTERM (only SIGKILL stops it)
    crash     prints a traceback, reports an error event, exits 1
    quiet     exits 0 without reporting done
"""

import argparse
import json
import signal
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="ok")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("kind")
    parser.add_argument("--trainer", required=True)
    parser.add_argument("--config-class", required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--resume-from", type=Path)
    parser.add_argument("--run-name", default="")
    args = parser.parse_args()
    config = json.loads(args.config.read_text())
    events = open(args.events, "a", encoding="utf-8")

    def emit(event: str, **payload) -> None:
        events.write(json.dumps({"event": event, "time": time.time(), **payload}) + "\n")
        events.flush()

    def stop(signum, frame):
        emit("error", message=f"stopped: received signal {signum}")
        print("stopping on SIGTERM", flush=True)
        sys.exit(130)

    if args.mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, stop)

    print(f"fake trainer {args.kind} ({args.trainer}, {args.config_class}) train_file={config.get('train_file')} resume_from={args.resume_from}", flush=True)
    if args.mode == "crash":
        print("Traceback (most recent call last):\nValueError: the fake trainer fell over", flush=True)
        emit("error", message="ValueError: the fake trainer fell over", traceback="...")
        return 1
    if args.mode == "quiet":
        return 0

    long_running = args.mode in ("slow", "stubborn")
    total = 100000 if long_running else args.steps
    emit("start", total_steps=total, wandb_dir=str(args.output_dir / "wandb"), wandb_url="")
    for step in range(1, total + 1):
        emit("progress", step=step, total=total)
        emit("metrics", step=step, metrics={"train/loss": 1.0 / step, "train/lr": 0.001, "eval/accuracy": step / total})
        print(f"step {step}", flush=True)
        if long_running:
            time.sleep(0.1)
    checkpoint = args.output_dir / "checkpoints" / "last"
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / "state.json").write_text(json.dumps({"step": total}))
    emit("artifact", kind="checkpoint", name="last", path="checkpoints/last", meta={"step": total})
    emit(
        "sample",
        step=total,
        prompt="question: who?",
        text="It was him. It was not her.",
        segments=[{"text": "It was him.", "reward": 0.5, "label": "O"}, {"text": " It was not her.", "reward": -0.5, "label": "F-ERR"}],
        total_reward=0.0,
    )
    model = args.output_dir / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text("{}")
    emit("artifact", kind="model", name="model", path="model", meta={"best_step": total})
    emit("done", summary={"best_step": total})
    return 0


if __name__ == "__main__":
    sys.exit(main())
