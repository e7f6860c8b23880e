"""Reads for review and adjudication: the queue of items, one item's versions side by side, flags and send-backs.

An item's versions are the submitted work of the annotators who submitted
it in the campaign. Their agreement orders the queue (lowest first), from
`annotation.selectors.agreement`; the page's word-by-word view is `annotation.qa.review`.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from statistics import median

from django.contrib.auth import get_user_model
from django.db.models import Count, Prefetch, Q

from annotation.models import (
    Adjudication,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Campaign,
    Comparison,
    Example,
    FeedbackStatus,
    FineGrainedFeedback,
    ItemNote,
    Passage,
    Response,
)
from annotation.qa import review
from annotation.qa.spans import word_spans
from annotation.selectors.agreement import campaign_agreement, campaign_item_disagreement
from annotation.selectors.annotate import FINE_GRAINED_RESPONSE_NUMBER, example_passages, stored_fine_grained
from annotation.selectors.campaigns import campaign_kinds

# How many annotators' colours the pages have (static/css/review.css: .a0 ... .a5); more cycle.
ANNOTATOR_COLOURS = 6


def _submitted_by_item(campaign: Campaign) -> dict[tuple[int, str], list[int]]:
    """(example id, kind) -> ids of the annotators who submitted it in this campaign, in order of submission."""
    rows = (
        Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.SUBMITTED)
        .order_by("submitted_at", "pk")
        .values_list("example_id", "kind", "annotator_id")
    )
    items: dict[tuple[int, str], list[int]] = defaultdict(list)
    for example_id, kind, annotator_id in rows:
        items[(example_id, kind)].append(annotator_id)
    return items


@dataclass
class QueueRow:
    example: Example
    kind: str
    annotators: list
    agreement: float | None
    has_gold: bool = False
    open_flags: int = 0
    open_send_backs: int = 0

    @property
    def kind_label(self) -> str:
        return AssignmentKind(self.kind).label

    @property
    def agreement_percent(self) -> int | None:
        return None if self.agreement is None else round(100 * self.agreement)


def _item_agreements(campaign: Campaign) -> dict[tuple[int, str], float | None]:
    """(example id, kind) -> the item's agreement among the campaign's annotators (selectors.agreement)."""
    result = {}
    for row in campaign_item_disagreement(campaign=campaign):
        result[(row.example_id, AssignmentKind.FINE_GRAINED)] = row.figures["errors_agreement"]
        result[(row.example_id, AssignmentKind.COMPARISON)] = row.figures["preference_agreement"]
    return result


def review_queue(campaign: Campaign) -> list[QueueRow]:
    """Items with submitted work, those two or more annotators did first, lowest agreement first.

    Then the items one annotator did (nothing to compare), in file order;
    flagged items are listed whatever their state.
    """
    items = _submitted_by_item(campaign)
    notes = ItemNote.objects.filter(campaign=campaign, resolved_at__isnull=True).values("example_id", "item_kind", "kind").annotate(n=Count("pk"))
    open_notes: dict[tuple[int, str], dict[str, int]] = defaultdict(dict)
    for row in notes:
        open_notes[(row["example_id"], row["item_kind"])][row["kind"]] = row["n"]
        items.setdefault((row["example_id"], row["item_kind"]), [])
    agreements = _item_agreements(campaign)
    examples = Example.objects.in_bulk({example_id for example_id, _kind in items})
    users = get_user_model().objects.in_bulk({a for ids in items.values() for a in ids})
    gold = set(Adjudication.objects.filter(example_id__in=examples).values_list("example_id", "kind"))
    rows = [
        QueueRow(
            example=examples[example_id], kind=kind, annotators=[users[a] for a in annotators],
            agreement=agreements.get((example_id, kind)), has_gold=(example_id, kind) in gold,
            open_flags=open_notes[(example_id, kind)].get(ItemNote.Kind.FLAG, 0) if (example_id, kind) in open_notes else 0,
            open_send_backs=open_notes[(example_id, kind)].get(ItemNote.Kind.SEND_BACK, 0) if (example_id, kind) in open_notes else 0,
        )
        for (example_id, kind), annotators in items.items()
    ]
    kind_order = {kind: i for i, kind in enumerate(campaign_kinds(campaign))}

    def order(row: QueueRow):
        compared = len(row.annotators) >= 2 and row.agreement is not None
        return (not compared, row.agreement if compared else 0, row.example.position, kind_order.get(row.kind, 9))

    return sorted(rows, key=order)


# --- one item --------------------------------------------------------------------------


@dataclass
class Version:
    """One annotator's submitted work on the item, shaped for the review page."""

    annotator: object
    colour: int
    feedback: dict | None = None
    preference: list | None = None
    lane: list[dict] = field(default_factory=list)
    diff: list[tuple[str, str]] = field(default_factory=list)
    submitted_at: object = None

    @property
    def key(self) -> str:
        return str(self.annotator.pk)


@dataclass
class ReviewItem:
    campaign: Campaign
    example: Example
    kind: str
    text: str
    passages: list[list[str]]
    versions: list[Version]
    disagree: list[bool]
    agreement: float | None
    gold: Adjudication | None
    notes: list[ItemNote]
    responses: list[Response]

    @property
    def agreement_percent(self) -> int | None:
        return None if self.agreement is None else round(100 * self.agreement)


def _lane(text: str, errors: list[dict], disagree: list[bool]) -> list[dict]:
    """The response as word tokens (each with the whitespace after it) carrying this annotator's span and type."""
    words = word_spans(text)
    tokens = []
    owner = [None] * len(words)
    for index, error in enumerate(errors):
        for w, (start, end) in enumerate(words):
            if owner[w] is None and error["start"] < end and error["end"] > start:
                owner[w] = index
    if words and words[0][0] > 0:
        tokens.append({"text": text[: words[0][0]], "span": None, "type": None, "disagree": False})
    for w, (start, end) in enumerate(words):
        after = words[w + 1][0] if w + 1 < len(words) else len(text)
        index = owner[w]
        joined = index is not None and w + 1 < len(words) and owner[w + 1] == index
        tokens.append({
            "text": text[start:end], "space": text[end:after], "joined": joined, "span": index,
            "type": errors[index]["error type"] if index is not None else None, "disagree": disagree[w],
        })
    return tokens


def review_item(*, campaign: Campaign, example: Example, kind: str) -> ReviewItem:
    """Every annotator's submitted version of one item, aligned on the same response, and the gold version."""
    example = (
        Example.objects.prefetch_related(
            Prefetch("passages", queryset=Passage.objects.order_by("number")),
            Prefetch("responses", queryset=Response.objects.order_by("number")),
        ).get(pk=example.pk)
    )
    responses = list(example.responses.all())
    response = next((r for r in responses if r.number == FINE_GRAINED_RESPONSE_NUMBER), None)
    text = response.text if response else ""
    assignments = (
        Assignment.objects.filter(campaign=campaign, example=example, kind=kind, status=AssignmentStatus.SUBMITTED)
        .select_related("annotator")
        .order_by("submitted_at", "pk")
    )
    versions = []
    for colour, assignment in enumerate(assignments):
        version = Version(assignment.annotator, colour % ANNOTATOR_COLOURS, submitted_at=assignment.submitted_at)
        if kind == AssignmentKind.FINE_GRAINED and response is not None:
            stored = stored_fine_grained(response=response, annotator=assignment.annotator)
            if stored is None:
                continue
            version.feedback = stored.feedback
        else:
            comparison = Comparison.objects.filter(example=example, annotator=assignment.annotator).first()
            if comparison is None:
                continue
            version.preference = list(comparison.preference)
        versions.append(version)
    if kind == AssignmentKind.FINE_GRAINED:
        labels = {v.key: review.word_labels(text, v.feedback["errors"]) for v in versions}
        disagree = review.disagreeing_words(labels)
        for v in versions:
            v.lane = _lane(text, v.feedback["errors"], disagree)
            v.diff = review.word_diff(text, v.feedback["corrected-prediction"])
        agreement = review.observed_agreement(list(labels.values()))
    else:
        disagree = [len({v.preference[i] for v in versions}) > 1 for i in range(6)] if versions else []
        agreement = review.observed_agreement([v.preference for v in versions])
    notes = list(
        ItemNote.objects.filter(campaign=campaign, example=example, item_kind=kind)
        .select_related("annotator", "author", "resolved_by")
        .order_by("resolved_at", "-created_at")
    )
    return ReviewItem(
        campaign=campaign, example=example, kind=kind, text=text, passages=example_passages(example), versions=versions,
        disagree=disagree, agreement=agreement, gold=Adjudication.objects.filter(example=example, kind=kind).select_related("adjudicated_by", "accepted_from").first(),
        notes=notes, responses=responses,
    )


# --- notes and time --------------------------------------------------------------------


def open_flags(campaign: Campaign) -> list[ItemNote]:
    return list(
        ItemNote.objects.filter(campaign=campaign, kind=ItemNote.Kind.FLAG, resolved_at__isnull=True)
        .select_related("annotator", "example")
        .order_by("created_at")
    )


def open_send_backs_for(*, annotator) -> list[ItemNote]:
    """What reviewers sent back to this annotator and they have not submitted again, with their item to open."""
    notes = list(
        ItemNote.objects.filter(annotator=annotator, kind=ItemNote.Kind.SEND_BACK, resolved_at__isnull=True)
        .select_related("campaign", "example", "author")
        .order_by("created_at")
    )
    assignments = {
        (a.campaign_id, a.example_id, a.kind): a
        for a in Assignment.objects.filter(annotator=annotator, status=AssignmentStatus.SUBMITTED).filter(
            Q(example_id__in=[n.example_id for n in notes])
        )
    }
    for note in notes:
        note.assignment = assignments.get((note.campaign_id, note.example_id, note.item_kind))
    return notes


@dataclass
class AnnotatorTime:
    items: int
    total_seconds: int
    median_seconds: float | None


def annotator_times(campaign: Campaign) -> dict[int, AnnotatorTime]:
    """Per annotator: submitted items that reported time, total and median active seconds per item."""
    per_user: dict[int, list[int]] = defaultdict(list)
    rows = Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.SUBMITTED, active_seconds__gt=0).values_list(
        "annotator_id", "active_seconds"
    )
    for annotator_id, seconds in rows:
        per_user[annotator_id].append(seconds)
    return {a: AnnotatorTime(len(s), sum(s), median(s)) for a, s in per_user.items()}


def team_agreement(campaign: Campaign) -> dict[str, dict]:
    """Per annotator (by username): their agreement with the others (selectors.agreement's per_annotator)."""
    return campaign_agreement(campaign=campaign)["per_annotator"]
