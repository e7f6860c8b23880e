"""Writes for the annotation pages: autosaved drafts and submitted feedback.

Two guards keep work from being lost or doubled:
- `submit_token` is an idempotency key chosen when the page is rendered; a
  submit that carries a token already stored is a retry (double click,
  network error) and stores nothing new.
- `base_version` is the version of the stored annotation the page was
  rendered from; a submit built on an older version is stale (the same
  annotation was changed in another tab) and is refused, never merged.
Drafts carry the same kind of guard (`draft_version`) so that two tabs
autosaving one item cannot silently overwrite each other.
"""

import copy
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    ErrorSpan,
    Example,
    FeedbackStatus,
    FineGrainedFeedback,
    MissingInfo,
    Response,
)
from annotation.qa import preferences
from annotation.qa.drafts import completeness_problems
from annotation.qa.errors import Conflict, Refused
from annotation.qa.format import validate_feedback_block, validate_preference
from annotation.qa.vocab import RESPONSES
from annotation.selectors.annotate import example_passages, example_responses
from annotation.selectors.campaigns import locked_assignment
from annotation.selectors.model_rows import first_where
from annotation.services.model_writes import insert_row, update_columns, update_columns_if
from annotation.services.reviews import send_backs_resolve_on_submit


class SubmitRefused(Refused):
    """A submit or draft save that was not stored; the message is for the annotator, `problems` name fields."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.problems = problems or []


class InvalidSubmit(SubmitRefused):
    """The annotation breaks the qa-feedback rules (422, with one problem per field)."""


class StaleSubmit(SubmitRefused, Conflict):
    """The stored annotation or the draft moved on in another tab since the page was rendered (409)."""


class LeaseLost(SubmitRefused, Conflict):
    """The item was skipped or given to another annotator (409)."""


@dataclass(frozen=True)
class Submitted:
    record: FineGrainedFeedback | Comparison
    # True when this submit was a retry of one already stored.
    replayed: bool


def _lease_until(now):
    return now + timedelta(minutes=settings.ANNOTATION_LEASE_MINUTES)


def _check_token_shape(submit_token: str) -> None:
    if not submit_token or len(submit_token) > 64:
        raise InvalidSubmit("The page's submit token is missing; reload the page and submit again.")


def _stored_for_token(model, *, submit_token: str, owner_filter: dict):
    """The record a retried submit already stored, or None; refuses a token that belongs to another annotation."""
    stored = model.objects.filter(submit_token=submit_token).order_by().first()
    if stored is None:
        return None
    if any(getattr(stored, f"{name}_id") != value for name, value in owner_filter.items()):
        raise InvalidSubmit("This submit token belongs to another annotation; reload the page and submit again.")
    return stored


def _stale_message(current: int, base: int) -> str:
    # A stored annotation's version moves only when it is submitted.
    return (
        f"Not saved: this item was submitted in another tab or window since you opened it "
        f"(it is at version {current}, this page has version {base}). Reload the page to see what was submitted."
    )


def _finish_assignment(assignment: Assignment | None, *, now) -> None:
    if assignment is None:
        return
    assignment.status = AssignmentStatus.SUBMITTED
    assignment.lease_expires_at = None
    assignment.draft = {}
    assignment.submitted_at = now
    # Any other tab still autosaving this item must find out that it was submitted.
    assignment.draft_version += 1
    update_columns(assignment, ["status", "lease_expires_at", "draft", "draft_version", "submitted_at", "updated_at"])
    send_backs_resolve_on_submit(assignment=assignment, now=now)


_DRAFT_MOVED = "Not saved: this item was changed in another tab or window. Reload the page to continue from the latest version."
_DRAFT_SUBMITTED = "Not saved: this item was submitted in another tab or window. Reload the page to see what was submitted."


def _moved_message(locked: Assignment) -> str:
    """Why a page's draft version is behind: a submit clears the draft, an autosave leaves one."""
    if locked.status == AssignmentStatus.SUBMITTED and not locked.draft:
        return _DRAFT_SUBMITTED
    return _DRAFT_MOVED


def _check_assignment(locked: Assignment | None, base_draft_version: int | None) -> None:
    if locked is None:
        return
    if locked.status in (AssignmentStatus.EXPIRED, AssignmentStatus.SKIPPED):
        raise LeaseLost(_lost_message(locked))
    if base_draft_version is not None and locked.draft_version != base_draft_version:
        raise StaleSubmit(_moved_message(locked))


def _lost_message(assignment: Assignment) -> str:
    if assignment.status == AssignmentStatus.SKIPPED:
        return "You skipped this item, so it can no longer be saved here."
    return "Your hold on this item expired and it was given to another annotator; your changes here were not saved."


@dataclass(frozen=True)
class _Opened:
    """Where a submit stands once its rows are locked: a replay to return, or the rows to update."""

    replay: Submitted | None
    assignment: Assignment | None = None
    existing: FineGrainedFeedback | Comparison | None = None
    current: int = 0


def _open_submission(
    model, *, owner: dict, submit_token: str, base_version: int, assignment: Assignment | None, base_draft_version: int | None
) -> _Opened:
    """Inside the caller's transaction: lock the assignment and the owner's row; a replay if that row holds the token.

    Two queries. A token stored on another annotation surfaces as an
    IntegrityError when the row is saved (the token is unique), which
    `_after_integrity_error` sorts out. Raises StaleSubmit when the stored row
    moved on since `base_version`, LeaseLost when the item was given away.
    """
    locked = locked_assignment(assignment_id=assignment.pk) if assignment is not None else None
    # At most one row (unique per owner), read from its own table alone: Meta.ordering would join the response,
    # example and dataset, and FOR UPDATE would then lock those rows too, holding up every other submit on the dataset.
    existing = first_where(model, lock=True, **{f"{name}_id": value for name, value in owner.items()})
    if existing is not None and existing.submit_token == submit_token:
        return _Opened(Submitted(existing, replayed=True))
    _check_assignment(locked, base_draft_version)
    current = existing.version if existing else 0
    if current != base_version:
        raise StaleSubmit(_stale_message(current, base_version))
    return _Opened(None, locked, existing, current)


# What a submit sets on a stored annotation that it submits again (its owner stays).
_STORED_FIELDS = {
    FineGrainedFeedback: ("corrected_prediction", "status", "version", "submit_token", "submitted_at", "updated_at"),
    Comparison: ("preference", "status", "version", "submit_token", "submitted_at", "updated_at"),
}


def _mark_submitted(record, *, submit_token: str, now) -> None:
    record.status = FeedbackStatus.SUBMITTED
    record.version += 1
    record.submit_token = submit_token
    record.submitted_at = now
    if record.pk is None:
        insert_row(record)
    else:
        update_columns(record, _STORED_FIELDS[type(record)])


def _after_integrity_error(model, error: IntegrityError, *, submit_token: str, owner: dict, base_version: int) -> Submitted:
    """A concurrent submit won the race (the transaction was rolled back): its replay, or a stale refusal.

    The same token stored by a retry that committed first is a replay; the
    same annotation stored by another tab is stale; anything else is a real
    integrity problem and is raised again.
    """
    stored = _stored_for_token(model, submit_token=submit_token, owner_filter=owner)
    if stored is not None:
        return Submitted(stored, replayed=True)
    current = model.objects.filter(**owner).order_by().values_list("version", flat=True).first()
    if current is not None and current != base_version:
        raise StaleSubmit(_stale_message(current, base_version)) from None
    raise error


def feedback_detail_rows(record: FineGrainedFeedback, feedback: dict) -> tuple[list[ErrorSpan], list[MissingInfo]]:
    """Unsaved ErrorSpan and MissingInfo rows for a qa-feedback `feedback` block, in list order."""
    spans = [
        ErrorSpan(
            feedback=record,
            position=position,
            error_type=error["error type"],
            explanation=error["explanation"],
            start=error["start"],
            end=error["end"],
        )
        for position, error in enumerate(feedback["errors"])
    ]
    missing = [
        MissingInfo(
            feedback=record,
            position=position,
            error_type=entry["error type"],
            passage_id=entry["passage_id"],
            sentence_ids=list(entry["sentence_id"]),
        )
        for position, entry in enumerate(feedback["missing-info"])
    ]
    return spans, missing


def fine_grained_feedback_submit(
    *,
    response: Response,
    annotator: AbstractBaseUser,
    feedback: dict,
    submit_token: str,
    base_version: int,
    assignment: Assignment | None = None,
    base_draft_version: int | None = None,
) -> Submitted:
    """Validate and store one annotator's fine-grained feedback on one response.

    Raises InvalidSubmit (with one problem per field) when the feedback breaks
    the qa-feedback rules, StaleSubmit when the stored annotation moved on
    since `base_version` (or the assignment's draft since
    `base_draft_version`), LeaseLost when the assignment was given away.
    """
    owner = {"response": response.pk, "annotator": annotator.pk}

    def store(existing: FineGrainedFeedback | None, now) -> FineGrainedFeedback:
        problems = validate_feedback_block(feedback, prediction=response.text, passages=example_passages(response.example))
        problems += completeness_problems(feedback)
        if problems:
            raise InvalidSubmit("Not submitted: please fix the problems listed.", problems)
        record = existing or FineGrainedFeedback(response=response, annotator=annotator, version=0)
        record.corrected_prediction = feedback["corrected-prediction"]
        _mark_submitted(record, submit_token=submit_token, now=now)
        if existing is not None:
            record.errors.all().delete()
            record.missing_info.all().delete()
        spans, missing = feedback_detail_rows(record, feedback)
        if spans:
            ErrorSpan.objects.bulk_create(spans)
        if missing:
            MissingInfo.objects.bulk_create(missing)
        return record

    return _submit(FineGrainedFeedback, owner=owner, store=store, submit_token=submit_token, base_version=base_version,
                   assignment=assignment, base_draft_version=base_draft_version)


def comparison_submit(
    *,
    example: Example,
    annotator: AbstractBaseUser,
    preference: list,
    submit_token: str,
    base_version: int,
    assignment: Assignment | None = None,
    base_draft_version: int | None = None,
) -> Submitted:
    """Store one annotator's six pairwise answers on one example (qa-feedback `preference` order)."""
    owner = {"example": example.pk, "annotator": annotator.pk}

    def store(existing: Comparison | None, now) -> Comparison:
        problems = [("preference", f"response {pair} is not answered") for pair in preferences.unanswered(preference or [])]
        problems = problems or validate_preference(preference)
        if not problems and not _has_all_responses(example):
            problems.append(("preference", "this example does not have four responses to compare"))
        if problems:
            raise InvalidSubmit("Not submitted: please answer every question.", problems)
        record = existing or Comparison(example=example, annotator=annotator, version=0)
        record.preference = list(preference)
        _mark_submitted(record, submit_token=submit_token, now=now)
        return record

    return _submit(Comparison, owner=owner, store=store, submit_token=submit_token, base_version=base_version,
                   assignment=assignment, base_draft_version=base_draft_version)


def _submit(model, *, owner: dict, store, submit_token: str, base_version: int,
            assignment: Assignment | None, base_draft_version: int | None) -> Submitted:
    """The steps every submit shares: a replayed token returns what it stored; otherwise, in one
    transaction, lock and check versions, `store(existing, now)` the record, finish the assignment."""
    now = timezone.now()
    _check_token_shape(submit_token)
    try:
        with transaction.atomic():
            opened = _open_submission(model, owner=owner, submit_token=submit_token, base_version=base_version,
                                      assignment=assignment, base_draft_version=base_draft_version)
            if opened.replay is not None:
                return opened.replay
            record = store(opened.existing, now)
            _finish_assignment(opened.assignment, now=now)
    except IntegrityError as exc:
        return _after_integrity_error(model, exc, submit_token=submit_token, owner=owner, base_version=base_version)
    return Submitted(record, replayed=False)


def _has_all_responses(example: Example) -> bool:
    """Responses 1-4 are there (read from the responses the page loaded when it has them)."""
    numbers = {response.number for response in example_responses(example)}
    return numbers >= set(RESPONSES)


def assignment_draft_save(*, assignment: Assignment, draft: dict, base_draft_version: int) -> Assignment:
    """Autosave the page's state; refuses when another tab saved a newer draft first.

    Saving also renews the lease: an annotator who is still working keeps the item.
    Usually one UPDATE that checks the draft version and the status the page
    read; when the row moved on since, the row is locked and read to say why.
    """
    now = timezone.now()
    if assignment.status in (AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED):
        candidate = copy.copy(assignment)
        fields = _put_draft(candidate, draft, base_draft_version, now=now)
        if update_columns_if(candidate, fields, draft_version=base_draft_version, status=assignment.status):
            return candidate
    with transaction.atomic():
        locked = locked_assignment(assignment_id=assignment.pk)
        if locked.status in (AssignmentStatus.EXPIRED, AssignmentStatus.SKIPPED):
            raise LeaseLost(_lost_message(locked))
        if locked.draft_version != base_draft_version:
            raise StaleSubmit(_moved_message(locked))
        update_columns(locked, _put_draft(locked, draft, base_draft_version, now=now))
    return locked


def _put_draft(assignment: Assignment, draft: dict, base_draft_version: int, *, now) -> list[str]:
    """Set the draft on the row in hand (the next version; a leased item's lease renewed); the fields to store."""
    assignment.draft = draft
    assignment.draft_version = base_draft_version + 1
    fields = ["draft", "draft_version", "updated_at"]
    if assignment.status == AssignmentStatus.LEASED:
        assignment.lease_expires_at = _lease_until(now)
        fields.append("lease_expires_at")
    return fields
