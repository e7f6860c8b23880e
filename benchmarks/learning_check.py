"""Learning check: does fine-grained PPO unlearn a penalised word, and how fast next to holistic PPO?

A tiny T5 policy is fine-tuned (SFT) on a synthetic question-answering corpus
whose answers use a chosen word (default `very`) in about half of their
adjective slots. Toy reward models then penalise that word:

  fine-grained  R1 labels a sub-sentence NF-ERR when it contains the word,
                R2 labels a sentence F-ERR when it contains the word,
                R3 = -(occurrences in the answer), normalised;
  holistic      the preference score = -(occurrences in the answer), normalised.

Both PPO runs start from the same SFT policy with the same budget (steps,
prompts, samples, learning rate, seeds) and the paper's per-setting KL and
GAE values. The script prints, per step, how often the word appears in that
step's sampled answers, for both runs side by side, then the rate on
held-out prompts for the SFT policy and both final policies.

    .venv/bin/python benchmarks/learning_check.py [--steps 30] [--word very] [--threads 1]

Takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from annotation.qa.vocab import F_ERR, NF_ERR, NO_ERROR, SEPARATOR  # noqa: E402
from training.ml.configs import from_dict  # noqa: E402
from training.ml.progress import NullReporter  # noqa: E402
from training.ml.reward_models import marker_answer_start  # noqa: E402

SHARED = Path(os.environ.get("GRANARY_SHARED_DIR", REPO_ROOT.parent / "shared"))
DEV_FILE = SHARED / "data" / "qa_feedback" / "dev.json"
MAX_NEW_TOKENS = 72

TOPICS = ["bridge", "river", "castle", "market", "garden", "tower", "library", "harbor", "station", "museum"]
ADJECTIVES = ["long", "old", "quiet", "busy", "famous", "large", "small", "beautiful", "green", "strong"]
PLACES = ["park", "square", "street", "school", "field"]
TIMES = ["day", "week", "summer", "morning"]
DIRECTIONS = ["north", "south", "east", "west"]


def synthetic_corpus(n: int, *, word: str, seed: int) -> list[dict]:
    """Policy-input records whose answers use `word` before about half of their adjectives."""
    rng = random.Random(seed)

    def adj() -> str:
        return (f"{word} " if rng.random() < 0.5 else "") + rng.choice(ADJECTIVES)

    records = []
    for _ in range(n):
        topic = rng.choice(TOPICS)
        sentences = [f"The {topic} is {adj()}, and many people visit it every {rng.choice(TIMES)}."]
        extra = [
            f"It was built in the {rng.choice(DIRECTIONS)} a long time ago, and it is {adj()} today.",
            f"Near the {topic} there is a {adj()} {rng.choice(PLACES)} where children play.",
            f"Most visitors say that the {topic} looks {adj()} in the {rng.choice(TIMES)}.",
        ]
        sentences += rng.sample(extra, k=rng.choice([1, 2]))
        question = f"What is the {topic} like?"
        text = f"question: {question} context: wikipage: {topic.title()} text: The {topic} is a place in the town."
        records.append({"text": text, "answer": [" ".join(sentences)], "question": question,
                        "passages": [{"wikipage": topic.title(), "content": f"The {topic} is a place in the town."}]})
    return records


def count_word(text: str, word: str) -> int:
    return sum(1 for w in text.split() if re.sub(r"\W", "", w).lower() == word)


class ToyLabeler:
    """R1/R2 stand-in: a segment containing the word is an error."""

    def __init__(self, word: str, error: str):
        self.word, self.error = word, error

    def predict(self, word_lists: list[list[str]]) -> list[list[str]]:
        out = []
        for words in word_lists:
            if SEPARATOR not in words:
                out.append([])
                continue
            segments, current = [], None
            for w in words[words.index(SEPARATOR):]:
                if w == SEPARATOR:
                    current = []
                    segments.append(current)
                else:
                    current.append(w)
            out.append([self.error if count_word(" ".join(s), self.word) else NO_ERROR for s in segments])
        return out


class ToyScorer:
    """R3 / preference stand-in: minus the word's occurrences in the answer, normalised by corpus statistics."""

    def __init__(self, word: str, *, mean: float, std: float):
        self.word, self.mean, self.std = word, mean, std

    def normalized(self, texts: list[str]) -> list[float]:
        out = []
        for text in texts:
            words = text.split()
            answer = " ".join(words[marker_answer_start(words) + 1 :])
            out.append((-count_word(answer, self.word) - self.mean) / self.std)
        return out


class Recording:
    """Wraps a reward function and keeps the texts of each call (one call per PPO step)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, examples, responses):
        results = self.fn(examples, responses)
        self.calls.append([r.text for r in results])
        return results


class Metrics(NullReporter):
    def __init__(self):
        self.by_step: dict[int, dict[str, float]] = {}

    def metrics(self, step, metrics):
        self.by_step.setdefault(step, {}).update(metrics)


def rate(texts: list[str], word: str) -> tuple[float, float, float]:
    """(occurrences per answer, occurrences per 100 words, words per answer)."""
    words = sum(len(t.split()) for t in texts)
    hits = sum(count_word(t, word) for t in texts)
    return hits / max(1, len(texts)), 100.0 * hits / max(1, words), words / max(1, len(texts))


@torch.no_grad()
def sampled_rate(policy_dir: Path, prompts: list[str], *, word: str, samples: int, seed: int) -> tuple[float, float, float]:
    from training.ml.policy import Policy

    torch.manual_seed(seed)
    policy = Policy.load(policy_dir)
    texts = []
    for _ in range(samples):
        batch = policy.encode_prompts(prompts, max_input_len=64, max_new_tokens=MAX_NEW_TOKENS)
        ids, mask = policy.generate(batch, max_new_tokens=MAX_NEW_TOKENS, do_sample=True, top_k=20, temperature=0.7)
        texts += [policy.decode(ids[i][mask[i].bool()].tolist()) for i in range(len(prompts))]
    return rate(texts, word)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--word", default="very")
    parser.add_argument("--steps", type=int, default=30, help="PPO steps of each run (8 prompts x 4 samples each)")
    parser.add_argument("--sft-epochs", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for tiny models on a busy machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    word = args.word.lower()

    from annotation.qa.text import load_splitter
    from training.ml.policy import load_tokenizer
    from training.ml.ppo import PPOConfig, train
    from training.ml.rewards import FineGrainedReward, HolisticReward
    from training.ml.sft import SFTConfig, quiet_transformers
    from training.ml.sft import run as run_sft
    from training.ml.tiny import build_tiny_t5, build_tiny_tokenizer

    quiet_transformers()
    work = args.out or Path(tempfile.mkdtemp(prefix="granary-learning-check-"))
    work.mkdir(parents=True, exist_ok=True)
    train_records = synthetic_corpus(400, word=word, seed=args.seed)
    held_out = synthetic_corpus(32, word=word, seed=args.seed + 1)
    (work / "train.json").write_text(json.dumps(train_records), encoding="utf-8")
    (work / "dev.json").write_text(json.dumps(held_out[:16]), encoding="utf-8")
    counts = [-count_word(r["answer"][0], word) for r in train_records]
    mean, std = statistics.mean(counts), statistics.pstdev(counts) or 1.0

    started = time.time()
    texts = [r["text"] for r in train_records] + [r["answer"][0] for r in train_records]
    if DEV_FILE.is_file():
        # A repetitive synthetic corpus alone trains a poor sentencepiece vocabulary (words split into
        # letters); real answers give it whole-word pieces, so answers stay short in tokens.
        texts += [r["answer"][0] for r in json.loads(DEV_FILE.read_text(encoding="utf-8"))]
    build_tiny_t5(work / "base", tokenizer=build_tiny_tokenizer(texts=texts, vocab_size=800), d_model=64, seed=args.seed)
    sft_config = from_dict(SFTConfig, {
        "train_file": str(work / "train.json"), "eval_file": str(work / "dev.json"),
        "model_name_or_path": str(work / "base"), "max_input_len": 64, "max_output_len": MAX_NEW_TOKENS,
        "epochs": args.sft_epochs, "batch_size": 16, "grad_accum": 1, "learning_rate": 3e-3, "warmup_steps": 10,
        "log_every": 25, "eval_batch_size": 16, "seed": args.seed,
    })
    sft_summary = run_sft(sft_config, kind="sft", output_dir=work / "sft", reporter=NullReporter(), resume_from=None)
    sft_dir = work / "sft" / "model"
    print(f"SFT: {sft_summary['step']} steps, dev ROUGE-Lsum {sft_summary['best_rouge_lsum']:.3f}, "
          f"{time.time() - started:.0f}s")

    nlp, _ = load_splitter("sentencizer")
    tokenizer = load_tokenizer(sft_dir)
    reward_fns = {
        "fine_grained": FineGrainedReward(relevance=ToyLabeler(word, NF_ERR), factuality=ToyLabeler(word, F_ERR),
                                          completeness=ToyScorer(word, mean=mean, std=std), tokenizer=tokenizer, nlp=nlp),
        "holistic": HolisticReward(preference=ToyScorer(word, mean=mean, std=std), tokenizer=tokenizer),
    }
    curves: dict[str, list[tuple[float, float, float]]] = {}
    kls: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for name, fn in reward_fns.items():
        recording, reporter = Recording(fn), Metrics()
        config = from_dict(PPOConfig, {
            "train_file": str(work / "train.json"), "policy_model": str(sft_dir),
            "total_episodes": args.steps * 32, "prompts_per_step": 8, "samples_per_prompt": 4,
            "max_input_len": 64, "max_new_tokens": MAX_NEW_TOKENS, "generation_batch_size": 32,
            "train_batch_size": 16, "micro_batch_size": 16, "learning_rate": args.learning_rate, "warmup_steps": 2,
            "eval_every": 1000, "seed": args.seed,
        })
        started = time.time()
        train(config, kind=f"ppo_{name}", output_dir=work / name, reporter=reporter, resume_from=None,
              reward_fn=recording)
        seconds[name] = time.time() - started
        curves[name] = [rate(texts, word) for texts in recording.calls]
        kls[name] = [reporter.by_step[s]["train/kl"] for s in sorted(reporter.by_step)]

    print(f"\nWord {word!r} in each step's 32 sampled answers (before that step's update):")
    print(f"{'step':>4} | {'fine-grained':^26} | {'holistic':^26} | {'KL per answer':^13}")
    print(f"{'':>4} | {'/answer':>8} {'/100 words':>10} {'words':>6} | {'/answer':>8} {'/100 words':>10} {'words':>6} | {'fg':>6} {'hol':>6}")
    for step in range(args.steps):
        fg, ho = curves["fine_grained"][step], curves["holistic"][step]
        print(f"{step + 1:>4} | {fg[0]:>8.2f} {fg[1]:>10.2f} {fg[2]:>6.1f} | {ho[0]:>8.2f} {ho[1]:>10.2f} {ho[2]:>6.1f} | "
              f"{kls['fine_grained'][step]:>6.2f} {kls['holistic'][step]:>6.2f}")
    window = max(1, args.steps // 5)
    for name in ("fine_grained", "holistic"):
        first = statistics.mean(x[0] for x in curves[name][:window])
        last = statistics.mean(x[0] for x in curves[name][-window:])
        print(f"{name:>12}: per answer, first {window} steps {first:.2f} -> last {window} steps {last:.2f} "
              f"({100 * (last - first) / max(first, 1e-9):+.0f}%), {seconds[name]:.0f}s")

    prompts = [r["text"] for r in held_out]
    print(f"\nHeld-out prompts ({len(prompts)} x 4 samples, top-k 20, temperature 0.7):")
    print(f"{'policy':>12} | {'per answer':>10} {'per 100w':>10} {'words':>7}")
    for name, folder in (("SFT", sft_dir), ("fine_grained", work / "fine_grained" / "checkpoints" / "last" / "policy"),
                         ("holistic", work / "holistic" / "checkpoints" / "last" / "policy")):
        per_answer, per_100, words = sampled_rate(folder, prompts, word=word, samples=4, seed=args.seed + 7)
        print(f"{name:>12} | {per_answer:>10.2f} {per_100:>10.2f} {words:>7.1f}")
    print(f"\n(working folder: {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
