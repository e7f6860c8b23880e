"""Score responses for annotators: R1/R2 error probabilities per segment, preference RM scores per answer.

R1 judges sub-sentences and R2 sentences, exactly as in training and PPO:
the text is cut by `annotation.qa.text` (outer whitespace stripped, offsets
mapped back onto the text), each segment is preceded by a `</s>` word, R1
reads `question: Q answer: ...` and R2 `question: Q context: ... answer: ...`
(see reward_models.token_rm_words). A segment's probability is the model's
softmax probability of its error label at the segment's separator; its label
is the argmax, as `TokenRewardModel.predict` gives it.

Speed: all texts are split in one spaCy batch, and model inputs are sorted by
length before batching so that a batch pads little (benchmarks/bench_suggest.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from annotation.qa import text as text_split
from annotation.qa.vocab import NO_ERROR
from training.ml.reward_models import (
    Passage,
    PreferenceRewardModel,
    TokenRewardModel,
    answer_words_from_segments,
    preference_rm_text,
    token_rm_words,
)


@dataclass(frozen=True)
class ResponseInput:
    question: str
    passages: Sequence[Passage] | None
    text: str


@dataclass(frozen=True)
class ScoredSegment:
    """A segment [start, end) of the response text, the model's label and its error probability."""

    start: int
    end: int
    label: str
    probability: float


@dataclass
class ResponseScores:
    relevance: list[ScoredSegment] = field(default_factory=list)
    factuality: list[ScoredSegment] = field(default_factory=list)
    preference: float | None = None


def segments_many(nlp: Any, texts: Sequence[str]) -> list[tuple[list[list[text_split.Word]], list[list[text_split.Word]]]]:
    """Per text, (sentences, sub-sentences) as word lists with offsets into the text (outer space stripped first)."""
    leads = [len(t) - len(t.lstrip()) for t in texts]
    found = text_split.sentences_many(nlp, [t.strip() for t in texts])
    out = []
    for lead, sentences in zip(leads, found):
        sentence_words = [
            [text_split.Word(w.text, w.start + lead, w.end + lead) for w in text_split.words_with_offsets(s)]
            for s in sentences
        ]
        subsentences = []
        for words in sentence_words:
            subsentences.extend(text_split.cut_subsentences(words, [w.text for w in words]))
        out.append((sentence_words, subsentences))
    return out


def error_probabilities(model: TokenRewardModel, word_lists: Sequence[Sequence[str]], *, batch_size: int = 32,
                        sort_by_length: bool = True) -> list[list[tuple[str, float]]]:
    """Per input, (label, probability of an error) of each `</s>` word, in order.

    A separator that did not fit the window gets (`O`, 0.0), as `predict` gives it `O`.
    """
    order = sorted(range(len(word_lists)), key=lambda i: len(word_lists[i])) if sort_by_length else None
    no_error = next(i for i, label in model.id2label.items() if label == NO_ERROR)
    results: list[list[tuple[str, float]]] = [[] for _ in word_lists]
    for index, at_separators in model.separator_logits(word_lists, batch_size, order=order):
        labels = []
        for logits in at_separators:
            if logits is None:
                labels.append((NO_ERROR, 0.0))
                continue
            probs = logits.softmax(dim=-1)
            labels.append((model.id2label[int(probs.argmax())], float(1.0 - probs[no_error])))
        results[index] = labels
    return results


def _score_level(model: TokenRewardModel, items: Sequence[ResponseInput], segments: list[list[list[text_split.Word]]],
                 *, with_context: bool, batch_size: int, sort_by_length: bool) -> list[list[ScoredSegment]]:
    word_lists = [
        token_rm_words(
            question=item.question,
            answer_words=answer_words_from_segments([[w.text for w in seg] for seg in segs]),
            passages=item.passages if with_context else None,
        )
        for item, segs in zip(items, segments)
    ]
    predicted = error_probabilities(model, word_lists, batch_size=batch_size, sort_by_length=sort_by_length)
    return [
        [ScoredSegment(seg[0].start, seg[-1].end, label, p) for seg, (label, p) in zip(segs, labels)]
        for segs, labels in zip(segments, predicted)
    ]


def score_responses(
    items: Sequence[ResponseInput],
    *,
    nlp: Any,
    relevance: TokenRewardModel | None = None,
    factuality: TokenRewardModel | None = None,
    preference: PreferenceRewardModel | None = None,
    batch_size: int = 32,
    sort_by_length: bool = True,
) -> list[ResponseScores]:
    """Scores of every response, in order; a model left out leaves its part empty."""
    results = [ResponseScores() for _ in items]
    if not items:
        return results
    if relevance is not None or factuality is not None:
        split = segments_many(nlp, [item.text for item in items])
        if relevance is not None:
            scored = _score_level(relevance, items, [s[1] for s in split], with_context=False,
                                  batch_size=batch_size, sort_by_length=sort_by_length)
            for result, segs in zip(results, scored):
                result.relevance = segs
        if factuality is not None:
            scored = _score_level(factuality, items, [s[0] for s in split], with_context=True,
                                  batch_size=batch_size, sort_by_length=sort_by_length)
            for result, segs in zip(results, scored):
                result.factuality = segs
    if preference is not None:
        texts = [preference_rm_text(question=i.question, passages=i.passages, answer=i.text) for i in items]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i])) if sort_by_length else list(range(len(texts)))
        scores = preference.score([texts[i] for i in order], batch_size=batch_size)
        for i, score in zip(order, scores):
            results[i].preference = float(score)
    return results


def score_one_at_a_time(items: Sequence[ResponseInput], *, nlp: Any, relevance: TokenRewardModel | None = None,
                        factuality: TokenRewardModel | None = None,
                        preference: PreferenceRewardModel | None = None) -> list[ResponseScores]:
    """The baseline the benchmark compares with: each response split and scored alone, batch size 1."""
    out = []
    for item in items:
        out.extend(score_responses([item], nlp=nlp, relevance=relevance, factuality=factuality, preference=preference,
                                   batch_size=1, sort_by_length=False))
    return out
