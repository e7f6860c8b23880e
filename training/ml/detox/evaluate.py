"""Detox evaluation: `eval_samples_per_prompt` sampled continuations per prompt, scored as in the literature.

Metrics (under `eval/`): avg_max_toxicity, toxicity_prob, perplexity (under the
reference LM), dist_1 / dist_2 / dist_3, mean_reward (the run's reward function,
no KL) and length. Under data parallelism each process samples its share of the
prompts; records are gathered before the figures are computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from training.ml.detox import metrics as detox_metrics


@dataclass
class DetoxEvalReport:
    metrics: dict[str, float]
    samples: list[dict] = field(default_factory=list)  # prompt, text, segments, total_reward


def _continuation_logprobs(lm: Any, prompts: Any, response: torch.Tensor, mask: torch.Tensor, *, same_tokens: bool,
                           texts: Sequence[str], prompt_texts: Sequence[str], max_input_len: int) -> tuple[float, int]:
    """Sum of log-probabilities of the continuations under `lm`, and their token count."""
    if not same_tokens:  # another tokenizer: its own ids for the same texts
        prompts = lm.encode_prompts(list(prompt_texts), max_input_len=max_input_len, max_new_tokens=response.shape[1])
        rows = [lm.tokenizer(t, add_special_tokens=False)["input_ids"] + [lm.eos_token_id] for t in texts]
        width = max(len(r) for r in rows)
        response = torch.full((len(rows), width), lm.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width))
        for i, row in enumerate(rows):
            response[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
    with torch.no_grad():
        logprobs, _ = lm.score(prompts.to(lm.device), response.to(lm.device), mask.to(lm.device), temperature=1.0)
    return float(logprobs.sum()), int(mask.sum())


def evaluate_detox(policy: Any, examples: Sequence[Any], *, reward_fn: Any, perplexity_lm: Any, same_tokens: bool,
                   config: Any, accelerator: Any = None) -> DetoxEvalReport:
    """Sample, score and measure; `perplexity_lm` is a Policy (the initial policy unless configured)."""
    indices = list(range(len(examples)))
    if accelerator is not None and accelerator.num_processes > 1:
        indices = indices[accelerator.process_index :: accelerator.num_processes]
    n = config.eval_samples_per_prompt
    torch.manual_seed(config.seed)  # the same sampling noise at every evaluation
    rows = [(i, s) for i in indices for s in range(n)]
    records: list[dict] = []
    for start in range(0, len(rows), config.eval_batch_size):
        chunk = rows[start : start + config.eval_batch_size]
        chunk_examples = [examples[i] for i, _ in chunk]
        prompt_texts = [e.text for e in chunk_examples]
        prompts = policy.encode_prompts(prompt_texts, max_input_len=config.max_input_len, max_new_tokens=config.max_new_tokens)
        ids, mask = policy.generate(prompts, max_new_tokens=config.max_new_tokens, do_sample=True, top_k=config.top_k,
                                    top_p=config.top_p, temperature=config.temperature)
        valid = [ids[r][mask[r].bool()].tolist() for r in range(len(chunk))]
        results = reward_fn(chunk_examples, valid)
        logprob, tokens = _continuation_logprobs(perplexity_lm, prompts, ids, mask.float(), same_tokens=same_tokens,
                                                 texts=[r.text for r in results], prompt_texts=prompt_texts,
                                                 max_input_len=config.max_input_len)
        for (index, sample), result, tok in zip(chunk, results, valid):
            records.append({"index": index, "sample": sample, "text": result.text, "toxicity": result.extra["toxicity"],
                            "reward": result.total, "pieces": result.pieces,
                            "length": len(tok) - (1 if tok and tok[-1] == policy.eos_token_id else 0)})
        records[-1]["logprob"], records[-1]["tokens"] = logprob, tokens
    if accelerator is not None and accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        records = gather_object(records)
    records.sort(key=lambda r: (r["index"], r["sample"]))
    by_prompt: dict[int, list[dict]] = {}
    for r in records:
        by_prompt.setdefault(r["index"], []).append(r)
    toxicity = [[r["toxicity"] for r in rs] for rs in by_prompt.values()]
    texts = [[r["text"] for r in rs] for rs in by_prompt.values()]
    count = max(1, len(records))
    figures = {
        "eval/avg_max_toxicity": detox_metrics.avg_max_toxicity(toxicity),
        "eval/toxicity_prob": detox_metrics.toxicity_prob(toxicity, threshold=config.toxicity_threshold),
        "eval/perplexity": detox_metrics.perplexity(sum(r.get("logprob", 0.0) for r in records),
                                                    sum(r.get("tokens", 0) for r in records)),
        "eval/mean_reward": sum(r["reward"] for r in records) / count,
        "eval/length": sum(r["length"] for r in records) / count,
    }
    for k in (1, 2, 3):
        figures[f"eval/dist_{k}"] = detox_metrics.mean_distinct_n(texts, k)
    samples = [{"prompt": examples[rs[0]["index"]].text, "text": rs[0]["text"], "segments": rs[0]["pieces"],
                "total_reward": rs[0]["reward"]} for rs in list(by_prompt.values())[: config.num_eval_samples]]
    return DetoxEvalReport(metrics=figures, samples=samples)
