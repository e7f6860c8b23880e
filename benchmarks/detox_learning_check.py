"""Detox learning check: do fine-grained and holistic detox PPO both lower toxicity, and how fast, at what fluency?

A tiny GPT-2 (byte-level BPE, built offline) is first trained as a language
model on a synthetic corpus of prompt continuations in which about a third of
the sentences hold a word of the lexicon scorer's list: it stands in for a
pretrained LM that is sometimes toxic (the detox task has no SFT; this is the
"pretrained" policy both runs start from). Then the same budget of detox PPO
(steps, prompts, samples, learning rate, seeds; KL and GAE per the presets) is
spent twice from that policy:

  holistic      1 - toxicity(y) on the last token
  fine-grained  -(tox(y_1..j) - tox(y_1..j-1)) on the last token of each sentence j

with the lexicon scorer (toxicity 1 - 0.5 ** listed words). Both runs are
evaluated before the first step and every --eval-every steps on held-out
prompts, --samples continuations each, and the curves are printed side by
side: average maximum toxicity, toxicity probability, perplexity under the
initial policy, dist-1/2/3.

    .venv/bin/python benchmarks/detox_learning_check.py [--steps 40] [--samples 10] [--threads 1]

Takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from training.ml.configs import from_dict  # noqa: E402
from training.ml.progress import NullReporter  # noqa: E402

SUBJECTS = ["The neighbour", "My teacher", "The manager", "That referee", "The driver", "Our landlord", "The critic",
            "The student", "The weather", "The meeting", "The printer", "The coffee", "The episode", "My phone",
            "The waiter", "The project", "The traffic", "The rule", "The hotel", "The match"]
VERBS = ["was", "seemed", "looked", "felt", "sounded"]
CALM = ["nice", "calm", "long", "quiet", "fine", "late", "warm", "busy", "early", "kind"]
MILD = ["stupid", "awful", "nasty", "useless", "terrible"]
THINGS = ["the room", "the day", "the plan", "the food", "the road", "the show", "the trip", "the talk"]
FIGURES = ("eval/avg_max_toxicity", "eval/toxicity_prob", "eval/perplexity", "eval/dist_1", "eval/dist_2", "eval/dist_3")
SHORT = {"eval/avg_max_toxicity": "maxtox", "eval/toxicity_prob": "P(tox)", "eval/perplexity": "ppl",
         "eval/dist_1": "d-1", "eval/dist_2": "d-2", "eval/dist_3": "d-3"}


def sentence(rng: random.Random, toxic_share: float) -> str:
    adjective = rng.choice(MILD) if rng.random() < toxic_share else rng.choice(CALM)
    return f"{rng.choice(THINGS).capitalize()} {rng.choice(VERBS)} {adjective}."


def corpus(n: int, *, seed: int, toxic_share: float) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(CALM)} and"
        continuation = " " + " ".join(sentence(rng, toxic_share) for _ in range(rng.randint(2, 3)))
        out.append({"text": prompt, "answer": [continuation], "passages": [], "question": prompt})
    return out


class Metrics(NullReporter):
    def __init__(self):
        self.by_step: dict[int, dict[str, float]] = {}

    def metrics(self, step, metrics):
        self.by_step.setdefault(step, {}).update(metrics)


def pretrain(work: Path, records: list[dict], *, epochs: int, seed: int) -> Path:
    """The tiny GPT-2 trained as an LM on prompt + continuation (the SFT trainer does this for causal models)."""
    from training.ml.sft import SFTConfig
    from training.ml.sft import run as run_sft
    from training.ml.tiny import build_tiny_causal_lm

    texts = [r["text"] + r["answer"][0] for r in records]
    build_tiny_causal_lm(work / "base", texts=texts, seed=seed, n_embd=64, n_layer=2, vocab_size=400)
    config = from_dict(SFTConfig, {
        "train_file": str(work / "lm.json"), "model_name_or_path": str(work / "base"), "max_input_len": 32,
        "max_output_len": 32, "epochs": epochs, "batch_size": 16, "grad_accum": 1, "learning_rate": 3e-3,
        "warmup_steps": 10, "log_every": 50, "seed": seed,
    })
    (work / "lm.json").write_text(json.dumps(records), encoding="utf-8")
    run_sft(config, kind="sft", output_dir=work / "lm", reporter=NullReporter(), resume_from=None)
    return work / "lm" / "model"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="PPO steps of each run (8 prompts x 4 samples each)")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--eval-prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=10, help="continuations per eval prompt (the literature: 25)")
    parser.add_argument("--lm-epochs", type=int, default=6)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--toxic-share", type=float, default=0.3, help="share of corpus sentences with a listed word")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from training.ml.detox.config import DETOX_FINE_GRAINED, DETOX_HOLISTIC, DetoxPPOConfig
    from training.ml.detox.ppo import run
    from training.ml.progress import quiet_transformers

    quiet_transformers()
    work = args.out or Path(tempfile.mkdtemp(prefix="granary-detox-check-"))
    work.mkdir(parents=True, exist_ok=True)
    records = corpus(600, seed=args.seed, toxic_share=args.toxic_share)
    prompts = [{**r, "answer": []} for r in corpus(200 + args.eval_prompts, seed=args.seed + 1, toxic_share=0)]
    (work / "train.json").write_text(json.dumps(prompts[:200]), encoding="utf-8")
    (work / "dev.json").write_text(json.dumps(prompts[200:]), encoding="utf-8")
    started = time.time()
    policy = pretrain(work, records, epochs=args.lm_epochs, seed=args.seed)
    print(f"pretrained the tiny GPT-2 on {len(records)} continuations ({args.toxic_share:.0%} of sentences with a "
          f"listed word) in {time.time() - started:.0f}s")

    curves: dict[str, dict[int, dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    for name, kind in (("fine-grained", DETOX_FINE_GRAINED), ("holistic", DETOX_HOLISTIC)):
        preset = {"ppo_detox_fine_grained": {"kl_coef": 0.3, "gae_lambda": 0.95},
                  "ppo_detox_holistic": {"kl_coef": 0.2, "gae_lambda": 0.99}}[kind]
        config = from_dict(DetoxPPOConfig, {
            "train_file": str(work / "train.json"), "eval_file": str(work / "dev.json"), "policy_model": str(policy),
            "scorer": "lexicon", "lexicon_words": MILD, "total_episodes": args.steps * 32, "prompts_per_step": 8,
            "samples_per_prompt": 4, "max_input_len": 32, "max_new_tokens": 32, "top_p": 0.9, "temperature": 1.0,
            "train_batch_size": 16, "micro_batch_size": 16, "learning_rate": args.learning_rate, "warmup_steps": 2,
            "eval_every": args.eval_every, "eval_samples_per_prompt": args.samples, "eval_batch_size": 80,
            "num_eval_samples": 0, "seed": args.seed, **preset,
        })
        reporter = Metrics()
        began = time.time()
        run(config, kind=kind, output_dir=work / kind, reporter=reporter, resume_from=None)
        seconds[name] = time.time() - began
        curves[name] = {step: m for step, m in reporter.by_step.items() if "eval/avg_max_toxicity" in m}

    names = list(curves)
    print(f"\nHeld-out: {args.eval_prompts} prompts x {args.samples} samples (top-p 0.9), same budget: {args.steps} steps "
          f"x 32 continuations; perplexity under the initial policy")
    header = " | ".join(f"{n:^41}" for n in names)
    print(f"{'step':>4} | {header}")
    print(f"{'':>4} | " + " | ".join(" ".join(f"{SHORT[k]:>6}" for k in FIGURES) for _ in names))
    for step in sorted(curves[names[0]]):
        row = " | ".join(" ".join(f"{curves[n].get(step, {}).get(k, float('nan')):>6.3f}" if k != "eval/perplexity"
                                  else f"{curves[n].get(step, {}).get(k, float('nan')):>6.1f}" for k in FIGURES)
                         for n in names)
        print(f"{step:>4} | {row}")
    ok = True
    for n in names:
        steps = sorted(curves[n])
        first, last = curves[n][steps[0]], curves[n][steps[-1]]
        lowered = last["eval/avg_max_toxicity"] < first["eval/avg_max_toxicity"]
        ok &= lowered
        print(f"{n:>12}: avg max toxicity {first['eval/avg_max_toxicity']:.3f} -> {last['eval/avg_max_toxicity']:.3f} "
              f"({'lower' if lowered else 'NOT lower'}), toxicity prob {first['eval/toxicity_prob']:.2f} -> "
              f"{last['eval/toxicity_prob']:.2f}, perplexity {first['eval/perplexity']:.1f} -> {last['eval/perplexity']:.1f}, "
              f"{seconds[n]:.0f}s")
    print(f"\n(working folder: {work})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
