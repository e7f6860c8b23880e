"""Agreement among annotators, and the rules that turn several annotations of an item into one.

Pure: plain data in, plain data out (importable by training/ml and scripts).

An *item* is one example as its annotators saw it:

    {annotator name: {"prediction": str,                      # prediction 1, the text the spans index
                      "errors": [(start, end, type), ...] | None,   # None: no fine-grained feedback
                      "preference": [6 ints] | None}}        # None: no comparison

The figures (issue 10, "Agreement, defined exactly"), over the items that two
or more annotators annotated:

- `preference.alpha`: Krippendorff's alpha, nominal; unit = (item, pair 0..5),
  value in {0, 1, 2}.
- `errors.alpha`: Krippendorff's alpha, nominal; unit = (item, word i of
  prediction 1 by `str.split()`); value = the error type of the span holding
  any character of the word, else "None".
- `errors.per_type[TYPE]`: the same units, value 1 if the word lies in a span
  of that type, else 0.
- `errors.span_f1_exact`: per pair of annotators, 2*TP / (|A| + |B|) with TP,
  |A| and |B| summed over the items both annotated (TP: spans equal in start,
  end and type); the mean over the pairs where it is defined.
- `items`: the items with two or more annotators; `annotators`: their names.

A unit with a single value is not pairable and is ignored (Krippendorff's
rule); a figure whose units show no variation at all (one value only) or
that has no pairable unit is undefined, None (JSON null).

Alpha goes through the `krippendorff` package, fed value counts (units x
values) built with numpy, so the cost is a few array operations whatever the
number of words.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

import krippendorff
import numpy as np

from annotation.qa.spans import word_spans
from annotation.qa.vocab import ERROR_TYPES, NO_PREFERENCE, PREFERENCE_PAIRS, PREFERENCE_VALUES

# The value of a word in no span (errors.alpha), as the issue spells it.
NO_ERROR_VALUE = "None"
# Word values as codes: 0 for no error, then the error types in vocab order.
ERROR_VALUES = (NO_ERROR_VALUE, *ERROR_TYPES)
_CODE = {name: code for code, name in enumerate(ERROR_VALUES)}
_MISSING = -1
N_PAIRS = len(PREFERENCE_PAIRS)

Span = tuple[int, int, str]
Annotation = Mapping[str, Any]  # {"prediction", "errors", "preference"}
Item = Mapping[str, Annotation]  # annotator name -> annotation

# The three aggregation rules (export and build_rm_data): the one today's code uses, the reviewer's gold
# version, the majority of the item's annotators.
LATEST = "latest"
ADJUDICATED = "adjudicated"
MAJORITY = "majority"
RULES = (LATEST, ADJUDICATED, MAJORITY)
RULE_LABELS = {
    LATEST: "Latest submitted annotation",
    MAJORITY: "Majority of the annotators",
    ADJUDICATED: "Reviewer's gold version only",
}
RULE_DESCRIPTIONS = {
    LATEST: "latest: the most recently submitted fine-grained feedback on prediction 1 and the most recently "
    "submitted comparison of each example",
    ADJUDICATED: "adjudicated: the reviewer's gold version of each example (fine-grained and comparison); "
    "examples without one are left out",
    MAJORITY: "majority: spans on the words that more than half of the example's annotators gave one error type, "
    "the majority preference per pair (else 0), corrections and missing-info from the annotator closest to "
    "the majority",
}


# --- words and their values ------------------------------------------------------------------


def word_span_index(
    prediction: str, errors: Sequence[Span], *, words: Sequence[tuple[int, int]] | None = None
) -> np.ndarray:
    """Per word of `prediction` (`str.split()` words), the index in `errors` of the span holding any
    character of it, else -1; the first span given wins a word two touch."""
    words = word_spans(prediction) if words is None else words
    index = np.full(len(words), -1, dtype=np.int32)
    if not words or not errors:
        return index
    # Words are sorted and disjoint: the words a span touches are one slice, found by bisection.
    starts = [start for start, _ in words]
    ends = [end for _, end in words]
    for i, (start, end, _) in enumerate(errors):
        first, last = bisect_right(ends, start), bisect_left(starts, end)
        if first < last:
            touched = index[first:last]
            touched[touched == -1] = i
    return index


def word_labels(prediction: str, errors: Sequence[Span], *, words: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """One code per word of `prediction`: 0 when no span holds a character of it, else 1 + the index of
    the error type in vocab.ERROR_TYPES (see word_span_index)."""
    return _codes(word_span_index(prediction, errors, words=words), errors)


def _codes(index: np.ndarray, errors: Sequence[Span]) -> np.ndarray:
    table = np.asarray([0, *(_CODE[t] for _, _, t in errors)], dtype=np.int8)
    return table[index + 1]


def spans_of(errors: Iterable[Mapping[str, Any]]) -> list[Span]:
    """(start, end, type) of qa-feedback error entries ({"error type", "explanation", "start", "end"})."""
    return [(e["start"], e["end"], e["error type"]) for e in errors]


# --- alpha ---------------------------------------------------------------------------------------


def alpha_from_counts(counts: np.ndarray) -> float | None:
    """Nominal Krippendorff's alpha from value counts (units x values); None when undefined.

    Units with fewer than two values are dropped (not pairable); alpha is
    undefined when no unit is left or the values left show no variation.
    """
    if counts.size == 0:
        return None
    counts = counts[counts.sum(axis=1) >= 2]
    if counts.shape[0] == 0 or np.count_nonzero(counts.sum(axis=0)) < 2:
        return None
    value = krippendorff.alpha(value_counts=counts, level_of_measurement="nominal")
    return None if value is None or np.isnan(value) else float(value)


def _counts(labels: np.ndarray, n_values: int) -> np.ndarray:
    """Value counts (units x values) of a coders x units matrix of codes, _MISSING where a coder gave none."""
    return np.stack([(labels == v).sum(axis=0) for v in range(n_values)], axis=1)


# --- the figures ---------------------------------------------------------------------------------


class _Matrices:
    """Codes of every annotator on every unit: coders x units, _MISSING where one gave none."""

    def __init__(self, items: Sequence[Item]):
        self.annotators = sorted({name for item in items for name in item})
        row = {name: i for i, name in enumerate(self.annotators)}
        n = len(self.annotators)
        self.preferences = np.full((n, N_PAIRS * len(items)), _MISSING, dtype=np.int8)
        word_blocks = []
        for k, item in enumerate(items):
            for name, annotation in item.items():
                preference = annotation.get("preference")
                if preference is not None:
                    self.preferences[row[name], k * N_PAIRS : (k + 1) * N_PAIRS] = preference
            with_errors = [(name, a) for name, a in item.items() if a.get("errors") is not None]
            if not with_errors:
                continue
            words = word_spans(with_errors[0][1]["prediction"])
            block = np.full((n, len(words)), _MISSING, dtype=np.int8)
            for name, annotation in with_errors:
                block[row[name]] = word_labels(annotation["prediction"], annotation["errors"], words=words)
            word_blocks.append(block)
        self.words = np.concatenate(word_blocks, axis=1) if word_blocks else np.full((n, 0), _MISSING, dtype=np.int8)

    def figures(self, rows: Sequence[int] | None = None, *, per_type: bool = True) -> dict[str, Any]:
        """Alphas over all coders, or over `rows` only; `per_type` adds one per error type."""
        words = self.words if rows is None else self.words[list(rows)]
        preferences = self.preferences if rows is None else self.preferences[list(rows)]
        word_counts = _counts(words, len(ERROR_VALUES))
        by_type = {}
        coded = word_counts.sum(axis=1)
        for code, error_type in enumerate(ERROR_TYPES if per_type else (), start=1):
            binary = np.stack([coded - word_counts[:, code], word_counts[:, code]], axis=1)
            by_type[error_type] = alpha_from_counts(binary)
        return {
            "preference_alpha": alpha_from_counts(_counts(preferences, len(PREFERENCE_VALUES))),
            "errors_alpha": alpha_from_counts(word_counts),
            "per_type": by_type,
        }


def span_f1_pairs(items: Sequence[Item]) -> dict[tuple[str, str], float | None]:
    """Exact-span F1 of each pair of annotators (names sorted) who both annotated errors on some item.

    2*TP / (|A| + |B|), each summed over the items both annotated; None when neither marked any span.
    """
    sums: dict[tuple[str, str], list[int]] = {}
    for item in items:
        marked = sorted((name, set(map(tuple, a["errors"]))) for name, a in item.items() if a.get("errors") is not None)
        for (a, spans_a), (b, spans_b) in combinations(marked, 2):
            tp_and_sizes = sums.setdefault((a, b), [0, 0])
            tp_and_sizes[0] += 2 * len(spans_a & spans_b)
            tp_and_sizes[1] += len(spans_a) + len(spans_b)
    return {pair: (tp / size if size else None) for pair, (tp, size) in sums.items()}


def _mean(values: Iterable[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def shared_items(items: Iterable[Item]) -> list[Item]:
    """The items that two or more annotators annotated."""
    return [item for item in items if len(item) >= 2]


def agreement(items: Iterable[Item]) -> dict[str, Any]:
    """The agreement figures of a set of items, shaped like `manage.py agreement --json`:

    {"items": int, "annotators": [names], "preference": {"alpha"},
     "errors": {"alpha", "per_type": {TYPE: alpha}, "span_f1_exact"}}, None where undefined.
    """
    shared = shared_items(items)
    matrices = _Matrices(shared)
    figures = matrices.figures()
    return {
        "items": len(shared),
        "annotators": matrices.annotators,
        "preference": {"alpha": figures["preference_alpha"]},
        "errors": {
            "alpha": figures["errors_alpha"],
            "per_type": figures["per_type"],
            "span_f1_exact": _mean(span_f1_pairs(shared).values()),
        },
    }


def annotator_agreement(items: Iterable[Item]) -> dict[str, dict[str, Any]]:
    """Each annotator against the others: {name: {"items", "preference_alpha", "errors_alpha",
    "span_f1_exact", "others": {other: {"items", "preference_alpha", "errors_alpha", "span_f1_exact"}}}}.

    Pairwise: the figures of the two annotators alone over the items both
    annotated; an annotator's own figures are the means of their pairs'
    defined values, and `items` counts the items they share with anyone.
    """
    shared = shared_items(items)
    matrices = _Matrices(shared)
    row = {name: i for i, name in enumerate(matrices.annotators)}
    f1 = span_f1_pairs(shared)
    together: dict[tuple[str, str], int] = {}
    for item in shared:
        for pair in combinations(sorted(item), 2):
            together[pair] = together.get(pair, 0) + 1
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for (a, b), count in together.items():
        figures = matrices.figures([row[a], row[b]], per_type=False)
        pairs[(a, b)] = {
            "items": count,
            "preference_alpha": figures["preference_alpha"],
            "errors_alpha": figures["errors_alpha"],
            "span_f1_exact": f1.get((a, b)),
        }
    result = {}
    for name in matrices.annotators:
        others = {b if a == name else a: figures for (a, b), figures in pairs.items() if name in (a, b)}
        result[name] = {
            "items": sum(1 for item in shared if name in item),
            "preference_alpha": _mean(o["preference_alpha"] for o in others.values()),
            "errors_alpha": _mean(o["errors_alpha"] for o in others.values()),
            "span_f1_exact": _mean(o["span_f1_exact"] for o in others.values()),
            "others": dict(sorted(others.items())),
        }
    return result


def _observed_agreement(labels: np.ndarray) -> float | None:
    """Share of agreeing coder pairs over a coders x units matrix (_MISSING ignored); None with no pair."""
    agreeing = pairs = 0
    for a, b in combinations(range(labels.shape[0]), 2):
        both = (labels[a] != _MISSING) & (labels[b] != _MISSING)
        pairs += int(both.sum())
        agreeing += int((both & (labels[a] == labels[b])).sum())
    return agreeing / pairs if pairs else None


def item_agreement(item: Item) -> dict[str, Any]:
    """One item's agreement, for ordering a review queue (lowest agreement first):

    {"annotators": [names], "errors_agreement", "preference_agreement": the
    share of annotator pairs giving a word (a preference pair) the same value,
    "span_f1_exact": the mean exact-span F1 of its pairs, "disagreement": 1 -
    the mean of the defined agreements among errors and preference}; None
    where undefined (fewer than two annotators gave that kind of answer).
    """
    matrices = _Matrices([item])
    errors = _observed_agreement(matrices.words)
    preference = _observed_agreement(matrices.preferences)
    mean = _mean([errors, preference])
    return {
        "annotators": matrices.annotators,
        "errors_agreement": errors,
        "preference_agreement": preference,
        "span_f1_exact": _mean(span_f1_pairs([item]).values()),
        "disagreement": None if mean is None else 1.0 - mean,
    }


def disagreement_order(scored: Iterable[tuple[Any, dict[str, Any]]]) -> list[tuple[Any, dict[str, Any]]]:
    """(key, item_agreement(...)) pairs, most disagreement first; items with no score last, keys in order."""
    return sorted(scored, key=lambda pair: (pair[1]["disagreement"] is None, -(pair[1]["disagreement"] or 0)))


# --- aggregation: majority -----------------------------------------------------------------------


def majority_spans(prediction: str, errors_of: Sequence[Sequence[Span]]) -> list[Span]:
    """Spans of the words that more than half of the annotators (their spans given) gave one error type,
    rebuilt from runs of consecutive words of one type.

    A run is cut where more than half of the annotators cut it too (the two
    words lie in two different spans of theirs), so that annotators who all
    marked two adjacent sentences as two spans get two spans back, not one:
    the majority of identical annotations is that annotation.
    """
    words = word_spans(prediction)
    if not errors_of or not words:
        return []
    indexes = np.stack([word_span_index(prediction, errors, words=words) for errors in errors_of])
    codes = np.stack([_codes(index, errors) for index, errors in zip(indexes, errors_of, strict=True)])
    need = codes.shape[0] / 2
    winners = np.zeros(len(words), dtype=np.int8)
    for code in range(1, len(ERROR_VALUES)):
        winners[(codes == code).sum(axis=0) > need] = code
    # cuts[i]: more than half put word i and word i+1 in two different spans.
    cuts = ((indexes[:, :-1] != indexes[:, 1:]) & (indexes[:, :-1] >= 0) & (indexes[:, 1:] >= 0)).sum(axis=0) > need
    spans: list[Span] = []
    for i, code in enumerate(winners.tolist()):
        if code == 0:
            continue
        if spans and winners[i - 1] == code and not cuts[i - 1]:
            spans[-1] = (spans[-1][0], words[i][1], spans[-1][2])
        else:
            spans.append((words[i][0], words[i][1], ERROR_VALUES[code]))
    return spans


def majority_preference(preferences: Sequence[Sequence[int]]) -> list[int] | None:
    """Per pair, the value more than half of the annotators gave, else 0 (no preference); None with none."""
    if not preferences:
        return None
    values = np.asarray(preferences)
    result = []
    for column in values.T:
        counts = np.bincount(column, minlength=len(PREFERENCE_VALUES))
        best = int(counts.argmax())
        result.append(best if counts[best] > len(column) / 2 else NO_PREFERENCE)
    return result


def _explanation(span: Span, feedback_of: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """The explanation of the annotators' span of the same type overlapping `span` most (first annotator wins
    a tie): Redundant and Wrong-Grounding explanations carry what is repeated or contradicted."""
    start, end, error_type = span
    best, best_overlap = "", 0
    for _, feedback in feedback_of:
        for error in feedback["errors"]:
            if error["error type"] != error_type:
                continue
            overlap = min(end, error["end"]) - max(start, error["start"])
            if overlap > best_overlap:
                best, best_overlap = error["explanation"], overlap
    return best


def majority(prediction: str, annotations: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The majority version of one item.

    `annotations`: {annotator: {"feedback": qa-feedback feedback block
    ({"errors", "missing-info", "corrected-prediction"}) or None,
    "preference": [6 ints] or None}}. Returns {"feedback": block or None,
    "preference": [6 ints] or None, "closest": the annotator whose spans and
    preferences differ least from the majority (ties: first name), whose
    correction and missing-info the block carries}.
    """
    names = sorted(annotations)
    feedback_of = [(n, annotations[n]["feedback"]) for n in names if annotations[n].get("feedback") is not None]
    preference_of = [(n, annotations[n]["preference"]) for n in names if annotations[n].get("preference") is not None]
    words = word_spans(prediction)
    given = {n: spans_of(f["errors"]) for n, f in feedback_of}
    labels = {n: word_labels(prediction, spans, words=words) for n, spans in given.items()}
    spans = majority_spans(prediction, list(given.values()))
    preference = majority_preference([p for _, p in preference_of])
    block = None
    closest = None
    if feedback_of or preference_of:
        gold_labels = word_labels(prediction, spans, words=words)

        def distance(name: str) -> int:
            d = int((labels[name] != gold_labels).sum()) if name in labels else len(words)
            mine = annotations[name].get("preference")
            d += N_PAIRS if mine is None or preference is None else sum(x != y for x, y in zip(mine, preference))
            return d

        candidates = [n for n, _ in feedback_of] or [n for n, _ in preference_of]
        closest = min(candidates, key=lambda n: (distance(n), n))
    if feedback_of:
        source = annotations[closest]["feedback"]
        block = {
            "errors": [
                {"error type": t, "explanation": _explanation((s, e, t), feedback_of), "start": s, "end": e}
                for s, e, t in spans
            ],
            "missing-info": [dict(entry) for entry in source["missing-info"]],
            "corrected-prediction": source["corrected-prediction"],
        }
    return {"feedback": block, "preference": preference, "closest": closest}
