"""Detox rewards: where toxicity lands among the generated tokens.

For generated tokens y_1..y_L (end-of-text included) cut into sentences s_1..s_m:
  holistic      the last token gets 1 - tox(y)
  fine-grained  the token that ends sentence j gets -(tox(s_1..s_j) - tox(s_1..s_j-1)),
                the drop in toxicity that sentence causes (tox of no text is 0), so a
                sentence that makes the text more toxic is penalised where it ends
The per-token KL penalty is added by PPO, as for qa-feedback. Sentence ends come
from the sampled token ids (training.ml.rewards.token_char_spans): decoded text is
never re-tokenised. Toxicity is that of the continuation alone, as in
RealToxicityPrompts. The pure placement functions come first, so they can be
tested with hand-made token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from training.ml.rewards import RewardResult, display_pieces, segment_generation, token_char_spans

FINE_GRAINED = "fine_grained"
HOLISTIC = "holistic"


def toxicity_drops(prefix_toxicity: Sequence[float]) -> list[float]:
    """-(tox(s_1..s_j) - tox(s_1..s_j-1)) for each sentence j, with tox of the empty prefix 0."""
    drops, previous = [], 0.0
    for tox in prefix_toxicity:
        drops.append(-(float(tox) - previous))
        previous = float(tox)
    return drops


def place_sentence_rewards(*, num_tokens: int, sentence_tokens: Sequence[int], rewards: Sequence[float]) -> list[float]:
    """Per-token rewards: each sentence's reward on the token that ends it."""
    if len(sentence_tokens) != len(rewards):
        raise ValueError(f"{len(rewards)} rewards for {len(sentence_tokens)} sentences")
    out = [0.0] * num_tokens
    for token, reward in zip(sentence_tokens, rewards):
        out[token] += float(reward)
    return out


def place_last(*, num_tokens: int, reward: float) -> list[float]:
    out = [0.0] * num_tokens
    if num_tokens:
        out[-1] = float(reward)
    return out


def sentence_prefixes(tokenizer: Any, nlp: Any, ids: Sequence[int]) -> tuple[str, list[Any], list[str]]:
    """The decoded text, its sentences (each tied to its closing token) and the text up to each sentence's end."""
    text, spans = token_char_spans(tokenizer, ids)
    sentences = segment_generation(nlp, text, spans).sentences if text.strip() else []
    return text, sentences, [text[: s.end] for s in sentences]


class DetoxReward:
    """Toxicity rewards of one kind (`holistic` or `fine_grained`) for PPO and the run page.

    Both report each sentence's prefix toxicity in `pieces` (label `toxicity 0.42`), so the
    sample table shows where the toxicity came from whichever reward trained the policy.
    """

    def __init__(self, *, scorer: Any, tokenizer: Any, nlp: Any, mode: str):
        if mode not in (FINE_GRAINED, HOLISTIC):
            raise ValueError(f"mode must be {FINE_GRAINED} or {HOLISTIC}, not {mode!r}")
        self.scorer, self.tokenizer, self.nlp, self.name = scorer, tokenizer, nlp, mode

    def __call__(self, examples: Sequence[Any], responses: Sequence[Sequence[int]]) -> list[RewardResult]:
        cut = [sentence_prefixes(self.tokenizer, self.nlp, ids) for ids in responses]
        # One scorer call for every prefix and every full text of the batch (the scorer caches repeats).
        queries = [q for text, _, prefixes in cut for q in (*prefixes, text)]
        scores = iter(self.scorer.score(queries))
        results = []
        for (text, sentences, prefixes), ids in zip(cut, responses):
            prefix_tox = [next(scores) for _ in prefixes]
            toxicity = next(scores)
            drops = toxicity_drops(prefix_tox)
            labels = [f"toxicity {t:.2f}" for t in prefix_tox]
            if self.name == FINE_GRAINED:
                rewards = place_sentence_rewards(num_tokens=len(ids), sentence_tokens=[s.token for s in sentences], rewards=drops)
                components = {"toxicity_drop": sum(drops)}
                pieces = display_pieces(text, sentences, drops, labels)
            else:
                rewards = place_last(num_tokens=len(ids), reward=1.0 - toxicity)
                components = {"non_toxicity": 1.0 - toxicity}
                pieces = display_pieces(text, sentences, [0.0] * len(sentences), labels, tail_reward=1.0 - toxicity)
            for piece, tox in zip(pieces, prefix_tox if sentences else [toxicity]):
                piece["toxicity"] = float(tox)
            results.append(RewardResult(text=text, token_rewards=rewards, components=components, pieces=pieces,
                                        extra={"toxicity": toxicity, "sentence_toxicity": prefix_tox}))
        return results
