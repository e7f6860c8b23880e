"""Work in progress on the annotation pages, as plain dicts. No ORM.

A fine-grained draft *is* a qa-feedback `feedback` block
({"errors", "missing-info", "corrected-prediction"}), so what the annotator
sees, what is autosaved, and what is validated and stored on submit are the
same object. A comparison draft is {"preference": [six answers or None]}.

Every edit is a function that changes a draft in place or raises DraftError
with a message meant for the annotator; span rules come from
annotation/qa/spans.py so that the page refuses exactly what import refuses.
"""

import json
from collections.abc import Sequence

from annotation.qa import preferences
from annotation.qa.errors import Refused
from annotation.qa.format import grounding_explanation
from annotation.qa.spans import snap_to_words, span_problems
from annotation.qa.vocab import (
    ERROR_LABELS,
    ERROR_TYPES,
    MISSING_INFO_TYPES,
    PREFERENCE_PAIRS,
    PREFERENCE_VALUES,
    REDUNDANT,
    WRONG_GROUNDING,
)

# The names annotators see for the two error types that take an explanation.
REPETITIVE = ERROR_LABELS[REDUNDANT]
INCONSISTENT_FACT = ERROR_LABELS[WRONG_GROUNDING]

Passages = Sequence[Sequence[str]]


class DraftError(Refused):
    """An edit the annotator asked for that cannot be made; the message says why."""


def empty_fine_grained(prediction: str) -> dict:
    return {"errors": [], "missing-info": [], "corrected-prediction": prediction}


def empty_comparison() -> dict:
    return {"preference": preferences.empty_answers()}


def parse_grounding(explanation: str) -> tuple[int, list[int]] | None:
    """(passage_id, sentence_ids) of a WRONG_GROUNDING explanation, or None if it names none."""
    try:
        data = json.loads(explanation)
        passage_id, sentence_ids = data["passage_id"], data["sentence_id"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(passage_id, int) or not isinstance(sentence_ids, list) or not sentence_ids:
        return None
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in sentence_ids):
        return None
    return passage_id, sentence_ids


def _check_sentences(passages: Passages, passage_id: int, sentence_ids: Sequence[int]) -> None:
    """Sentence 0 is the passage's title: the import accepts it, as a few shared dev examples cite it."""
    if not 1 <= passage_id <= len(passages):
        raise DraftError(f"There is no passage {passage_id}; this example has {len(passages)}.")
    count = len(passages[passage_id - 1]) - 1
    if not sentence_ids:
        raise DraftError("Choose at least one sentence.")
    for sentence_id in sentence_ids:
        if not 0 <= sentence_id <= count:
            raise DraftError(f"Passage {passage_id} has no sentence {sentence_id}; it has sentences 1-{count} (0 is its title).")


def _error(draft: dict, index: int) -> dict:
    errors = draft["errors"]
    if not 0 <= index < len(errors):
        raise DraftError(f"There is no span {index + 1}; it may have been removed in another tab.")
    return errors[index]


def add_error(draft: dict, *, text: str, start: int, end: int, error_type: str) -> int:
    """Mark [start, end) of `text`, snapped to whole words; returns the new span's index.

    Browsers report backwards selections and offsets past either end; snapping reads them forwards and clamps them.
    """
    start, end = _checked_span(draft["errors"], text=text, start=start, end=end, error_type=error_type)
    draft["errors"].append({"error type": error_type, "explanation": "", "start": start, "end": end})
    return len(draft["errors"]) - 1


def _checked_span(others: Sequence[dict], *, text: str, start: int, end: int, error_type: str) -> tuple[int, int]:
    """[start, end) snapped to whole words, once it is known to overlap none of `others`."""
    if error_type not in ERROR_TYPES:
        raise DraftError(f"{error_type!r} is not an error type.")
    try:
        start, end = snap_to_words(text, start, end)
    except ValueError:
        raise DraftError("Select at least one word of the response.") from None
    for number, other in enumerate(others, start=1):
        if start < other["end"] and other["start"] < end:
            label = ERROR_LABELS.get(other["error type"], other["error type"])
            raise DraftError(
                f"“{_clip(text[start:end])}” overlaps span {number} ({label}: “{_clip(text[other['start']:other['end']])}”). "
                "Spans may not overlap: remove that span first or select other words."
            )
    problems = span_problems(text, [(e["start"], e["end"]) for e in others] + [(start, end)])
    if problems:
        raise DraftError("This selection cannot be marked: " + "; ".join(problems))
    return start, end


def put_error(
    draft: dict,
    *,
    text: str,
    index: int,
    start: int,
    end: int,
    error_type: str,
    explanation: str,
    passages: Passages,
    replace: bool = False,
) -> int:
    """Put a whole span, explanation included, at `index`: inserted before it, or replacing it.

    What undo and redo send to bring back a span exactly as it was (a removed
    span at its old number, a retyped one with its old type and explanation).
    The same checks as marking and citing apply. Returns the span's index.
    """
    errors = draft["errors"]
    if replace:
        _error(draft, index)
    elif not 0 <= index <= len(errors):
        raise DraftError(f"There is no place for span {index + 1}; the draft has {len(errors)} spans.")
    others = [error for position, error in enumerate(errors) if not (replace and position == index)]
    start, end = _checked_span(others, text=text, start=start, end=end, error_type=error_type)
    if error_type == WRONG_GROUNDING and explanation:
        grounding = parse_grounding(explanation)
        if grounding is None:
            raise DraftError("That citation is not a passage and its sentences.")
        _check_sentences(passages, grounding[0], grounding[1])
        explanation = grounding_explanation(grounding[0], sorted(set(grounding[1])))
    elif error_type != REDUNDANT:
        # Only Repetitive spans take free text; only Inconsistent Facts take a citation.
        explanation = ""
    error = {"error type": error_type, "explanation": explanation, "start": start, "end": end}
    if replace:
        errors[index] = error
    else:
        errors.insert(index, error)
    return index


def _clip(snippet: str, limit: int = 60) -> str:
    snippet = " ".join(snippet.split())
    return snippet if len(snippet) <= limit else snippet[: limit - 1] + "…"


def remove_error(draft: dict, *, index: int) -> None:
    _error(draft, index)
    del draft["errors"][index]


def set_error_type(draft: dict, *, index: int, error_type: str) -> None:
    if error_type not in ERROR_TYPES:
        raise DraftError(f"{error_type!r} is not an error type.")
    error = _error(draft, index)
    if error["error type"] != error_type:
        # An explanation means something different for each type.
        error["error type"], error["explanation"] = error_type, ""


def set_explanation(draft: dict, *, index: int, explanation: str) -> None:
    """The repeated earlier text of a Repetitive span; other types take no free text."""
    error = _error(draft, index)
    if error["error type"] != REDUNDANT:
        raise DraftError(f"Span {index + 1} is not {REPETITIVE}; only {REPETITIVE} spans take a text explanation.")
    error["explanation"] = explanation


def set_grounding(draft: dict, *, index: int, passage_id: int, sentence_ids: Sequence[int], passages: Passages) -> None:
    """The passage sentences an Inconsistent Fact span contradicts."""
    error = _error(draft, index)
    if error["error type"] != WRONG_GROUNDING:
        raise DraftError(f"Span {index + 1} is not an {INCONSISTENT_FACT}; only those point at a passage sentence.")
    _check_sentences(passages, passage_id, sentence_ids)
    error["explanation"] = grounding_explanation(passage_id, sorted(set(sentence_ids)))


def add_missing(draft: dict, *, error_type: str, passage_id: int, sentence_ids: Sequence[int], passages: Passages) -> None:
    if error_type not in MISSING_INFO_TYPES:
        raise DraftError("Choose the kind of missing information first.")
    _check_sentences(passages, passage_id, sentence_ids)
    entry = {"error type": error_type, "passage_id": passage_id, "sentence_id": sorted(set(sentence_ids))}
    if entry in draft["missing-info"]:
        raise DraftError("This missing-information entry is already listed.")
    draft["missing-info"].append(entry)


def remove_missing(draft: dict, *, index: int) -> None:
    if not 0 <= index < len(draft["missing-info"]):
        raise DraftError(f"There is no missing-information entry {index + 1}.")
    del draft["missing-info"][index]


def set_correction(draft: dict, *, text: str) -> None:
    draft["corrected-prediction"] = text


def completeness_problems(feedback: dict) -> list[tuple[str, str]]:
    """What the page asks for beyond the format rules: each typed span has its explanation.

    Every Repetitive and Inconsistent Fact span in the shared dev data has
    one; an empty correction, on the other hand, is allowed (13 dev examples
    have one: a response that is wrong throughout).
    """
    problems = []
    for number, error in enumerate(feedback.get("errors", []), start=1):
        kind = error.get("error type")
        where = f"feedback.errors[{number - 1}].explanation"
        if kind == REDUNDANT and not str(error.get("explanation", "")).strip():
            problems.append((where, f"span {number} ({REPETITIVE}): give the earlier text it repeats"))
        if kind == WRONG_GROUNDING and parse_grounding(str(error.get("explanation", ""))) is None:
            problems.append((where, f"span {number} ({INCONSISTENT_FACT}): click the passage sentence it contradicts"))
    return problems


def set_preference(draft: dict, *, index: int, value: int | None) -> None:
    if not 0 <= index < len(PREFERENCE_PAIRS):
        raise DraftError(f"There is no question {index + 1}.")
    if value is not None and value not in PREFERENCE_VALUES:
        raise DraftError("Answer with first better, second better or equal.")
    draft["preference"][index] = value


def response_segments(text: str, errors: Sequence[dict]) -> list[dict]:
    """The response cut into plain and marked runs, in text order, for highlighting.

    Each run is {"start", "end", "text", "index"}; `index` is the error's
    position in the draft for a marked run and None for plain text.
    """
    marked = sorted(
        (error["start"], error["end"], index)
        for index, error in enumerate(errors)
        if 0 <= error["start"] < error["end"] <= len(text)
    )
    runs = []
    cursor = 0
    for start, end, index in marked:
        if start < cursor:
            # Overlaps an earlier span (only possible in data from elsewhere): show the first one.
            continue
        if start > cursor:
            runs.append({"start": cursor, "end": start, "text": text[cursor:start], "index": None})
        runs.append({"start": start, "end": end, "text": text[start:end], "index": index})
        cursor = end
    if cursor < len(text) or not runs:
        runs.append({"start": cursor, "end": len(text), "text": text[cursor:], "index": None})
    return runs
