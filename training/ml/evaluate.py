"""Evaluation of a policy on dev: greedy answers, ROUGE-Lsum, rewards, lengths and sample generations.

Metrics (all under `eval/`):
  rouge_lsum           ROUGE-Lsum F1 against the best-matching reference answer
  mean_reward          mean total reward of the run's reward function (no KL term)
  relevance_ratio      share of sub-sentences R1 judged `O`     } fine-grained reward
  factuality_ratio     share of sentences R2 judged `O`         } models, when present
  completeness_reward  mean R3 reward (scaled, as it enters the fine-grained reward)
  length               mean generated tokens (end-of-text not counted)
A ratio is left out when no answer had a segment to judge (all answers empty).
Under data parallelism each process decodes its share; results are gathered
before the metrics are computed, so every process returns the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from annotation.qa import text as text_split
from training.ml.data import Example
from training.ml.rewards import RewardResult

RewardFn = Callable[[Sequence[Example], Sequence[Sequence[int]]], list[RewardResult]]


def _sentences_on_lines(nlp: Any, text: str) -> str:
    # ROUGE-Lsum treats newlines as sentence boundaries; without them it degrades to ROUGE-L.
    return "\n".join(" ".join(words) for words in text_split.split_sentences(nlp, text.strip()))


def rouge_lsum(predictions: Sequence[str], references: Sequence[Sequence[str]], *, nlp: Any) -> list[float]:
    """ROUGE-Lsum F1 of each prediction against its best reference (stemmed, as in the paper's SFT)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    scores = []
    for prediction, refs in zip(predictions, references):
        refs = [r for r in refs if r.strip()]
        if not refs:
            scores.append(0.0)
            continue
        pred = _sentences_on_lines(nlp, prediction)
        targets = [_sentences_on_lines(nlp, r) for r in refs]
        scores.append(float(scorer.score_multi(targets, pred)["rougeLsum"].fmeasure))
    return scores


@dataclass
class Generation:
    """One dev example's greedy answer: valid ids (end-of-text included) and the decoded text."""

    index: int
    ids: list[int]
    text: str
    length: int


def greedy_answers(policy: Any, examples: Sequence[Example], *, batch_size: int, max_input_len: int,
                   max_new_tokens: int, indices: Sequence[int] | None = None) -> list[Generation]:
    """Greedy-decode `examples`; `indices` are their positions in the full dev list (for gathering)."""
    indices = list(indices if indices is not None else range(len(examples)))
    out: list[Generation] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        prompts = policy.encode_prompts([e.text for e in chunk], max_input_len=max_input_len, max_new_tokens=max_new_tokens)
        ids, mask = policy.generate(prompts, max_new_tokens=max_new_tokens, do_sample=False)
        for row in range(len(chunk)):
            valid = ids[row][mask[row].bool()].tolist()
            length = len(valid) - (1 if valid and valid[-1] == policy.eos_token_id else 0)
            out.append(Generation(indices[start + row], valid, policy.decode(valid), length))
    return out


@dataclass
class EvalReport:
    metrics: dict[str, float]
    samples: list[dict] = field(default_factory=list)  # prompt, text, segments, total_reward


def _ratio(pairs: Sequence[tuple[int, int]]) -> float | None:
    judged = sum(n for _, n in pairs)
    return sum(ok for ok, _ in pairs) / judged if judged else None


def evaluate_policy(
    policy: Any,
    examples: Sequence[Example],
    *,
    reward_fn: RewardFn | None,
    judge_fn: RewardFn | None = None,
    nlp: Any,
    batch_size: int,
    max_input_len: int,
    max_new_tokens: int,
    num_samples: int = 4,
    accelerator: Any = None,
) -> EvalReport:
    """Greedy answers on `examples` scored by ROUGE-Lsum, `reward_fn` and (for the ratios) `judge_fn`.

    `judge_fn` is a fine-grained reward function used only to measure the
    relevance / factuality / completeness figures; when `reward_fn` is itself
    fine-grained, leave it None and its results are used.
    """
    indices = list(range(len(examples)))
    if accelerator is not None and accelerator.num_processes > 1:
        indices = indices[accelerator.process_index :: accelerator.num_processes]
    local = [examples[i] for i in indices]
    generations = greedy_answers(policy, local, batch_size=batch_size, max_input_len=max_input_len,
                                 max_new_tokens=max_new_tokens, indices=indices)
    records = []
    for start in range(0, len(generations), batch_size):
        chunk = generations[start : start + batch_size]
        chunk_examples = [examples[g.index] for g in chunk]
        ids = [g.ids for g in chunk]
        rewards = reward_fn(chunk_examples, ids) if reward_fn is not None else [None] * len(chunk)
        judged = judge_fn(chunk_examples, ids) if judge_fn is not None else rewards
        for g, r, j in zip(chunk, rewards, judged):
            records.append({
                "index": g.index,
                "text": g.text,
                "length": g.length,
                "reward": r.total if r is not None else None,
                "pieces": r.pieces if r is not None else [],
                "relevance": tuple(j.relevance) if j is not None and "relevance" in j.components else None,
                "factuality": tuple(j.factuality) if j is not None and "factuality" in j.components else None,
                "completeness": j.components.get("completeness") if j is not None else None,
            })
    if accelerator is not None and accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        records = gather_object(records)
    records.sort(key=lambda r: r["index"])
    records = list({r["index"]: r for r in records}.values())

    texts = [r["text"] for r in records]
    rouge = rouge_lsum(texts, [examples[r["index"]].answers for r in records], nlp=nlp)
    n = max(1, len(records))
    metrics: dict[str, float] = {
        "eval/rouge_lsum": sum(rouge) / n,
        "eval/length": sum(r["length"] for r in records) / n,
    }
    rewards = [r["reward"] for r in records if r["reward"] is not None]
    if rewards:
        metrics["eval/mean_reward"] = sum(rewards) / len(rewards)
    relevance = _ratio([r["relevance"] for r in records if r["relevance"] is not None])
    factuality = _ratio([r["factuality"] for r in records if r["factuality"] is not None])
    completeness = [r["completeness"] for r in records if r["completeness"] is not None]
    if relevance is not None:
        metrics["eval/relevance_ratio"] = relevance
    if factuality is not None:
        metrics["eval/factuality_ratio"] = factuality
    if completeness:
        metrics["eval/completeness_reward"] = sum(completeness) / len(completeness)

    samples = []
    for r in records[:num_samples]:
        samples.append({
            "prompt": examples[r["index"]].text,
            "text": r["text"],
            "segments": r["pieces"],
            "total_reward": r["reward"],
        })
    return EvalReport(metrics=metrics, samples=samples)
