"""Span rules for fine-grained feedback: bounds, word boundaries, overlap.

A span is a half-open character range [start, end) into a response. The rules
(FINE_GRAINED_RLHF.md section 1) say a span covers whole words: it starts on a
non-space character preceded by a space or the text start, it ends at a space
or the text end, and spans never overlap.

"Space" means whatever `str.split()` splits on (`str.isspace()`), because the
reward-model files count words with `text.split()`; a span that agreed with a
different notion of word would land on the wrong words there.

We also require the character before `end` to be a non-space one (a span does
not end in trailing whitespace). The stated rules allow `"foo "` inside
`"foo  bar"`; none of the 1,373 spans in dev_feedback.json does that, and
requiring it makes "a valid span" the same thing as "a run of whole words",
which is exactly what `snap_to_words` produces.

Pure functions, no ORM: the database enforces the bounds again as constraints.
"""

import re
from collections.abc import Sequence
from typing import NamedTuple

_WORD = re.compile(r"\S+")


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each whitespace-separated word, in order."""
    return [match.span() for match in _WORD.finditer(text)]


def snap_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a raw selection to the whole words it touches.

    A selection made backwards (start > end) is read forwards, and offsets
    outside the text are clamped to it, because browsers report both. A word
    is touched when at least one of its characters lies in [start, end).
    Raises ValueError when no word is touched (empty or all-whitespace
    selection).
    """
    lo, hi = sorted((start, end))
    lo = max(0, min(lo, len(text)))
    hi = max(0, min(hi, len(text)))
    touched = [(ws, we) for ws, we in word_spans(text) if ws < hi and we > lo]
    if not touched:
        raise ValueError(f"the selection {start}-{end} covers no word")
    return touched[0][0], touched[-1][1]


def is_word_start(text: str, offset: int) -> bool:
    return 0 <= offset < len(text) and not text[offset].isspace() and (offset == 0 or text[offset - 1].isspace())


def is_word_end(text: str, offset: int) -> bool:
    return (
        0 < offset <= len(text) and not text[offset - 1].isspace() and (offset == len(text) or text[offset].isspace())
    )


class SpanProblem(NamedTuple):
    """One broken rule. `attribute` is "start", "end", or None for an overlap with span `other`."""

    index: int
    attribute: str | None
    message: str
    other: int | None = None

    def describe(self) -> str:
        if self.other is not None:
            return f"error {self.index} {self.message.replace('{other}', f'error {self.other}')}"
        return f"error {self.index}: {self.message}"


def span_problem_items(text: str, spans: Sequence[tuple[int, int]]) -> list[SpanProblem]:
    """Problems with structure, for callers that report them per field (the qa-feedback validator).

    Overlap messages hold the placeholder `{other}` for the overlapped span's
    name; `SpanProblem.describe` fills it in.
    """
    problems: list[SpanProblem] = []
    in_bounds: list[tuple[int, int, int]] = []
    length = len(text)
    for index, (start, end) in enumerate(spans):
        ok = True
        if start < 0:
            problems.append(SpanProblem(index, "start", f"start {start} is negative"))
            ok = False
        elif start >= length:
            problems.append(SpanProblem(index, "start", f"start {start} is past the end of the text (length {length})"))
            ok = False
        if end > length:
            problems.append(SpanProblem(index, "end", f"end {end} is past the end of the text (length {length})"))
            ok = False
        if end <= start:
            problems.append(SpanProblem(index, "end", f"end {end} is not after start {start}"))
            ok = False
        if not ok:
            continue
        if not is_word_start(text, start):
            problems.append(SpanProblem(index, "start", f"start {start} is not at the start of a word"))
            ok = False
        if not is_word_end(text, end):
            problems.append(SpanProblem(index, "end", f"end {end} is not at the end of a word"))
            ok = False
        # Spans off word boundaries still take part in the overlap check: both faults get reported.
        in_bounds.append((start, end, index))

    # Sweep in text order, comparing each span with the one reaching furthest so far.
    furthest: tuple[int, int, int] | None = None
    for start, end, index in sorted(in_bounds):
        if furthest is not None and start < furthest[1]:
            problems.append(
                SpanProblem(index, None, f"overlaps {{other}} (characters {furthest[0]}-{furthest[1]})", furthest[2])
            )
        if furthest is None or end > furthest[1]:
            furthest = (start, end, index)
    return problems


def span_problems(text: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    """One message per problem, naming the span by its 0-based index; empty when all is well."""
    return [problem.describe() for problem in span_problem_items(text, spans)]
