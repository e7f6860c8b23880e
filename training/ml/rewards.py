"""Reward functions for PPO: where each reward lands among the generated tokens.

Fine-grained (paper section 4), for generated tokens y_1..y_L:
  - the token that ends each sub-sentence gets `relevance_positive` if R1 says
    `O`, else `relevance_negative`;
  - the token that ends each sentence gets `factuality_positive` if R2 says
    `O`, else `factuality_negative`;
  - the last token gets `completeness_scale * (R3 - mean3) / std3`.
Holistic: the last token gets `(R_pref - mean) / std`.
The KL penalty `-beta * (log pi - log pi_ref)` is added per token by PPO
(`kl_penalized_rewards`), because it needs the log-probabilities.

Two defects of the reference implementation are designed out here:
  1. Segment ends come from the sampled token ids: each token's characters in
     the decoded text are what the decoding of the ids up to it adds (read off
     short windows of those very ids in linear time, `token_char_spans`), and
     a segment ends on the token that produced its
     last character. Decoded text is never re-tokenised (a re-tokenisation may
     split the text into different tokens than the policy sampled).
  2. Reward-model labels are matched to segments by separator order, and the
     reward models keep one label per separator however long the input is
     (see reward_models.py), so truncation cannot shift a label onto another
     segment. A separator string inside a text is defused so it cannot add a
     separator either.

Everything above the reward-function classes is a pure function, so reward
placement can be tested with hand-made tokens and labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from annotation.qa import text as text_split
from annotation.qa.vocab import NO_ERROR, SEPARATOR
from training.ml.reward_models import answer_words_from_segments, preference_rm_text, token_rm_words


# ---------------------------------------------------------------- tokens and segments


def _common_prefix_length(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prefix_token_char_spans(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """`token_char_spans` by its definition: decode every prefix (quadratic in the length; the reference for tests).

    Token k produced the characters that the decoding of `ids[:k+1]` adds to
    that of `ids[:k]`. Only the part of each prefix decoding that agrees with
    the full text counts, so a token whose decoding changes with what follows
    (a half UTF-8 character, a dropped leading space) hands its characters to
    the token that settles them. Spans are contiguous and cover the text;
    special tokens get empty spans.
    """
    ids = [int(i) for i in ids]
    if not ids:
        return "", []
    text = tokenizer.decode(ids, **_DECODE)
    prefixes = tokenizer.batch_decode([ids[: k + 1] for k in range(len(ids))], **_DECODE)
    spans: list[tuple[int, int]] = []
    previous = 0
    for prefix in prefixes:
        end = max(previous, _common_prefix_length(prefix, text))
        spans.append((previous, end))
        previous = end
    if previous < len(text):  # cannot happen when the last prefix decodes to the text; stay total anyway
        spans[-1] = (spans[-1][0], len(text))
    return text, spans


_DECODE = {"skip_special_tokens": True, "clean_up_tokenization_spaces": False}
# Tokens decoded before a window's first new token, so that what a decoder does to a text's
# first token (drop its leading space) happens to the context, never to the tokens being placed.
CONTEXT_TOKENS = 4
# A window that has found no settled boundary for this many tokens gives way to a full prefix decoding.
MAX_WINDOW = 64


def token_char_spans(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """The decoded text of `ids` and, per token, the characters [start, end) of that text it produced.

    The same spans as `prefix_token_char_spans` (see its definition), in time
    linear in the length: the prefix decoding of token k is the text up to the
    last settled boundary (a prefix whose decoding is exactly the start of the
    text) followed by the decoding of the few tokens since, read off a short
    window that starts a few settled tokens earlier. Decoders are local (a
    dropped leading space, a character split over byte tokens), so the window
    decodes those tokens as the full prefix does; where a window's context does
    not decode as the text there (or no boundary settles for `MAX_WINDOW`
    tokens), the full prefix is decoded instead.
    """
    ids = [int(i) for i in ids]
    if not ids:
        return "", []
    text = tokenizer.decode(ids, **_DECODE)
    special = set(getattr(tokenizer, "all_special_ids", ()))
    anchors = [(0, 0)]  # settled boundaries: (tokens, characters) with decode(ids[:tokens]) == text[:characters]
    spans: list[tuple[int, int]] = []
    previous = 0
    for k in range(len(ids)):
        agreed, decoded = _window_prefix(tokenizer, ids, text, k, anchors, special)
        end = max(previous, agreed)
        spans.append((previous, end))
        previous = end
        if agreed == decoded:
            anchors.append((k + 1, decoded))
    if previous < len(text):
        spans[-1] = (spans[-1][0], len(text))
    return text, spans


def _window_prefix(tokenizer: Any, ids: list[int], text: str, k: int, anchors: list[tuple[int, int]],
                   special: set[int]) -> tuple[int, int]:
    """(characters of text the decoding of ids[:k+1] agrees with, that decoding's length)."""
    anchor, offset = anchors[-1]
    if k + 1 - anchor <= MAX_WINDOW:
        start, start_offset = _context_anchor(ids, anchors, special)
        context = tokenizer.decode(ids[start:anchor], **_DECODE) if start < anchor else ""
        settled = text[start_offset:offset]
        # The context decodes as the text there, but for a first token's dropped leading whitespace.
        if settled.endswith(context) and not settled[: len(settled) - len(context)].strip():
            window = tokenizer.decode(ids[start : k + 1], **_DECODE)
            if window.startswith(context):
                tail = window[len(context):]
                return offset + _common_prefix_length(tail, text[offset : offset + len(tail)]), offset + len(tail)
    prefix = tokenizer.decode(ids[: k + 1], **_DECODE)
    return _common_prefix_length(prefix, text), len(prefix)


def _context_anchor(ids: list[int], anchors: list[tuple[int, int]], special: set[int]) -> tuple[int, int]:
    """The latest settled boundary with at least CONTEXT_TOKENS ordinary tokens between it and the last one."""
    anchor = anchors[-1][0]
    for start, start_offset in reversed(anchors):
        if start == 0 or sum(1 for i in ids[start:anchor] if i not in special) >= CONTEXT_TOKENS:
            return start, start_offset
    return anchors[0]


def token_at_char(spans: Sequence[tuple[int, int]], char: int) -> int:
    """Index of the token that produced character `char` of the decoded text."""
    for index, (start, end) in enumerate(spans):
        if start <= char < end:
            return index
    raise ValueError(f"character {char} was produced by no token (text length {spans[-1][1] if spans else 0})")


@dataclass(frozen=True)
class Segment:
    """A sentence or sub-sentence of a generated text: its words, characters [start, end) and closing token."""

    words: tuple[str, ...]
    start: int
    end: int
    token: int


@dataclass(frozen=True)
class Segmentation:
    sentences: list[Segment]
    subsentences: list[Segment]


def segment_generation(nlp: Any, text: str, spans: Sequence[tuple[int, int]]) -> Segmentation:
    """Sentences and sub-sentences of a generated text, each tied to the token that ends it.

    The splitter runs on the text with outer whitespace stripped, as when the
    reward-model files were built; offsets are mapped back onto `text`.
    """
    lead = len(text) - len(text.lstrip())
    core = text.strip()
    sentences: list[Segment] = []
    subsentences: list[Segment] = []

    def make(words: list[text_split.Word]) -> Segment:
        start, end = lead + words[0].start, lead + words[-1].end
        return Segment(tuple(w.text for w in words), start, end, token_at_char(spans, end - 1))

    for words in text_split.sentence_words(nlp, core):
        sentences.append(make(words))
        starts = text_split.subsentence_starts([w.text for w in words])
        group: list[text_split.Word] = []
        for word, begins in zip(words, starts):
            if begins and group:
                subsentences.append(make(group))
                group = []
            group.append(word)
        subsentences.append(make(group))
    return Segmentation(sentences, subsentences)


# ---------------------------------------------------------------- placing rewards


@dataclass(frozen=True)
class FineGrainedWeights:
    relevance_positive: float = 0.3
    relevance_negative: float = -0.3
    factuality_positive: float = 0.5
    factuality_negative: float = -0.5
    completeness_scale: float = 0.3


def _check_labels(name: str, labels: Sequence[str], segments: Sequence[Segment]) -> None:
    if len(labels) != len(segments):
        raise ValueError(f"{name}: {len(labels)} labels for {len(segments)} segments; every segment needs exactly one")


def place_fine_grained(
    *,
    num_tokens: int,
    segmentation: Segmentation,
    relevance_labels: Sequence[str],
    factuality_labels: Sequence[str],
    completeness: float,
    weights: FineGrainedWeights,
) -> tuple[list[float], dict[str, float]]:
    """Per-token rewards (no KL) and the sum of each component.

    `completeness` is the normalised R3 score, (R3 - mean3) / std3.
    """
    _check_labels("relevance", relevance_labels, segmentation.subsentences)
    _check_labels("factuality", factuality_labels, segmentation.sentences)
    rewards = [0.0] * num_tokens
    parts = {"relevance": 0.0, "factuality": 0.0, "completeness": 0.0}
    if num_tokens == 0:
        return rewards, parts
    for segment, label in zip(segmentation.subsentences, relevance_labels):
        value = weights.relevance_positive if label == NO_ERROR else weights.relevance_negative
        rewards[segment.token] += value
        parts["relevance"] += value
    for segment, label in zip(segmentation.sentences, factuality_labels):
        value = weights.factuality_positive if label == NO_ERROR else weights.factuality_negative
        rewards[segment.token] += value
        parts["factuality"] += value
    value = weights.completeness_scale * completeness
    rewards[-1] += value
    parts["completeness"] = value
    return rewards, parts


def place_holistic(*, num_tokens: int, score: float) -> list[float]:
    """Per-token rewards (no KL): the normalised preference score on the last token."""
    rewards = [0.0] * num_tokens
    if num_tokens:
        rewards[-1] = float(score)
    return rewards


def kl_penalized_rewards(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, *, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards with the per-token KL penalty, and the per-token KL estimate `log pi - log pi_ref`."""
    kl = (logprobs - ref_logprobs) * mask
    return (scores - beta * kl) * mask, kl


def display_pieces(
    text: str, segments: Sequence[Segment], rewards: Sequence[float], labels: Sequence[str], *, tail_reward: float = 0.0
) -> list[dict]:
    """Consecutive pieces of `text` for the dashboard, one per segment; their texts concatenate to `text`.

    Piece i runs from segment i's start (the text start for the first) to the
    next segment's start (the text end for the last), so whitespace stays with
    the piece before it. `tail_reward` (the last-token reward) is added to the
    last piece; a text without segments is one piece carrying it.
    """
    if not text:
        return []
    if not segments:
        return [{"text": text, "reward": float(tail_reward), "label": ""}]
    pieces = []
    for i, (segment, reward, label) in enumerate(zip(segments, rewards, labels)):
        start = 0 if i == 0 else segment.start
        end = len(text) if i == len(segments) - 1 else segments[i + 1].start
        pieces.append({"text": text[start:end], "reward": float(reward), "label": label})
    pieces[-1]["reward"] += float(tail_reward)
    return pieces


# ---------------------------------------------------------------- reward functions


class TokenLabeler(Protocol):
    def predict(self, word_lists: list[list[str]]) -> list[list[str]]: ...


class SequenceScorer(Protocol):
    def normalized(self, texts: list[str]) -> list[float]: ...


@dataclass
class RewardResult:
    """The reward of one generated response."""

    text: str
    token_rewards: list[float]
    components: dict[str, float]
    pieces: list[dict]
    #: (segments judged `O`, segments) for R1 and R2; (0, 0) when not judged.
    relevance: tuple[int, int] = (0, 0)
    factuality: tuple[int, int] = (0, 0)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return float(sum(self.token_rewards))


def defuse(text: str) -> str:
    """A separator string written inside a text must not become an extra separator word."""
    return text.replace(SEPARATOR, "(/s)")


def _passages(example: Any) -> list[dict[str, str]]:
    return [{"wikipage": defuse(title), "content": defuse(content)} for title, content in example.passages]


class FineGrainedReward:
    """R1 at sub-sentence ends, R2 at sentence ends, R3 at the last token."""

    name = "fine_grained"

    def __init__(self, *, relevance: TokenLabeler, factuality: TokenLabeler, completeness: SequenceScorer,
                 tokenizer: Any, nlp: Any, weights: FineGrainedWeights = FineGrainedWeights()):
        self.relevance = relevance
        self.factuality = factuality
        self.completeness = completeness
        self.tokenizer = tokenizer
        self.nlp = nlp
        self.weights = weights

    def __call__(self, examples: Sequence[Any], responses: Sequence[Sequence[int]]) -> list[RewardResult]:
        """Rewards for each response (its valid token ids, end-of-text included)."""
        decoded = [token_char_spans(self.tokenizer, ids) for ids in responses]
        splits = [segment_generation(self.nlp, text, spans) for text, spans in decoded]
        r1_inputs, r2_inputs, r3_inputs = [], [], []
        for example, (text, _), split in zip(examples, decoded, splits):
            question = defuse(example.question)
            r1_answer = answer_words_from_segments([[defuse(w) for w in s.words] for s in split.subsentences])
            r2_answer = answer_words_from_segments([[defuse(w) for w in s.words] for s in split.sentences])
            r1_inputs.append(token_rm_words(question=question, answer_words=r1_answer, passages=None))
            r2_inputs.append(token_rm_words(question=question, answer_words=r2_answer, passages=_passages(example)))
            r3_inputs.append(preference_rm_text(question=question, passages=_passages(example), answer=defuse(text)))
        r1 = self.relevance.predict(r1_inputs)
        r2 = self.factuality.predict(r2_inputs)
        r3 = self.completeness.normalized(r3_inputs)
        results = []
        w = self.weights
        for (text, spans), split, rel, fac, comp, ids in zip(decoded, splits, r1, r2, r3, responses):
            rewards, parts = place_fine_grained(
                num_tokens=len(ids), segmentation=split, relevance_labels=rel, factuality_labels=fac,
                completeness=comp, weights=w,
            )
            # A sub-sentence that ends where a sentence ends also carries that sentence's R2 reward.
            sentence_label = {s.end: label for s, label in zip(split.sentences, fac)}
            piece_rewards, piece_labels = [], []
            for sub, label in zip(split.subsentences, rel):
                reward = w.relevance_positive if label == NO_ERROR else w.relevance_negative
                names = [] if label == NO_ERROR else [label]
                if sub.end in sentence_label:
                    fac_label = sentence_label[sub.end]
                    reward += w.factuality_positive if fac_label == NO_ERROR else w.factuality_negative
                    if fac_label != NO_ERROR:
                        names.append(fac_label)
                piece_rewards.append(reward)
                piece_labels.append("+".join(names) or NO_ERROR)
            results.append(RewardResult(
                text=text,
                token_rewards=rewards,
                components=parts,
                pieces=display_pieces(text, split.subsentences, piece_rewards, piece_labels, tail_reward=parts["completeness"]),
                relevance=(sum(label == NO_ERROR for label in rel), len(rel)),
                factuality=(sum(label == NO_ERROR for label in fac), len(fac)),
            ))
        return results


class HolisticReward:
    """The preference reward model's normalised score on the last token."""

    name = "holistic"

    def __init__(self, *, preference: SequenceScorer, tokenizer: Any):
        self.preference = preference
        self.tokenizer = tokenizer

    def __call__(self, examples: Sequence[Any], responses: Sequence[Sequence[int]]) -> list[RewardResult]:
        texts = [self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True, clean_up_tokenization_spaces=False)
                 for ids in responses]
        inputs = [preference_rm_text(question=defuse(e.question), passages=_passages(e), answer=defuse(t))
                  for e, t in zip(examples, texts)]
        scores = self.preference.normalized(inputs)
        results = []
        for text, score, ids in zip(texts, scores, responses):
            results.append(RewardResult(
                text=text,
                token_rewards=place_holistic(num_tokens=len(ids), score=score),
                components={"preference": float(score)},
                pieces=display_pieces(text, [], [], [], tail_reward=score),
            ))
        return results
