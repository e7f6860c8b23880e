"""The fine-grained page's model-in-the-loop parts: outlined suggestions, their answers, per-segment rewards.

A suggestion becomes an annotation only when the annotator accepts it (the
whole segment) or trims it (some of its words) with a type: both add an
ordinary span to the draft. Dismissing adds nothing. Every answer is
recorded as a SuggestionEvent once the draft that carries it is saved.
"""

from __future__ import annotations

from annotation.models import Assignment, Response, Suggestion
from annotation.qa import drafts
from annotation.qa import suggestions as sq
from annotation.qa.errors import Refused
from annotation.qa.vocab import ERROR_LABELS
from annotation.selectors.suggestions import acted_suggestion_ids, page_suggestions, reward_rows
from annotation.services.suggestions import REWARD_SOURCE, suggestion_check_answer, suggestion_event_record

SUGGESTION_OPS = {"accept_suggestion": sq.ACCEPT, "trim_suggestion": sq.TRIM, "dismiss_suggestion": sq.DISMISS}


def _int(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise drafts.DraftError(f"{name} must be a whole number, got {value!r}.") from None


def apply_suggestion_op(op: str, post, draft: dict, *, assignment: Assignment, text: str) -> tuple[int | None, dict]:
    """Apply an answer to a suggestion to the draft; returns (the new span's index or None, the event to record)."""
    action = SUGGESTION_OPS[op]
    suggestion_id = _int(post.get("suggestion"), "suggestion")
    suggestion = Suggestion.objects.filter(
        pk=suggestion_id, campaign_id=assignment.campaign_id, response__example_id=assignment.example_id
    ).first()
    if suggestion is None:
        raise drafts.DraftError(f"Suggestion {suggestion_id} is not one of this response's.")
    if suggestion_id in acted_suggestion_ids(assignment=assignment):
        raise drafts.DraftError("That suggestion was already answered.")
    error_type = post.get("type", "") if action != sq.DISMISS else ""
    start = end = None
    if action == sq.ACCEPT:
        start, end = suggestion.start, suggestion.end
    elif action == sq.TRIM:
        start, end = _int(post.get("start"), "start"), _int(post.get("end"), "end")
    try:
        suggestion_check_answer(suggestion=suggestion, action=action, error_type=error_type, start=start, end=end)
    except Refused as exc:
        raise drafts.DraftError(f"{exc}.") from None
    index = None
    if action != sq.DISMISS:
        index = drafts.add_error(draft, text=text, start=start, end=end, error_type=error_type)
        start, end = draft["errors"][index]["start"], draft["errors"][index]["end"]
    event = {"suggestion_id": suggestion_id, "action": action, "error_type": error_type, "start": start, "end": end}
    return index, event


def record_answer(assignment: Assignment, event: dict | None) -> None:
    if event:
        suggestion_event_record(assignment=assignment, **event)


def answer_notice(op: str, draft: dict, index: int | None) -> str | None:
    if op == "dismiss_suggestion":
        return "Suggestion dismissed."
    if index is None:
        return None
    error = draft["errors"][index]
    verb = "accepted" if op == "accept_suggestion" else "trimmed and accepted"
    return f"Suggestion {verb} as span {index + 1} ({ERROR_LABELS.get(error['error type'], error['error type'])})."


def suggestion_context(assignment: Assignment, response: Response, segments: list[dict]) -> dict:
    """The page's suggestions, its text runs cut at their edges, and the response's per-segment rewards."""
    page = page_suggestions(assignment=assignment, response=response)
    if page.items:
        segments = sq.outline_runs(segments, page.items)
    hide = REWARD_SOURCE if page.control else None
    return {"suggest": page, "segments": segments, "reward_rows": reward_rows(response, hide_source=hide)}
