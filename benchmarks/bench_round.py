"""Time to sample a new annotation round: answers per second, sampling alone beside sampling + segment scoring.

    .venv/bin/python benchmarks/bench_round.py [--examples 32] [--samples 4]

Runs training/ml/rounds.generate_round (the worker's code, no database) on
the first N prompts of the shared dev.json with a tiny T5 policy and tiny
random R1/R2/R3 reward models built offline (training/ml/tiny.py sizes),
once without reward models (the peer: what sampling alone costs) and once
scoring every answer's sub-sentences, sentences and whole text. Prints wall
seconds and answers per second for each, and the share that scoring adds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "qa_feedback"


def build_models(folder: Path, texts: list[str]) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertForTokenClassification

    from training.ml.tiny import build_tiny_t5, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(texts=texts)
    build_tiny_t5(folder / "policy", tokenizer=tokenizer)

    def config(**extra):
        return BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id, **extra)

    for name, labels in (("r1", ["O", "NF-ERR"]), ("r2", ["O", "F-ERR"])):
        torch.manual_seed(len(name))
        model = BertForTokenClassification(config(id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)}))
        model.config.rm_max_length = 512
        model.save_pretrained(folder / name)
        tokenizer.save_pretrained(folder / name)
    model = BertForSequenceClassification(config(num_labels=1))
    model.config.rm_max_length = 512
    model.save_pretrained(folder / "r3")
    tokenizer.save_pretrained(folder / "r3")
    (folder / "r3" / "reward_stats.json").write_text(json.dumps({"mean": 0.0, "std": 1.0}), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()

    import torch

    from training.ml.data import parse_examples
    from training.ml.rounds import generate_round, sampling_settings

    torch.set_num_threads(1)
    records = json.loads((SHARED / "dev.json").read_text(encoding="utf-8"))[: args.examples]
    examples = parse_examples(records, path=SHARED / "dev.json", need_answer=False)
    settings = sampling_settings({"max_new_tokens": args.max_new_tokens, "max_input_len": 256, "generation_batch_size": 8},
                                 samples=args.samples)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_models(folder, [r["text"] for r in records] + [r["answer"][0] for r in records])
        rms = {"rm_relevance": str(folder / "r1"), "rm_factuality": str(folder / "r2"), "rm_completeness": str(folder / "r3")}
        figures = {}
        for label, paths in (("sampling only", {}), ("sampling + R1/R2/R3 segment scores", rms)):
            began = time.perf_counter()
            answers = generate_round(policy_path=str(folder / "policy"), examples=examples, settings=settings,
                                     reward_paths=paths, device="cpu")
            seconds = time.perf_counter() - began
            count = sum(len(a) for a in answers)
            segments = sum(len(x["reward_segments"]) for a in answers for x in a)
            figures[label] = seconds
            print(f"{label:<36} {count:>5} answers  {seconds:7.2f} s  {count / seconds:7.1f} answers/s  {segments:>6} segments")
    base, scored = figures["sampling only"], figures["sampling + R1/R2/R3 segment scores"]
    print(f"scoring adds {100 * (scored - base) / base:.0f}% to sampling ({args.examples} prompts x {args.samples} answers, "
          f"{args.max_new_tokens} new tokens at most, tiny models, one CPU thread)")


if __name__ == "__main__":
    main()
