"""What a reviewer compares: several annotators' spans on one response, word by word, and their corrections.

Pure functions, no ORM. Words are `str.split()` words (as in the reward-model
files and the agreement figures); a word carries the type of the span that
holds any of its characters.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from itertools import combinations

from annotation.qa.spans import word_spans


def word_labels(text: str, errors: Sequence[Mapping]) -> list[str | None]:
    """One entry per word of `text`: the error type of the span holding any of its characters, else None."""
    labels: list[str | None] = []
    for start, end in word_spans(text):
        label = None
        for error in errors:
            if error["start"] < end and error["end"] > start:
                label = error["error type"]
                break
        labels.append(label)
    return labels


def disagreeing_words(labels: Mapping[str, Sequence[str | None]]) -> list[bool]:
    """Per word: True where the annotators did not all give it the same type (or no type)."""
    lanes = list(labels.values())
    if len(lanes) < 2:
        return [False] * (len(lanes[0]) if lanes else 0)
    return [len(set(column)) > 1 for column in zip(*lanes)]


def observed_agreement(lanes: Sequence[Sequence]) -> float | None:
    """The share of (unit, pair of annotators) that agree; None with fewer than two annotators or no units.

    Plain observed agreement, not chance-corrected: per item there are too
    few units for alpha to mean much, and the queue needs an order, not a test.
    """
    if len(lanes) < 2:
        return None
    agree = total = 0
    for a, b in combinations(lanes, 2):
        for x, y in zip(a, b):
            total += 1
            agree += x == y
    return agree / total if total else None


def word_diff(original: str, revised: str) -> list[tuple[str, str]]:
    """(op, words) runs turning `original` into `revised`: op is "same", "del" or "ins"; words joined by spaces."""
    a, b = original.split(), revised.split()
    runs: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            runs.append(("same", " ".join(a[i1:i2])))
            continue
        if i2 > i1:
            runs.append(("del", " ".join(a[i1:i2])))
        if j2 > j1:
            runs.append(("ins", " ".join(b[j1:j2])))
    return runs
