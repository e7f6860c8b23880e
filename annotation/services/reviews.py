"""Writes for review and adjudication: gold versions, items sent back, flags.

A gold version (`Adjudication`) is stored apart from the annotators' work: a
reviewer accepts one annotator's version as it stands, or saves one built
from parts. Either way it passes the same rules as an annotation
(`annotation.qa.format`, whose span checks are `annotation.qa.spans`).
Saving carries the version the page was built on; an older one is refused.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from annotation.models import Adjudication, Assignment, AssignmentKind, AssignmentStatus, Campaign, Example, ItemNote
from annotation.qa.drafts import completeness_problems
from annotation.qa.errors import Conflict, NotFound, Refused
from annotation.qa.format import validate_feedback_block, validate_preference
from annotation.services.campaigns import assignment_skip
from annotation.selectors.annotate import FINE_GRAINED_RESPONSE_NUMBER, example_passages, stored_comparison, stored_fine_grained


class GoldRefused(Refused):
    """A gold version that breaks the annotation rules; `problems` are (field, message) pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]]):
        super().__init__(message)
        self.problems = problems


def _response_text(example: Example) -> str:
    response = example.responses.filter(number=FINE_GRAINED_RESPONSE_NUMBER).first()
    if response is None:
        raise NotFound(f"Example {example.number} has no response {FINE_GRAINED_RESPONSE_NUMBER}.")
    return response.text


def _check_gold(example: Example, kind: str, *, feedback: dict | None, preference: list | None) -> None:
    if kind == AssignmentKind.FINE_GRAINED:
        problems = validate_feedback_block(feedback, prediction=_response_text(example), passages=example_passages(example))
        problems = problems or completeness_problems(feedback)
    elif kind == AssignmentKind.COMPARISON:
        problems = validate_preference(preference)
    else:
        raise Refused(f"{kind!r} is not a kind of item.", field="kind")
    if problems:
        raise GoldRefused(f"Gold version for example {example.number} not saved: please fix the problems listed.", problems)


def adjudication_save(
    *,
    example: Example,
    kind: str,
    reviewer: AbstractBaseUser,
    base_version: int,
    feedback: dict | None = None,
    preference: list | None = None,
    campaign: Campaign | None = None,
    accepted_from: AbstractBaseUser | None = None,
) -> Adjudication:
    """Store the gold version of one item: a qa-feedback `feedback` block (fine-grained) or six preferences.

    `base_version` is the version the page showed (0: none yet); a gold
    version saved meanwhile by another reviewer makes this one stale (Conflict).
    """
    _check_gold(example, kind, feedback=feedback, preference=preference)
    with transaction.atomic():
        gold = Adjudication.objects.select_for_update().filter(example=example, kind=kind).first()
        current = gold.version if gold else 0
        if current != base_version:
            raise Conflict(
                f"Not saved: another reviewer saved a gold version of example {example.number} since you opened it "
                f"(version {current}, this page has {base_version}). Reload to see it."
            )
        gold = gold or Adjudication(example=example, kind=kind, version=0)
        if feedback is not None:
            gold.errors = [dict(e) for e in feedback["errors"]]
            gold.missing_info = [dict(m) for m in feedback["missing-info"]]
            gold.corrected_prediction = feedback["corrected-prediction"]
        if preference is not None:
            gold.preference = list(preference)
        gold.campaign = campaign or gold.campaign
        gold.accepted_from = accepted_from
        gold.adjudicated_by = reviewer
        gold.adjudicated_at = timezone.now()
        gold.version += 1
        gold.save()
    return gold


def adjudication_accept(
    *, example: Example, kind: str, annotator: AbstractBaseUser, reviewer: AbstractBaseUser, base_version: int,
    campaign: Campaign | None = None,
) -> Adjudication:
    """Take one annotator's submitted version, as it stands, as the gold version."""
    if kind == AssignmentKind.FINE_GRAINED:
        response = example.responses.filter(number=FINE_GRAINED_RESPONSE_NUMBER).first()
        stored = stored_fine_grained(response=response, annotator=annotator) if response else None
        if stored is None or stored.record.status != "submitted":
            raise NotFound(f"{annotator.get_username()} has submitted no fine-grained feedback on example {example.number}.")
        return adjudication_save(example=example, kind=kind, reviewer=reviewer, base_version=base_version,
                                 feedback=stored.feedback, campaign=campaign, accepted_from=annotator)
    stored = stored_comparison(example=example, annotator=annotator)
    if stored is None or stored.status != "submitted":
        raise NotFound(f"{annotator.get_username()} has submitted no comparison on example {example.number}.")
    return adjudication_save(example=example, kind=kind, reviewer=reviewer, base_version=base_version,
                             preference=list(stored.preference), campaign=campaign, accepted_from=annotator)


def item_send_back(
    *, campaign: Campaign, example: Example, item_kind: str, annotator: AbstractBaseUser, author: AbstractBaseUser, comment: str
) -> ItemNote:
    """Ask an annotator to look at their submitted item again; open until they submit it again."""
    comment = comment.strip()
    if not comment:
        raise Refused("Say what the annotator should look at again: the comment is empty.", field="comment")
    submitted = Assignment.objects.filter(
        campaign=campaign, example=example, kind=item_kind, annotator=annotator, status=AssignmentStatus.SUBMITTED
    ).exists()
    if not submitted:
        raise Refused(
            f"{annotator.get_username()} has no submitted work on example {example.number} in this campaign to send back.",
            field="annotator",
        )
    return ItemNote.objects.create(
        kind=ItemNote.Kind.SEND_BACK, campaign=campaign, example=example, item_kind=item_kind,
        annotator=annotator, author=author, comment=comment,
    )


def item_flag(*, assignment: Assignment, comment: str) -> ItemNote:
    """The annotator sets the item aside with a comment for the reviewers (instead of a silent skip).

    The item is given back like a skip, so that the annotator moves on and
    the slot can go to someone else; the flag stays open until a reviewer resolves it.
    """
    comment = comment.strip()
    if not comment:
        raise Refused("Say what is wrong with this item: the comment is empty.", field="comment")
    if assignment.status != AssignmentStatus.LEASED:
        raise Conflict("This item is no longer yours to flag (it was submitted, skipped or given to someone else).")
    with transaction.atomic():
        note = ItemNote.objects.create(
            kind=ItemNote.Kind.FLAG, campaign=assignment.campaign, example=assignment.example, item_kind=assignment.kind,
            annotator=assignment.annotator, author=assignment.annotator, comment=comment,
        )
        assignment_skip(assignment=assignment)
    return note


def note_resolve(*, note: ItemNote, reviewer: AbstractBaseUser) -> ItemNote:
    if note.resolved_at is None:
        note.resolved_at = timezone.now()
        note.resolved_by = reviewer
        note.save(update_fields=["resolved_at", "resolved_by"])
    return note


def send_backs_resolve_on_submit(*, assignment: Assignment, now) -> int:
    """The annotator submitted the item again: the send-backs on it are answered.

    Written out: every submit asks, and composing the queryset's update cost more than running it.
    """
    resolved_at = ItemNote._meta.get_field("resolved_at")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE annotation_itemnote SET resolved_at = %s, resolved_by_id = %s"
            " WHERE annotator_id = %s AND kind = %s AND resolved_at IS NULL AND campaign_id = %s AND example_id = %s"
            " AND item_kind = %s",
            [resolved_at.get_db_prep_save(now, connection=connection), assignment.annotator_id, assignment.annotator_id,
             ItemNote.Kind.SEND_BACK, assignment.campaign_id, assignment.example_id, assignment.kind],
        )
        return cursor.rowcount
