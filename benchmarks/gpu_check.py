"""GPU check: PPO and reward-model steps at the paper's sizes on one GPU, with tokens/s, MFU, memory and time split.

Models are built from their configs with random weights (nothing from the hub):

  policy + reference   T5-large sized (24+24 layers, d_model 1024, 32128-token vocabulary)
  value model          t5-base sized (the paper preset's `value_model`)
  R1, R2, R3           longformer-base sized (12 layers, hidden 768, window 512)

PPO runs the `ppo_fine_grained` paper preset's shapes (8 prompts x 4 samples, prompts up to
1024 tokens, answers up to 200, 4 PPO epochs, bf16) for a few steps through the real trainer
(training.ml.ppo.train). A random policy rarely ends an answer early, so the answers are the
longest the preset allows: a worst case. Its rewards come from the three longformers run on
inputs of the shapes the real reward function builds (the policy's token ids stand in for
text, so no tokenizer of the real vocabulary is needed). Checkpoint saving is left out.
Then a few optimizer steps of a longformer token-classification reward model (R2's paper
batch at 2048 tokens).

The trainer's own `perf/` figures are printed per step, and the median of the steps after
the first (which includes CUDA warm-up). `--cpu-smoke` runs the same code at tiny sizes on a
CPU in seconds, to check the script itself.

    benchmarks/gpu_check.sh                 # on a GPU node, a few minutes
    .venv/bin/python benchmarks/gpu_check.py --cpu-smoke
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

QA_DEV = REPO_ROOT.parent / "shared" / "data" / "qa_feedback" / "dev.json"

# (policy T5 config, value T5 config, longformer config, PPO settings, RM batch, RM length)
SIZES = {
    "paper": {
        # t5-large and t5-base (the original T5: ReLU feed-forward), as the paper trained.
        "t5_policy": dict(d_model=1024, d_ff=4096, num_layers=24, num_decoder_layers=24, num_heads=16, d_kv=64,
                          vocab_size=32128, feed_forward_proj="relu"),
        "t5_value": dict(d_model=768, d_ff=3072, num_layers=12, num_decoder_layers=12, num_heads=12, d_kv=64,
                         vocab_size=32128, feed_forward_proj="relu"),
        "longformer": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                           attention_window=512, max_position_embeddings=4098, vocab_size=50265),
        "ppo": dict(prompts_per_step=8, samples_per_prompt=4, max_input_len=1024, max_new_tokens=200,
                    generation_batch_size=32, train_batch_size=32, micro_batch_size=4, ppo_epochs=4,
                    mixed_precision="bf16"),
        "rm_batch": 12, "rm_length": 2048, "rm_window": 1024,
    },
    "smoke": {
        "t5_policy": dict(d_model=32, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2, d_kv=16, vocab_size=512),
        "t5_value": dict(d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=8, vocab_size=512),
        "longformer": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           attention_window=16, max_position_embeddings=258, vocab_size=512),
        "ppo": dict(prompts_per_step=2, samples_per_prompt=2, max_input_len=32, max_new_tokens=6,
                    generation_batch_size=4, train_batch_size=4, micro_batch_size=2, ppo_epochs=1, mixed_precision="no"),
        "rm_batch": 2, "rm_length": 64, "rm_window": 32,
    },
}


def build_models(root: Path, sizes: dict, texts: list[str]) -> tuple[Path, Path]:
    """A T5 policy and value model (random weights) saved with a tokenizer; their folders."""
    from transformers import T5Config, T5ForConditionalGeneration

    from training.ml.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(texts=texts, vocab_size=400)
    folders = []
    for name, key in (("policy", "t5_policy"), ("value", "t5_value")):
        config = T5Config(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                          decoder_start_token_id=tokenizer.pad_token_id, **sizes[key])
        model = T5ForConditionalGeneration(config)
        # The tokenizer only encodes the prompts; the model keeps the real vocabulary size
        # (the softmax over 32128 tokens is part of the cost).
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        folders.append(root / name)
        del model
    return folders[0], folders[1]


class LongformerRewards:
    """Fine-grained rewards from three longformer-sized models run on inputs of the real shapes.

    R1 reads question + answer (short), R2 and R3 read question + passages + answer (up to the
    model's window); labels come from R1/R2 at every 20th answer token (a segment end), R3's
    score on the last token. The numbers are meaningless; the work is the real work.
    """

    name = "fine_grained"

    def __init__(self, sizes: dict, device, dtype, prompt_tokens: int) -> None:
        import torch
        from transformers import LongformerConfig, LongformerForSequenceClassification, LongformerForTokenClassification

        config = LongformerConfig(**sizes["longformer"], num_labels=2)
        self.r1 = LongformerForTokenClassification(config).to(device, dtype).eval()
        self.r2 = LongformerForTokenClassification(config).to(device, dtype).eval()
        self.r3 = LongformerForSequenceClassification(LongformerConfig(**sizes["longformer"], num_labels=1)).to(device, dtype).eval()
        self.device, self.vocab = device, config.vocab_size
        self.long = min(sizes["rm_window"], prompt_tokens + sizes["ppo"]["max_new_tokens"])
        self.torch = torch

    def _ids(self, responses, length: int):
        torch = self.torch
        rows = []
        for ids in responses:
            answer = [i % self.vocab for i in ids][: length - 8]
            rows.append(([5] * (length - len(answer)) + answer)[:length])
        return torch.tensor(rows, device=self.device)

    def __call__(self, examples, responses):
        from training.ml.rewards import RewardResult

        torch = self.torch
        with torch.no_grad():
            short = self._ids(responses, 32 + max(len(r) for r in responses))
            long = self._ids(responses, self.long)
            r1 = self.r1(input_ids=short).logits.argmax(-1).cpu()
            r2 = self.r2(input_ids=long).logits.argmax(-1).cpu()
            r3 = self.r3(input_ids=long).logits[:, 0].float().cpu()
        results = []
        for row, ids in enumerate(responses):
            rewards = [0.0] * len(ids)
            for t in range(19, len(ids), 20):
                rewards[t] += 0.3 if r1[row, t % r1.shape[1]] == 0 else -0.3
                rewards[t] += 0.5 if r2[row, t % r2.shape[1]] == 0 else -0.5
            if rewards:
                rewards[-1] += 0.3 * float(r3[row])
            results.append(RewardResult(text="", token_rewards=rewards, components={"completeness": 0.3 * float(r3[row])},
                                        pieces=[]))
        return results


class Collect:
    """A reporter that keeps the metrics (and prints the steps) instead of writing events."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def metrics(self, step, metrics):
        if "perf/step_seconds" in metrics:
            self.steps.append(dict(metrics))
            print(f"  step {step}: " + ", ".join(f"{k[5:]} {v:.4g}" for k, v in sorted(metrics.items())
                                                 if k.startswith("perf/")), flush=True)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def ppo_check(args, sizes: dict, root: Path) -> dict[str, float]:
    import torch

    from training.ml import ppo
    from training.ml.configs import PPOConfig, from_dict

    records = json.loads(QA_DEV.read_text(encoding="utf-8"))[:64] if QA_DEV.is_file() else []
    texts = [r["text"] for r in records] or ["question: where is Paris? context: Paris is the capital of France."] * 8
    (root / "train.json").write_text(json.dumps(records or [{"text": t, "answer": ["x"]} for t in texts]), encoding="utf-8")
    policy_dir, value_dir = build_models(root, sizes, texts)
    settings = dict(sizes["ppo"])
    per_step = settings["prompts_per_step"] * settings["samples_per_prompt"]
    config = from_dict(PPOConfig, {
        **settings, "train_file": str(root / "train.json"), "policy_model": str(policy_dir), "value_model": str(value_dir),
        "rm_preference_model": "unused", "total_episodes": per_step * args.ppo_steps, "eval_every": 10_000,
        "top_k": 20, "temperature": 0.7, "learning_rate": 1e-5, "warmup_steps": 1, "kl_coef": 0.3, "gae_lambda": 0.95,
        "gradient_checkpointing": args.checkpointing, "lora_r": args.lora_r, "rm_dtype": args.rm_dtype,
    })
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu_smoke else "cpu")
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.rm_dtype]
    reward = LongformerRewards(sizes, device, dtype, prompt_tokens=settings["max_input_len"])
    reporter = Collect()
    save = ppo.PPOTrainer.save
    ppo.PPOTrainer.save = lambda self, name: None  # checkpoint writing is not what this measures
    try:
        ppo.train(config, kind="ppo_fine_grained", output_dir=root / "out", reporter=reporter, resume_from=None,
                  reward_fn=reward, judge_fn=None)
    finally:
        ppo.PPOTrainer.save = save
    return summarise("PPO", reporter.steps)


def rm_check(args, sizes: dict) -> dict[str, float]:
    import torch
    from transformers import LongformerConfig, LongformerForTokenClassification

    from training.ml.perf import StepTimer, parameter_count, peak_flops, training_flops

    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu_smoke else "cpu")
    model = LongformerForTokenClassification(LongformerConfig(**sizes["longformer"], num_labels=2)).to(device)
    if args.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-6)
    batch, length = sizes["rm_batch"], sizes["rm_length"]
    params = parameter_count(model)
    steps = []
    generator = torch.Generator().manual_seed(0)
    for step in range(args.rm_steps):
        ids = torch.randint(5, model.config.vocab_size, (batch, length), generator=generator).to(device)
        labels = torch.full((batch, length), -100).to(device)
        labels[:, ::20] = torch.randint(0, 2, labels[:, ::20].shape, generator=generator).to(device)
        timer = StepTimer(device)
        with timer.section("training"):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        metrics = timer.metrics(tokens=batch * length, samples=batch, flops=training_flops(params, batch * length),
                                peak=peak_flops(device))
        metrics = {k: v for k, v in metrics.items() if not k.endswith(("generation_seconds", "scoring_seconds"))}
        steps.append(metrics)
        print(f"  step {step + 1}: " + ", ".join(f"{k[5:]} {v:.4g}" for k, v in sorted(metrics.items())), flush=True)
    return summarise("RM", steps)


def summarise(name: str, steps: list[dict[str, float]]) -> dict[str, float]:
    """Medians of the steps after the first (CUDA warm-up, allocator growth); all of them if only one."""
    kept = steps[1:] or steps
    keys = sorted({k for s in kept for k in s})
    summary = {k: statistics.median(s[k] for s in kept if k in s) for k in keys}
    print(f"{name} median of {len(kept)} step(s):")
    for key in keys:
        print(f"  {key:28} {summary[key]:.4g}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU: checks the script, in seconds")
    parser.add_argument("--ppo-steps", type=int, default=None, help="PPO steps (default 4; 2 with --cpu-smoke)")
    parser.add_argument("--rm-steps", type=int, default=None, help="RM steps (default 8; 2 with --cpu-smoke)")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing in PPO and the RM")
    parser.add_argument("--lora-r", type=int, default=0, help="LoRA rank for policy and value (0 = full training)")
    parser.add_argument("--rm-dtype", choices=("float32", "bfloat16"), default="bfloat16")
    parser.add_argument("--json", type=Path, help="also write the medians here")
    args = parser.parse_args(argv)

    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print("no CUDA GPU: run with --cpu-smoke to check the script on a CPU", file=sys.stderr)
        return 2
    sizes = SIZES["smoke" if args.cpu_smoke else "paper"]
    args.ppo_steps = args.ppo_steps or (2 if args.cpu_smoke else 4)
    args.rm_steps = args.rm_steps or (2 if args.cpu_smoke else 8)
    if args.cpu_smoke:
        torch.set_num_threads(1)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.cpu_smoke else "CPU"
    print(f"gpu_check on {device}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", flush=True)
    print(f"  options: checkpointing={args.checkpointing} lora_r={args.lora_r} rm_dtype={args.rm_dtype}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        print("PPO (paper preset shapes):", flush=True)
        ppo = ppo_check(args, sizes, Path(tmp))
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    print("Reward model (longformer-base sized, token classification):", flush=True)
    rm = rm_check(args, sizes)
    print(f"total {time.perf_counter() - started:.0f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": device, "ppo": ppo, "rm": rm}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
