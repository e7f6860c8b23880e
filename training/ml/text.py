"""Sentence and sub-sentence splitting: the segments that fine-grained feedback labels.

The reward-model files and the PPO reward functions must cut text into the
same segments, so both use this module. The method (docs/FINE_GRAINED_RLHF.md,
section 2):

- sentences come from a spaCy pipeline; the words of a sentence are
  `sent.text.split()`. spaCy may end a sentence inside a whitespace-separated
  word (`victory.S`), so a "word" here can be a piece of such a word.
- a sentence is cut into sub-sentences after words ending in `, ; ! ?`, but
  never leaving fewer than `MIN_SUBSENTENCE_WORDS` words after the cut, and a
  too-short sub-sentence that is not the sentence's first is merged into the
  one before it.

Offsets: `sentence_words`, `subsentence_words` and `segment_spans` give
character offsets into the original text, so code that holds token offsets
(PPO) finds the token ending a segment without re-tokenising decoded text.

No Django here: this runs under `accelerate launch`, in scripts and in tests.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, Literal, NamedTuple, TypeVar

AUTO = "auto"
SENTENCIZER = "sentencizer"
PREFERRED_MODEL = "en_core_web_sm"
MIN_SUBSENTENCE_WORDS = 5
SUBSENTENCE_END_CHARS = frozenset(",;!?")

_WORD = re.compile(r"\S+")  # \S is the complement of what str.split() splits on

Level = Literal["sentence", "subsentence"]
T = TypeVar("T")


class SplitterNotAvailable(ValueError):
    """The named splitter is neither `auto`, `sentencizer` nor an installed spaCy model."""


def default_splitter_name() -> str:
    """The splitter named by the `SENTENCE_SPLITTER` environment variable (default `auto`)."""
    return os.environ.get("SENTENCE_SPLITTER", "").strip() or AUTO


def load_splitter(name: str | None = None) -> tuple[Any, str]:
    """The spaCy pipeline for `name` (default: `SENTENCE_SPLITTER`) and the name it resolved to.

    `auto` prefers `en_core_web_sm` and falls back to spaCy's rule-based
    sentencizer when that model is not installed; the resolved name says which
    one was used, because the two cut sentences differently. Each pipeline is
    loaded once per process.
    """
    return _load_splitter((name or "").strip() or default_splitter_name())


@lru_cache(maxsize=8)
def _load_splitter(name: str) -> tuple[Any, str]:
    import spacy  # slow to import; only code that splits pays for it

    if name == AUTO:
        try:
            return spacy.load(PREFERRED_MODEL), PREFERRED_MODEL
        except OSError:
            name = SENTENCIZER
    if name == SENTENCIZER:
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        return nlp, SENTENCIZER
    try:
        return spacy.load(name), name
    except OSError as exc:
        raise SplitterNotAvailable(
            f"sentence splitter {name!r} is not available: use 'auto', 'sentencizer' "
            f"or the name of an installed spaCy model ({exc})"
        ) from exc


class Sentence(NamedTuple):
    """One spaCy sentence: its text (`sent.text`) and where that text starts in the source."""

    start: int
    text: str

    def words(self) -> list[str]:
        return self.text.split()


class Word(NamedTuple):
    """A whitespace-free piece of text and its character offsets [start, end) in the source."""

    text: str
    start: int
    end: int


def _doc_sentences(doc: Any) -> list[Sentence]:
    # A sentence of only whitespace has no words, so no segment to label: it is dropped.
    return [Sentence(s.start_char, s.text) for s in doc.sents if s.text and not s.text.isspace()]


def sentences(nlp: Any, text: str) -> list[Sentence]:
    """The non-blank spaCy sentences of `text`."""
    if not text or text.isspace():
        return []
    return _doc_sentences(nlp(text))


def sentences_many(nlp: Any, texts: Iterable[str], batch_size: int = 256) -> list[list[Sentence]]:
    """`sentences` of many texts, in order; spaCy processes them in batches, which is faster."""
    texts = list(texts)
    out: list[list[Sentence]] = [[] for _ in texts]
    todo = [i for i, text in enumerate(texts) if text and not text.isspace()]
    for i, doc in zip(todo, nlp.pipe((texts[i] for i in todo), batch_size=batch_size)):
        out[i] = _doc_sentences(doc)
    return out


def words_with_offsets(sentence: Sentence) -> list[Word]:
    base = sentence.start
    return [Word(m.group(), base + m.start(), base + m.end()) for m in _WORD.finditer(sentence.text)]


def subsentence_starts(words: Sequence[str], min_words: int = MIN_SUBSENTENCE_WORDS) -> list[bool]:
    """For each word of one sentence, whether it starts a sub-sentence (the first word always does)."""
    if not words:
        return []
    starts = [True] + [False] * (len(words) - 1)
    current = 0
    for i in range(1, len(words)):
        if words[i - 1][-1] not in SUBSENTENCE_END_CHARS or i + min_words >= len(words):
            continue
        if i - current >= min_words:
            starts[i] = True
            current = i
        elif current > 0:
            # Too short and not the sentence's first: it joins the previous sub-sentence.
            starts[current] = False
            starts[i] = True
            current = i
    return starts


def cut_subsentences(items: Sequence[T], words: Sequence[str]) -> list[list[T]]:
    """Group one sentence's `items` (its words, or anything parallel to them) into sub-sentences."""
    groups: list[list[T]] = []
    for item, start in zip(items, subsentence_starts(words)):
        if start:
            groups.append([])
        groups[-1].append(item)
    return groups


def split_sentences(nlp: Any, text: str) -> list[list[str]]:
    """The words of each sentence of `text` (`sent.text.split()` per spaCy sentence)."""
    return [s.words() for s in sentences(nlp, text)]


def split_subsentences(nlp: Any, text: str) -> list[list[str]]:
    """The words of each sub-sentence of `text`, in order; a sub-sentence never crosses a sentence end."""
    out: list[list[str]] = []
    for words in split_sentences(nlp, text):
        out.extend(cut_subsentences(words, words))
    return out


def sentence_words(nlp: Any, text: str) -> list[list[Word]]:
    """Words of each sentence of `text`, with offsets into `text`."""
    return [words_with_offsets(s) for s in sentences(nlp, text)]


def subsentence_words(nlp: Any, text: str) -> list[list[Word]]:
    """Words of each sub-sentence of `text`, with offsets into `text`."""
    out: list[list[Word]] = []
    for words in sentence_words(nlp, text):
        out.extend(cut_subsentences(words, [w.text for w in words]))
    return out


def segment_words(nlp: Any, text: str, level: Level) -> list[list[Word]]:
    """Words with offsets per segment, where a segment is a sentence or a sub-sentence."""
    if level == "sentence":
        return sentence_words(nlp, text)
    if level == "subsentence":
        return subsentence_words(nlp, text)
    raise ValueError(f"unknown segment level {level!r}: use 'sentence' or 'subsentence'")


def segment_spans(nlp: Any, text: str, level: Level) -> list[tuple[int, int]]:
    """Each segment as [start, end) character offsets into `text`: its first word's start, last word's end.

    `end - 1` is the segment's last non-space character: the token that covers
    it is the one that closes the segment in a generated sequence.
    """
    return [(words[0].start, words[-1].end) for words in segment_words(nlp, text, level)]
