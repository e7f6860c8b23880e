"""Model in the loop, the pure part: control group, queue orders, suggester metrics, page runs.

No Django here. The database side (annotation/selectors/suggestions.py,
annotation/services/suggestions.py) feeds these functions plain values.

Definitions used across Granary (and tested against hand-computed values):

- **No-suggestion items** (the bias check's control group): of an item set of
  size n, exactly `round(share * n)` items, the ones with the smallest
  `sha256("{seed}:nosuggest:{example id}")`. The same seed and ids always give
  the same set, and raising the share only adds items.
- **uncertain** order: an item's key is min |p - 0.5| over the error
  probabilities p of every R1/R2 segment of its scored answers; without
  segment scores, the spread (max - min) of the preference RM scores of its
  answers. Smallest key first.
- **disagreement** order: per answer, the fine-grained score is the expected
  fine-grained reward sum_segments (1-p) * positive + p * negative (weights as
  in PPO: R1 +-0.3, R2 +-0.5); the key is Kendall's tau-b between those scores
  and the holistic preference RM scores of the same answers (tau of a constant
  ranking is taken as 0). Smallest tau (rankings most opposed) first.
- **random** order: key `sha256("{seed}:order:{example id}")` as a fraction.
- **Suggester metrics are word-level**: the words of a response are its
  whitespace-separated words. A word is *predicted* by a suggester when it lies
  in a segment that suggester labelled as an error, and *gold* for that
  suggester when it overlaps a reference span of one of the suggester's error
  types (R1: Irrelevant, Redundant, Incoherent; R2: Unverifiable,
  Wrong-Grounding). Over every reference annotation (each submitted one, or
  the adjudicated one where an item has it), TP/FP/FN count words;
  precision = TP/(TP+FP), recall = TP/(TP+FN), F1 their harmonic mean, and a
  zero denominator gives None (shown as "—").
- **Span agreement** between two annotations of one response is the same
  word-level F1 with all error types pooled (one side as gold); 1.0 when both
  mark nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from annotation.qa.vocab import FACTUAL_ERROR_TYPES, NO_ERROR, NON_FACTUAL_ERROR_TYPES

RELEVANCE = "relevance"
FACTUALITY = "factuality"
SUGGESTERS = (RELEVANCE, FACTUALITY)
SUGGESTER_NAMES = {RELEVANCE: "R1 relevance", FACTUALITY: "R2 factuality"}
SUGGESTER_SHORT = {RELEVANCE: "R1", FACTUALITY: "R2"}
# The error types each suggester proposes (the annotator picks one when accepting).
SUGGESTER_TYPES = {RELEVANCE: NON_FACTUAL_ERROR_TYPES, FACTUALITY: FACTUAL_ERROR_TYPES}
# Fine-grained reward weights (positive, negative), as training.ml.rewards.FineGrainedWeights.
REWARD_WEIGHTS = {RELEVANCE: (0.3, -0.3), FACTUALITY: (0.5, -0.5)}

ACCEPT = "accept"
TRIM = "trim"
DISMISS = "dismiss"
ACTIONS = (ACCEPT, TRIM, DISMISS)


def _fraction(*parts: object) -> float:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def no_suggestion_items(example_ids: Iterable[int], *, share: float, seed: int) -> set[int]:
    """The control group: exactly round(share * n) of the ids, chosen by a seeded hash."""
    ids = sorted(set(example_ids))
    count = round(max(0.0, min(1.0, share)) * len(ids))
    return set(sorted(ids, key=lambda i: (_fraction(seed, "nosuggest", i), i))[:count])


def random_key(example_id: int, *, seed: int) -> float:
    return _fraction(seed, "order", example_id)


def uncertainty_key(probabilities: Sequence[float], preference_scores: Sequence[float] = ()) -> float | None:
    """min |p - 0.5| over segment error probabilities, else the spread of preference scores, else None."""
    if probabilities:
        return min(abs(p - 0.5) for p in probabilities)
    if len(preference_scores) >= 2:
        return max(preference_scores) - min(preference_scores)
    return None


def expected_reward(segments: Iterable[tuple[str, float]]) -> float:
    """Expected fine-grained reward of an answer from (suggester, error probability) per segment."""
    total = 0.0
    for suggester, p in segments:
        positive, negative = REWARD_WEIGHTS[suggester]
        total += (1 - p) * positive + p * negative
    return total


def disagreement_key(fine_grained: Sequence[float], preference: Sequence[float]) -> float | None:
    """Kendall's tau-b between the two rankings of the same answers; None with fewer than two answers."""
    if len(fine_grained) != len(preference) or len(fine_grained) < 2:
        return None
    from scipy.stats import kendalltau

    tau = kendalltau(fine_grained, preference).statistic
    return 0.0 if tau is None or math.isnan(tau) else float(tau)


# ---------------------------------------------------------------- metrics


def words_in(word_spans: Sequence[tuple[int, int]], spans: Iterable[tuple[int, int]]) -> list[bool]:
    """For each word, whether it overlaps one of `spans` ([start, end) character offsets)."""
    spans = list(spans)
    return [any(s < we and ws < e for s, e in spans) for ws, we in word_spans]


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, predicted: Sequence[bool], gold: Sequence[bool]) -> None:
        for p, g in zip(predicted, gold):
            self.tp += p and g
            self.fp += p and not g
            self.fn += g and not p

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None or p + r == 0:
            return None if p is None or r is None else 0.0
        return 2 * p * r / (p + r)


def gold_spans(errors: Iterable[Mapping], suggester: str) -> list[tuple[int, int]]:
    """The reference spans (qa-feedback error dicts) of the suggester's error types."""
    types = SUGGESTER_TYPES[suggester]
    return [(e["start"], e["end"]) for e in errors if e["error type"] in types]


def span_agreement(word_spans: Sequence[tuple[int, int]], a: Iterable[tuple[int, int]], b: Iterable[tuple[int, int]]) -> float:
    """Word-level F1 between two annotations' spans (all types pooled); 1.0 when both mark nothing."""
    counts = Counts()
    counts.add(words_in(word_spans, a), words_in(word_spans, b))
    if counts.tp + counts.fp + counts.fn == 0:
        return 1.0
    return counts.f1 or 0.0


def is_error(label: str) -> bool:
    return label != NO_ERROR


# ---------------------------------------------------------------- the page


def outline_runs(runs: Sequence[Mapping], suggestions: Sequence[Mapping]) -> list[dict]:
    """The page's text runs cut again at suggestion edges, each run saying which suggestions cover it.

    `runs` are {"start", "end", "text", ...} covering the text in order (plain
    text and marked spans); `suggestions` are {"id", "start", "end", ...}.
    Every output run keeps its source run's keys and gets "sug": the ids of
    the suggestions covering it, "sug_first"/"sug_last": the ids it opens or
    closes (for drawing the outline's ends).
    """
    cuts = sorted({s["start"] for s in suggestions} | {s["end"] for s in suggestions})
    out = []
    for run in runs:
        start, end = run["start"], run["end"]
        inner = [c for c in cuts if start < c < end]
        for a, b in zip([start, *inner], [*inner, end]):
            piece = dict(run)
            offset = a - start
            piece.update(start=a, end=b, text=run["text"][offset : offset + (b - a)])
            covering = [s for s in suggestions if s["start"] <= a and b <= s["end"]]
            piece["sug"] = " ".join(str(s["id"]) for s in covering)
            piece["sug_first"] = " ".join(str(s["id"]) for s in covering if s["start"] == a)
            piece["sug_last"] = " ".join(str(s["id"]) for s in covering if s["end"] == b)
            piece["sug_tag"] = " · ".join(str(s.get("tag", "")) for s in covering if s["end"] == b)
            piece["sug_kinds"] = " ".join(sorted({f"sug-{s['suggester']}" for s in covering}))
            out.append(piece)
    return out


def reward_pieces(text: str, segments: Sequence[Mapping]) -> list[dict]:
    """The text cut at one model's reward segments: {"text", "reward" (None outside segments), "label"}."""
    pieces = []
    cursor = 0
    for segment in sorted(segments, key=lambda s: s["start"]):
        start, end = max(cursor, segment["start"]), min(len(text), segment["end"])
        if end <= start:
            continue
        if start > cursor:
            pieces.append({"text": text[cursor:start], "reward": None, "label": ""})
        pieces.append({"text": text[start:end], "reward": float(segment["reward"]), "label": segment.get("label", "")})
        cursor = end
    if cursor < len(text):
        pieces.append({"text": text[cursor:], "reward": None, "label": ""})
    return pieces
