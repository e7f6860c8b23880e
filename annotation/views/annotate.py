"""The annotator's pages: fine-grained feedback on one response, comparison of four.

Each page is one template. The draft lives on the server (the assignment's
`draft`): every edit is a small htmx POST that carries the page's text
fields plus one operation, and the answer re-renders only the regions that
changed (out-of-band partials). The browser's own JavaScript only turns text
selections into character offsets and handles the keyboard.
"""

import copy
import json
import secrets
from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from annotation.models import Assignment, AssignmentKind, AssignmentStatus
from annotation.permissions import annotator_required
from annotation.qa import drafts, preferences
from annotation.qa.errors import BadRequest, Conflict
from annotation.qa.spans import word_spans
from annotation.qa.vocab import (
    ERROR_LABELS,
    INCOHERENT,
    IRRELEVANT,
    MISSING_ANSWER,
    MISSING_LABELS,
    MISSING_MAJOR,
    MISSING_MINOR,
    PREFERENCE_PAIRS,
    REDUNDANT,
    RESPONSES,
    UNVERIFIABLE,
    WRONG_GROUNDING,
)
from annotation.selectors.annotate import (
    FINE_GRAINED_RESPONSE_NUMBER,
    assignment_for_page,
    example_passages,
    response_of,
    stored_comparison,
    stored_fine_grained,
)
from annotation.selectors.campaigns import my_assignments
from annotation.selectors.reviews import open_send_backs_for
from annotation.services.campaigns import assignment_add_active_time, assignment_next, assignment_open, assignment_skip
from annotation.services.reviews import item_flag
from annotation.views.annotate_suggest import (
    SUGGESTION_OPS,
    answer_notice,
    apply_suggestion_op,
    record_answer,
    suggestion_context,
)
from annotation.services.feedback import (
    SubmitRefused,
    assignment_draft_save,
    comparison_submit,
    fine_grained_feedback_submit,
)


@dataclass(frozen=True)
class TypeChoice:
    key: str
    value: str
    label: str
    css: str
    help: str


# How each type looks on the page, in vocab order: (keyboard key, CSS class, help); names and labels come from vocab.
_ERROR_TYPE_LOOKS = {
    IRRELEVANT: ("1", "t-irrelevant", "Does not help answer the question, or is off topic."),
    REDUNDANT: ("2", "t-redundant", "Repeats something said earlier in the response."),
    INCOHERENT: ("3", "t-incoherent", "Hard to follow, ungrammatical or self-contradictory."),
    UNVERIFIABLE: ("4", "t-unverifiable", "A claim that none of the passages supports."),
    WRONG_GROUNDING: ("5", "t-wrong-grounding", "Contradicts a sentence of the passages."),
}
ERROR_TYPE_CHOICES = tuple(
    TypeChoice(key, value, ERROR_LABELS[value], css, help) for value, (key, css, help) in _ERROR_TYPE_LOOKS.items()
)
ERROR_TYPE_BY_VALUE = {choice.value: choice for choice in ERROR_TYPE_CHOICES}
_MISSING_TYPE_LOOKS = {
    MISSING_ANSWER: ("m-answer", "Information needed to answer the question is left out."),
    MISSING_MAJOR: ("m-major", "Important supporting information is left out."),
    MISSING_MINOR: ("m-minor", "Helpful but minor detail is left out."),
}
MISSING_TYPE_CHOICES = tuple(
    TypeChoice("", value, MISSING_LABELS[value], css, help) for value, (css, help) in _MISSING_TYPE_LOOKS.items()
)
MISSING_TYPE_BY_VALUE = {choice.value: choice for choice in MISSING_TYPE_CHOICES}

# Field paths from the validators, turned into words an annotator recognises.
_FIELD_NAMES = (("feedback.errors[", "Span "), ("feedback.missing-info[", "Missing-info entry "))


def _own_assignment(request: HttpRequest, pk: int) -> Assignment:
    assignment = assignment_for_page(assignment_id=pk)
    if assignment is None:
        raise Http404("No such item.")
    if assignment.annotator_id != request.user.pk:
        # Annotators see only their own work, researchers included.
        raise PermissionDenied("This item belongs to another annotator.")
    return assignment


def _int(value: str | None, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a whole number, not {value!r}", field=name) from None


def _int_list(value: str | None, name: str) -> list[int]:
    parts = [part for part in (value or "").replace(",", " ").split() if part]
    return [_int(part, name) for part in parts]


def _describe_field(field: str) -> str:
    for prefix, words in _FIELD_NAMES:
        if field.startswith(prefix):
            number, _, rest = field[len(prefix) :].partition("]")
            if number.isdigit():
                rest = rest.lstrip(".")
                return f"{words}{int(number) + 1}" + (f" ({rest})" if rest else "")
    return {"feedback.corrected-prediction": "Correction", "preference": "Answers"}.get(field, field)


# --- fine-grained feedback -------------------------------------------------------------


def _fine_grained_state(assignment: Assignment, annotator, *, draft_only: bool = False):
    """The response, the annotator's stored feedback and the page's state (the draft, else the stored feedback).

    `draft_only`: the caller needs only the state, so the stored feedback is
    read only when there is no draft (a submit: one to three queries fewer).
    """
    example = assignment.example
    response = response_of(example, FINE_GRAINED_RESPONSE_NUMBER)
    if response is None:
        raise Http404("This example has no response 1 to annotate.")
    draft = assignment.draft if assignment.draft.get("errors") is not None else None
    if draft is not None and draft_only:
        return response, None, draft
    stored = stored_fine_grained(response=response, annotator=annotator)
    if draft is None:
        draft = stored.feedback if stored else drafts.empty_fine_grained(response.text)
    return response, stored, draft


def _sync_fine_grained_text(draft: dict, post) -> None:
    """Copy the page's free-text fields into the draft; every request carries them."""
    if "corrected-prediction" in post:
        drafts.set_correction(draft, text=post["corrected-prediction"])
    for index, error in enumerate(draft["errors"]):
        key = f"explanation-{index}"
        if key in post and error["error type"] == REDUNDANT:
            error["explanation"] = post[key]


def _error_rows(text: str, draft: dict) -> list[dict]:
    rows = []
    for index, error in enumerate(draft["errors"]):
        grounding = drafts.parse_grounding(error["explanation"]) if error["error type"] == WRONG_GROUNDING else None
        rows.append(
            {
                "index": index,
                "number": index + 1,
                "error": error,
                "type": ERROR_TYPE_BY_VALUE.get(error["error type"]),
                "snippet": text[error["start"] : error["end"]],
                "grounding": grounding,
                "grounding_sentences": " ".join(str(s) for s in grounding[1]) if grounding else "",
                "citation": _citation(*grounding) if grounding else "",
            }
        )
    return rows


def _citation(passage_id: int, sentence_ids: list[int]) -> str:
    """ "passage 2, sentences 1, 3" — sentence 0 is the passage's title."""
    parts = ["title"] if 0 in sentence_ids else []
    numbered = [str(s) for s in sentence_ids if s != 0]
    if numbered:
        parts.append(f"sentence{'s' if len(numbered) > 1 else ''} {', '.join(numbered)}")
    return f"passage {passage_id}, " + ", ".join(parts)


def _missing_rows(draft: dict, passages: list[list[str]]) -> list[dict]:
    rows = []
    for index, entry in enumerate(draft["missing-info"]):
        passage = passages[entry["passage_id"] - 1] if 1 <= entry["passage_id"] <= len(passages) else None
        rows.append(
            {
                "index": index,
                "entry": entry,
                "type": MISSING_TYPE_BY_VALUE.get(entry["error type"]),
                "sentences": " ".join(str(s) for s in entry["sentence_id"]),
                "citation": _citation(entry["passage_id"], entry["sentence_id"]),
                "quotes": [passage[s] for s in entry["sentence_id"] if passage and 0 <= s < len(passage)],
            }
        )
    return rows


def _passage_rows(passages: list[list[str]]) -> list[dict]:
    return [
        {"number": number, "title": passage[0], "sentences": list(enumerate(passage[1:], start=1))}
        for number, passage in enumerate(passages, start=1)
    ]


def _segments(text: str, draft: dict) -> list[dict]:
    segments = drafts.response_segments(text, draft["errors"])
    for segment in segments:
        if segment["index"] is not None:
            choice = ERROR_TYPE_BY_VALUE.get(draft["errors"][segment["index"]]["error type"], ERROR_TYPE_CHOICES[0])
            segment["css"], segment["label"] = choice.css, choice.label
    return segments


def _fine_grained_context(request, assignment, *, response, stored, draft, passages: bool = True, **extra) -> dict:
    """`passages=False` for the autosave's partials, which show none: the passages are then read only to quote
    the draft's missing-information entries, if it has any."""
    example = assignment.example
    context = {
        "assignment": assignment,
        "campaign": assignment.campaign,
        "example": example,
        "response": response,
        "passages": _passage_rows(example_passages(example)) if passages else [],
        "draft": draft,
        "segments": _segments(response.text, draft),
        "correction": draft["corrected-prediction"],
        "error_rows": _error_rows(response.text, draft),
        "missing_rows": _missing_rows(draft, example_passages(example)) if draft["missing-info"] else [],
        "error_types": ERROR_TYPE_CHOICES,
        "error_types_by_value": ERROR_TYPE_BY_VALUE,
        "missing_types": MISSING_TYPE_CHOICES,
        "words": [list(span) for span in word_spans(response.text)],
        **_submission_context(assignment, stored.record if stored else None),
    }
    context.update(suggestion_context(assignment, response, context["segments"]))
    context.update(extra)
    return context


# An item's actions are paths under its page (annotation/urls.py: work/<pk>/<action>/), so one reverse gives them
# all; the pages link to them seven times, and each `{% url %}` reversed again (about 25 microseconds, issue 9).
ITEM_ACTIONS = {"draft": "annotate_draft", "submit": "annotate_submit", "skip": "annotate_skip", "time": "annotate_time",
                "flag": "annotate_flag"}


def item_urls(assignment_id: int) -> dict[str, str]:
    """The item page's URL ("page") and its actions' ("draft", "submit", ...)."""
    page = reverse("annotation:annotate", args=[assignment_id])
    return {"page": page, **{action: f"{page}{action}/" for action in ITEM_ACTIONS}}


def _submission_context(assignment, record) -> dict:
    """What both annotation pages need to save and submit: versions, a fresh submit token, the state, the URLs."""
    return {
        "item_urls": item_urls(assignment.pk),
        "version": record.version if record else 0,
        "submitted_at": record.submitted_at if record else None,
        "draft_version": assignment.draft_version,
        "submit_token": secrets.token_urlsafe(24),
        "has_draft": bool(assignment.draft),
        "is_submitted": assignment.status == AssignmentStatus.SUBMITTED,
    }


def _fine_grained_page(request, assignment, *, status: int = 200, **extra) -> HttpResponse:
    response, stored, draft = _fine_grained_state(assignment, request.user)
    context = _fine_grained_context(request, assignment, response=response, stored=stored, draft=draft, **extra)
    return render(request, "annotation/annotate/fine_grained.html", context, status=status)


# --- comparison ------------------------------------------------------------------------


def _comparison_state(assignment: Assignment, annotator, *, draft_only: bool = False):
    example = assignment.example
    responses = [response_of(example, number) for number in RESPONSES]
    if any(r is None for r in responses):
        raise Http404("This example does not have four responses to compare.")
    draft = assignment.draft if isinstance(assignment.draft.get("preference"), list) else None
    if draft is not None and draft_only:
        return responses, None, draft
    stored = stored_comparison(example=example, annotator=annotator)
    if draft is None:
        draft = {"preference": list(stored.preference)} if stored else drafts.empty_comparison()
    return responses, stored, draft


def _sync_comparison(draft: dict, post) -> None:
    for index in range(len(PREFERENCE_PAIRS)):
        answer = post.get(f"pair-{index}")
        if answer in preferences.ANSWER_VALUES:
            drafts.set_preference(draft, index=index, value=preferences.ANSWER_VALUES[answer])


def comparison_questions(preference: list) -> list[dict]:
    """The six pairwise questions with the answers given so far (None: not answered)."""
    return [
        {
            "index": index,
            "a": a,
            "b": b,
            "answer": preferences.VALUE_ANSWERS.get(value) if value is not None else None,
            "options": [
                ("first", "a", f"{a} better"),
                ("second", "b", f"{b} better"),
                ("equal", "e", "Equal"),
            ],
        }
        for index, ((a, b), value) in enumerate(zip(PREFERENCE_PAIRS, preference))
    ]


def _comparison_context(request, assignment, *, responses, stored, draft, passages: bool = True, **extra) -> dict:
    """`passages=False` for the autosave's partials, which show none (the passages are then never read)."""
    preference = draft["preference"]
    questions = comparison_questions(preference)
    context = {
        "assignment": assignment,
        "campaign": assignment.campaign,
        "example": assignment.example,
        "responses": responses,
        "passages": _passage_rows(example_passages(assignment.example)) if passages else [],
        "questions": questions,
        "answered": sum(value is not None for value in preference),
        "cycles": preferences.intransitive_cycles(preference),
        **_submission_context(assignment, stored),
    }
    context.update(extra)
    return context


def _comparison_page(request, assignment, *, status: int = 200, **extra) -> HttpResponse:
    responses, stored, draft = _comparison_state(assignment, request.user)
    context = _comparison_context(request, assignment, responses=responses, stored=stored, draft=draft, **extra)
    return render(request, "annotation/annotate/comparison.html", context, status=status)


# --- views -----------------------------------------------------------------------------


@annotator_required
@require_GET
def annotate(request: HttpRequest, pk: int) -> HttpResponse:
    assignment = _own_assignment(request, pk)
    if assignment.status in (AssignmentStatus.EXPIRED, AssignmentStatus.SKIPPED):
        messages.warning(
            request,
            "You skipped that item." if assignment.status == AssignmentStatus.SKIPPED else "Your hold on that item expired and it went to another annotator.",
        )
        return redirect("annotation:my_work")
    assignment_open(assignment=assignment)
    if assignment.kind == AssignmentKind.FINE_GRAINED:
        return _fine_grained_page(request, assignment)
    return _comparison_page(request, assignment)


def _refused(assignment: Assignment, error: SubmitRefused, *, target: str) -> HttpResponse:
    """The problems partial in place of `target`, with the refusal's status (the page shows it inline).

    A conflict (the item moved on in another tab, or the hold on it was lost)
    goes to one place whichever request found out, so it never shows twice.
    """
    if isinstance(error, Conflict):
        target = "#draft-problems"
    problems = [(_describe_field(field), message) for field, message in error.problems]
    html = render_to_string(
        "annotation/annotate/_problems.html",
        {"message": error.message, "problems": problems, "stale": isinstance(error, Conflict), "assignment": assignment},
    )
    response = HttpResponse(html, status=error.status)
    return reswap(retarget(response, target), "innerHTML")


def _apply_fine_grained_op(op: str, post, draft: dict, *, text: str, example) -> int | None:
    """Apply one edit; returns the index of a span to bring into focus, if any (the passages are read only by
    the edits that cite them)."""
    if op == "add_span":
        return drafts.add_error(
            draft, text=text, start=_int(post.get("start"), "start"), end=_int(post.get("end"), "end"), error_type=post.get("type", "")
        )
    if op == "remove_span":
        drafts.remove_error(draft, index=_int(post.get("index"), "index"))
    elif op == "retype_span":
        index = _int(post.get("index"), "index")
        drafts.set_error_type(draft, index=index, error_type=post.get("type", ""))
        return index
    elif op in ("insert_span", "replace_span"):
        return drafts.put_error(
            draft,
            text=text,
            index=_int(post.get("index"), "index"),
            start=_int(post.get("start"), "start"),
            end=_int(post.get("end"), "end"),
            error_type=post.get("type", ""),
            explanation=post.get("explanation", ""),
            passages=example_passages(example),
            replace=op == "replace_span",
        )
    elif op == "set_grounding":
        index = _int(post.get("index"), "index")
        drafts.set_grounding(
            draft,
            index=index,
            passage_id=_int(post.get("passage_id"), "passage_id"),
            sentence_ids=_int_list(post.get("sentence_ids"), "sentence_ids"),
            passages=example_passages(example),
        )
    elif op == "add_missing":
        drafts.add_missing(
            draft,
            error_type=post.get("missing_type", ""),
            passage_id=_int(post.get("passage_id"), "passage_id"),
            sentence_ids=_int_list(post.get("sentence_ids"), "sentence_ids"),
            passages=example_passages(example),
        )
    elif op == "remove_missing":
        drafts.remove_missing(draft, index=_int(post.get("index"), "index"))
    elif op != "sync":
        raise BadRequest(f"unknown operation {op!r}", field="op")
    return None


def _inverse(op: str, post, before: list[dict], after: list[dict], index: int | None) -> dict | None:
    """The draft operation that takes a span edit back, for the page's undo and redo; None when nothing changed.

    It is computed here, from the draft as stored before and after the edit,
    so that undoing replays through this same view and the saved draft always
    matches what the page shows.
    """

    def put(op: str, position: int, error: dict) -> dict:
        return {
            "op": op,
            "index": position,
            "start": error["start"],
            "end": error["end"],
            "type": error["error type"],
            "explanation": error["explanation"],
        }

    if op in ("add_span", "insert_span") and index is not None:
        return {"op": "remove_span", "index": index}
    if op == "remove_span":
        position = _int(post.get("index"), "index")
        return put("insert_span", position, before[position])
    if op in ("retype_span", "replace_span", "set_grounding"):
        position = _int(post.get("index"), "index")
        if before[position] != after[position]:
            return put("replace_span", position, before[position])
    return None


_HISTORY_WORDS = {"undo": "Undone", "redo": "Redone"}


def _notice(op: str, draft: dict, index: int | None, history: str = "") -> str | None:
    """A short confirmation for screen readers and for the eye, after an edit that worked."""
    if history in _HISTORY_WORDS:
        if op == "remove_span":
            what = "span removed"
        else:
            error = draft["errors"][index]
            what = f"span {index + 1} ({ERROR_LABELS.get(error['error type'], error['error type'])}) is back"
        return f"{_HISTORY_WORDS[history]}: {what}."
    if op in ("add_span", "retype_span") and index is not None:
        error = draft["errors"][index]
        label = ERROR_LABELS.get(error["error type"], error["error type"])
        hint = {REDUNDANT: " Now give the earlier text it repeats.", WRONG_GROUNDING: " Now click the passage sentence it contradicts."}
        return f"Span {index + 1} marked {label}.{hint.get(error['error type'], '')}"
    return {
        "remove_span": "Span removed.",
        "set_grounding": "Citation saved.",
        "add_missing": "Missing information added.",
        "remove_missing": "Missing-information entry removed.",
    }.get(op)


_SPAN_OPS = {"add_span", "remove_span", "retype_span", "set_grounding", "insert_span", "replace_span", *SUGGESTION_OPS}
_MISSING_OPS = {"add_missing", "remove_missing"}


@annotator_required
@require_POST
def draft(request: HttpRequest, pk: int) -> HttpResponse:
    """Autosave and edit the draft: sync the text fields, apply `op`, answer with the changed regions."""
    assignment = _own_assignment(request, pk)
    op = request.POST.get("op", "sync")
    base_draft_version = _int(request.POST.get("draft_version"), "draft_version")
    history = request.POST.get("history", "")
    refusal: drafts.DraftError | None = None
    notice = focus_index = inverse = answer = None
    if assignment.kind == AssignmentKind.FINE_GRAINED:
        # The partials it answers with show no stored version, so a draft in progress is all it reads.
        response, stored, state = _fine_grained_state(assignment, request.user, draft_only=True)
        _sync_fine_grained_text(state, request.POST)
        before = copy.deepcopy(state["errors"])
        try:
            if op in SUGGESTION_OPS:
                focus_index, answer = apply_suggestion_op(op, request.POST, state, assignment=assignment, text=response.text)
                notice = answer_notice(op, state, focus_index)
                inverse = _inverse("add_span", request.POST, before, state["errors"], focus_index)
            else:
                focus_index = _apply_fine_grained_op(op, request.POST, state, text=response.text, example=assignment.example)
                notice = _notice(op, state, focus_index, history)
                inverse = _inverse(op, request.POST, before, state["errors"], focus_index)
        except drafts.DraftError as exc:
            # Shown inside the page's own message region, with the refusal's status.
            refusal = exc
    else:
        responses, stored, state = _comparison_state(assignment, request.user, draft_only=True)
        _sync_comparison(state, request.POST)
    try:
        saved = assignment_draft_save(assignment=assignment, draft=state, base_draft_version=base_draft_version)
    except SubmitRefused as exc:
        return _refused(assignment, exc, target="#draft-problems")
    # Keep the copy with its example, passages and responses already loaded.
    assignment.draft, assignment.draft_version = saved.draft, saved.draft_version
    record_answer(assignment, answer if refusal is None else None)

    if assignment.kind == AssignmentKind.FINE_GRAINED:
        context = _fine_grained_context(
            request,
            assignment,
            response=response,
            stored=stored,
            draft=state,
            message=str(refusal) if refusal else None,
            notice=notice,
            # An undone or redone edit puts the focus back itself; see static/js/annotate.js.
            focus_index=None if history else focus_index,
            inverse=json.dumps(inverse) if inverse else "",
            history=history if history in _HISTORY_WORDS else "",
            op=op,
            oob=True,
            passages=False,
        )
        names = ["draft_state"]
        if op in _SPAN_OPS:
            names += ["fg_message", "fg_response", "fg_spans"]
        if op in SUGGESTION_OPS:
            names += ["fg_suggestions"]
        elif op in _MISSING_OPS:
            names += ["fg_missing_message", "fg_missing"]
        template = "annotation/annotate/fine_grained.html"
    else:
        context = _comparison_context(
            request, assignment, responses=responses, stored=stored, draft=state, passages=False, oob=True
        )
        names = ["draft_state", "cmp_status"]
        template = "annotation/annotate/comparison.html"
    # The partials need nothing from the request, so context processors (a query each) are skipped.
    html = "".join(render_to_string(f"{template}#{name}", context) for name in names)
    return HttpResponse(html, status=refusal.status if refusal else 200)


def _next_url(request, assignment: Assignment) -> str:
    following = assignment_next(campaign=assignment.campaign, annotator=request.user)
    if following is None:
        messages.success(request, f"Thank you! Nothing is left for you in “{assignment.campaign.name}” right now.")
        return reverse("annotation:my_work")
    return reverse("annotation:annotate", args=[following.pk])


@annotator_required
@require_POST
def submit(request: HttpRequest, pk: int) -> HttpResponse:
    """Validate and store the annotation, then move on to the next item."""
    assignment = _own_assignment(request, pk)
    base_version = _int(request.POST.get("version"), "version")
    base_draft_version = _int(request.POST.get("draft_version"), "draft_version")
    token = request.POST.get("submit_token", "")
    try:
        if assignment.kind == AssignmentKind.FINE_GRAINED:
            response, _stored, state = _fine_grained_state(assignment, request.user, draft_only=True)
            _sync_fine_grained_text(state, request.POST)
            result = fine_grained_feedback_submit(
                response=response,
                annotator=request.user,
                feedback=state,
                submit_token=token,
                base_version=base_version,
                assignment=assignment,
                base_draft_version=base_draft_version,
            )
        else:
            _responses, _stored, state = _comparison_state(assignment, request.user, draft_only=True)
            _sync_comparison(state, request.POST)
            result = comparison_submit(
                example=assignment.example,
                annotator=request.user,
                preference=state["preference"],
                submit_token=token,
                base_version=base_version,
                assignment=assignment,
                base_draft_version=base_draft_version,
            )
    except SubmitRefused as exc:
        if request.htmx:
            return _refused(assignment, exc, target="#submit-problems")
        messages.error(request, exc.message)
        problems = [(_describe_field(field), message) for field, message in exc.problems]
        page = _fine_grained_page if assignment.kind == AssignmentKind.FINE_GRAINED else _comparison_page
        return page(request, assignment, status=exc.status, problems=problems)

    if not result.replayed:
        messages.success(request, "Submitted. Here is your next item.")
    url = _next_url(request, assignment)
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@annotator_required
@require_POST
def skip(request: HttpRequest, pk: int) -> HttpResponse:
    assignment = _own_assignment(request, pk)
    assignment_skip(assignment=assignment)
    messages.info(request, "Skipped. Someone else can take that item.")
    url = _next_url(request, assignment)
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@annotator_required
@require_GET
def my_work(request: HttpRequest) -> HttpResponse:
    context = {"assignments": my_assignments(annotator=request.user), "sent_back": open_send_backs_for(annotator=request.user)}
    return render(request, "annotation/annotate/my_work.html", context)


@annotator_required
@require_POST
def flag(request: HttpRequest, pk: int) -> HttpResponse:
    """Set the item aside with a comment for the reviewers, and move on."""
    assignment = _own_assignment(request, pk)
    item_flag(assignment=assignment, comment=request.POST.get("comment", ""))
    messages.info(request, "Flagged for the reviewers, with your comment. Here is your next item.")
    url = _next_url(request, assignment)
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@annotator_required
@require_POST
def active_time(request: HttpRequest, pk: int) -> HttpResponse:
    """The page reports the seconds it was in use since its last report (static/js/annotate-extras.js)."""
    assignment = _own_assignment(request, pk)
    assignment_add_active_time(assignment=assignment, seconds=_int(request.POST.get("seconds"), "seconds"))
    return HttpResponse(status=204)
