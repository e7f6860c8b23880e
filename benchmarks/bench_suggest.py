"""Scoring suggestions for 500 responses with tiny reward models: batched (as the worker does) vs one at a time.

    .venv/bin/python benchmarks/bench_suggest.py [--responses 500] [--batch-size 32]

The four answers of the first N/4 questions of the shared dev_feedback.json
are scored by an R1 (sub-sentences, no context), an R2 (sentences, with the
passages) and a holistic preference RM, all tiny and untrained
(training.ml.tiny.build_tiny_reward_models), offline on the CPU. "batched"
is training.ml.suggest.score_responses: one spaCy batch for all texts, model
inputs sorted by length and run `--batch-size` at a time. The baseline
scores each response alone (split alone, batch size 1). Both must give the
same labels; the script checks that and prints seconds and responses per
second side by side.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GRANARY_SHARED_DIR", REPO.parent / "shared")) / "data" / "qa_feedback"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO))

    import torch

    from annotation.qa.text import load_splitter
    from annotation.qa.vocab import PREDICTION_KEYS
    from training.ml.progress import quiet_transformers
    from training.ml.reward_models import PreferenceRewardModel, TokenRewardModel
    from training.ml.suggest import ResponseInput, score_one_at_a_time, score_responses
    from training.ml.tiny import build_tiny_reward_models

    quiet_transformers()
    records = json.loads((DATA / "dev_feedback.json").read_text(encoding="utf-8"))
    items = [ResponseInput(r["question"], r["passages"], r[key]) for r in records for key in PREDICTION_KEYS][: args.responses]
    with tempfile.TemporaryDirectory() as folder:
        texts = [i.text for i in items[:200]]
        paths = build_tiny_reward_models(folder, texts=texts)
        models = {
            "relevance": TokenRewardModel.load(paths["relevance"], device=args.device),
            "factuality": TokenRewardModel.load(paths["factuality"], device=args.device),
            "preference": PreferenceRewardModel.load(paths["preference"], device=args.device),
        }
        nlp, splitter = load_splitter()
        score_responses(items[:8], nlp=nlp, **models)  # warm up both paths' kernels and the splitter
        began, began_cpu = time.perf_counter(), time.process_time()
        batched = score_responses(items, nlp=nlp, batch_size=args.batch_size, **models)
        batched_s, batched_cpu = time.perf_counter() - began, time.process_time() - began_cpu
        began, began_cpu = time.perf_counter(), time.process_time()
        single = score_one_at_a_time(items, nlp=nlp, **models)
        single_s, single_cpu = time.perf_counter() - began, time.process_time() - began_cpu

    same = all(
        [s.label for s in a.relevance] == [s.label for s in b.relevance]
        and [s.label for s in a.factuality] == [s.label for s in b.factuality]
        and abs(a.preference - b.preference) < 1e-3
        for a, b in zip(batched, single)
    )
    segments = sum(len(r.relevance) + len(r.factuality) for r in batched)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{len(items)} responses, {segments} segments, splitter {splitter}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}, load average {load:.1f} on {os.cpu_count()} CPUs")
    print(f"{'method':<34}{'wall s':>9}{'CPU s':>9}{'responses/s':>13}")
    print(f"{f'batched (batch {args.batch_size}, length-sorted)':<34}{batched_s:>9.1f}{batched_cpu:>9.1f}{len(items) / batched_s:>13.1f}")
    print(f"{'one at a time (baseline)':<34}{single_s:>9.1f}{single_cpu:>9.1f}{len(items) / single_s:>13.1f}")
    print(f"speed-up {single_s / batched_s:.1f}x wall, {single_cpu / batched_cpu:.1f}x CPU; same labels and scores: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
