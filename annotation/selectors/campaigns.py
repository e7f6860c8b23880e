"""Reads for annotation campaigns: which items exist, who holds what, progress.

A campaign item is one example of the campaign's dataset split and one kind
of work. Fine-grained items are the examples with a response 1 (the
qa-feedback format keeps fine-grained feedback on `prediction 1`);
comparison items are the examples with responses 1 to 4. Each item has
`annotators_per_item` slots; a slot is live while an assignment holds it
with an unexpired lease or has been submitted.
"""

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, IntegerField, Max, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from annotation.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Campaign,
    CampaignTask,
    Comparison,
    Example,
    FeedbackStatus,
    FineGrainedFeedback,
    Response,
)
from annotation.qa.vocab import RESPONSES
from annotation.roles import ANNOTATOR
from annotation.selectors.annotate import FINE_GRAINED_RESPONSE_NUMBER
from annotation.selectors.queue_order import queue_ordered

# Served in this order for the same example: read the passages once, do both.
KIND_ORDER = (AssignmentKind.FINE_GRAINED, AssignmentKind.COMPARISON)


def campaign_kinds(campaign: Campaign) -> list[str]:
    if campaign.task == CampaignTask.BOTH:
        return list(KIND_ORDER)
    return [campaign.task]


def live_assignment_q(now: datetime) -> Q:
    return Q(status=AssignmentStatus.SUBMITTED) | Q(status=AssignmentStatus.LEASED, lease_expires_at__gt=now)


def campaign_items(campaign: Campaign, kind: str) -> QuerySet[Example]:
    """The examples that are items of `kind` in this campaign, in file order."""
    examples = Example.objects.filter(dataset_id=campaign.dataset_id, split=campaign.split)
    if kind == AssignmentKind.FINE_GRAINED:
        return examples.filter(
            Exists(Response.objects.filter(example=OuterRef("pk"), number=FINE_GRAINED_RESPONSE_NUMBER))
        ).order_by("position")
    responses = (
        Response.objects.filter(example=OuterRef("pk"), number__in=RESPONSES)
        .values("example")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        examples.alias(n_responses=Coalesce(Subquery(responses, output_field=IntegerField()), Value(0)))
        .filter(n_responses=len(RESPONSES))
        .order_by("position")
    )


def shared_item_ids(campaign: Campaign, kind: str) -> frozenset[int]:
    """The items every annotator of the campaign annotates (for agreement): `shared_share` of them, rounded.

    A seeded choice that depends only on the campaign and the example, so it
    is stable for a campaign and the same examples are shared for both kinds.
    """
    if campaign.shared_share <= 0:
        return frozenset()
    ids = list(campaign_items(campaign, kind).values_list("pk", flat=True))
    count = round(campaign.shared_share * len(ids))
    ranked = sorted(ids, key=lambda pk: hashlib.sha256(f"granary-shared:{campaign.pk}:{pk}".encode()).digest())
    return frozenset(ranked[:count])


def team_size(campaign: Campaign) -> int:
    """How many annotate a shared item: everyone on the campaign (never fewer than the overlap)."""
    return max(campaign.annotators_per_item, campaign.annotators.count())


def item_capacity(campaign: Campaign, *, example_id: int, kind: str) -> int:
    """Slots of one item: the whole team on a shared item, else `annotators_per_item`."""
    if example_id in shared_item_ids(campaign, kind):
        return team_size(campaign)
    return campaign.annotators_per_item


def _has_free_slot(campaign: Campaign, kind: str) -> Q:
    """Over items annotated with `n_live`: fewer live slots than the item has."""
    open_q = Q(n_live__lt=campaign.annotators_per_item)
    shared = shared_item_ids(campaign, kind)
    if shared:
        open_q |= Q(pk__in=shared, n_live__lt=team_size(campaign))
    return open_q


def _done_elsewhere(kind: str, annotator) -> Exists:
    """The annotator already submitted this work, in this campaign or another."""
    if kind == AssignmentKind.FINE_GRAINED:
        return Exists(
            FineGrainedFeedback.objects.filter(
                response__example=OuterRef("pk"),
                response__number=FINE_GRAINED_RESPONSE_NUMBER,
                annotator=annotator,
                status=FeedbackStatus.SUBMITTED,
            )
        )
    return Exists(Comparison.objects.filter(example=OuterRef("pk"), annotator=annotator, status=FeedbackStatus.SUBMITTED))


def open_items_for(*, campaign: Campaign, annotator, kind: str, now: datetime) -> QuerySet[Example]:
    """Items of `kind` that still need annotations and that this annotator has neither done nor skipped."""
    live = (
        Assignment.objects.filter(campaign=campaign, example=OuterRef("pk"), kind=kind)
        .filter(live_assignment_q(now))
        .values("example")
        .annotate(n=Count("pk"))
        .values("n")
    )
    # Any row of the annotator's own except one that expired counts: submitted, skipped or held.
    mine = Assignment.objects.filter(campaign=campaign, example=OuterRef("pk"), kind=kind, annotator=annotator).exclude(
        status=AssignmentStatus.EXPIRED
    )
    return (
        campaign_items(campaign, kind)
        .alias(n_live=Coalesce(Subquery(live, output_field=IntegerField()), Value(0)))
        .filter(_has_free_slot(campaign, kind))
        .exclude(Exists(mine))
        .exclude(_done_elsewhere(kind, annotator))
    )


@dataclass(frozen=True)
class NextItem:
    example_id: int
    kind: str
    # Set when the annotator already holds this item: resume it instead of leasing a new slot.
    assignment: Assignment | None = None


def held_assignment(*, campaign: Campaign, annotator) -> Assignment | None:
    """The item the annotator is working on in this campaign, if any.

    A held lease that ran out is still theirs until someone else takes the
    slot (taking it marks this row expired), so it is resumed rather than lost.
    """
    return (
        Assignment.objects.filter(campaign=campaign, annotator=annotator, status=AssignmentStatus.LEASED)
        .order_by("created_at", "pk")
        .first()
    )


def next_assignment_for(*, campaign: Campaign, annotator, now: datetime) -> NextItem | None:
    """What the annotator should work on next in this campaign, or None when nothing is left.

    Call inside a transaction: on PostgreSQL the chosen example's row is
    locked with SKIP LOCKED, so annotators starting at the same moment are
    handed different examples instead of queueing on one. SQLite has no row
    locks (Django ignores select_for_update there) but serialises writers,
    and the unique constraint on live slots is the final guard on both.
    """
    held = held_assignment(campaign=campaign, annotator=annotator)
    if held is not None:
        return NextItem(held.example_id, held.kind, held)
    if not campaign.is_active:
        return None
    best: tuple[int, float, int] | None = None
    for order, kind in enumerate(campaign_kinds(campaign)):
        row = (
            queue_ordered(campaign, open_items_for(campaign=campaign, annotator=annotator, kind=kind, now=now))
            .select_for_update(skip_locked=True)
            .values_list("pk", "queue_key")
            .first()
        )
        if row is not None and (best is None or (row[1], order) < (best[1], best[2])):
            best = (row[0], row[1], order)
    if best is None:
        return None
    return NextItem(best[0], campaign_kinds(campaign)[best[2]])


def has_open_items(*, campaign: Campaign, annotator, now: datetime) -> bool:
    if held_assignment(campaign=campaign, annotator=annotator) is not None:
        return True
    if not campaign.is_active:
        return False
    return any(
        open_items_for(campaign=campaign, annotator=annotator, kind=kind, now=now).exists() for kind in campaign_kinds(campaign)
    )


@dataclass
class KindProgress:
    kind: str
    label: str
    items: int
    slots: int
    submitted: int = 0
    in_progress: int = 0

    @property
    def percent(self) -> int:
        return round(100 * self.submitted / self.slots) if self.slots else 0


@dataclass
class AnnotatorProgress:
    user: object
    submitted: int = 0
    in_progress: int = 0
    skipped: int = 0
    last_submitted_at: datetime | None = None


@dataclass
class CampaignProgress:
    campaign: Campaign
    kinds: list[KindProgress]
    annotators: list[AnnotatorProgress] = field(default_factory=list)

    @property
    def slots(self) -> int:
        return sum(k.slots for k in self.kinds)

    @property
    def submitted(self) -> int:
        return sum(k.submitted for k in self.kinds)

    @property
    def in_progress(self) -> int:
        return sum(k.in_progress for k in self.kinds)

    @property
    def percent(self) -> int:
        return round(100 * self.submitted / self.slots) if self.slots else 0

    @property
    def is_complete(self) -> bool:
        return self.slots > 0 and self.submitted >= self.slots


def campaign_progress(campaign: Campaign, *, now: datetime, with_annotators: bool = False) -> CampaignProgress:
    """Submitted and in-progress slots per kind, and optionally per annotator."""
    kinds = []
    for kind in campaign_kinds(campaign):
        items = campaign_items(campaign, kind).count()
        shared = len(shared_item_ids(campaign, kind))
        slots = items * campaign.annotators_per_item + shared * (team_size(campaign) - campaign.annotators_per_item)
        kinds.append(KindProgress(kind, AssignmentKind(kind).label, items, slots))
    by_kind = {k.kind: k for k in kinds}
    rows = (
        Assignment.objects.filter(campaign=campaign)
        .values("kind", "status", "annotator")
        .annotate(n=Count("pk"), live=Count("pk", filter=Q(lease_expires_at__gt=now)))
    )
    per_user: dict[int, Counter] = defaultdict(Counter)
    for row in rows:
        progress = by_kind.get(row["kind"])
        if progress is None:
            continue
        if row["status"] == AssignmentStatus.SUBMITTED:
            progress.submitted += row["n"]
            per_user[row["annotator"]]["submitted"] += row["n"]
        elif row["status"] == AssignmentStatus.LEASED:
            progress.in_progress += row["live"]
            per_user[row["annotator"]]["in_progress"] += row["live"]
        elif row["status"] == AssignmentStatus.SKIPPED:
            per_user[row["annotator"]]["skipped"] += row["n"]
    result = CampaignProgress(campaign, kinds)
    if with_annotators:
        last = dict(
            Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.SUBMITTED)
            .values("annotator")
            .annotate(last=Max("updated_at"))
            .values_list("annotator", "last")
        )
        users = {u.pk: u for u in get_user_model().objects.filter(Q(pk__in=per_user) | Q(campaigns=campaign)).distinct()}
        for user in sorted(users.values(), key=lambda u: u.get_username()):
            counts = per_user.get(user.pk, Counter())
            result.annotators.append(
                AnnotatorProgress(user, counts["submitted"], counts["in_progress"], counts["skipped"], last.get(user.pk))
            )
    return result


def campaigns_for_researcher(*, now: datetime) -> list[CampaignProgress]:
    campaigns = Campaign.objects.select_related("dataset").prefetch_related("annotators").order_by("-is_active", "-created_at")
    return [campaign_progress(c, now=now) for c in campaigns]


@dataclass
class AnnotatorCampaign:
    campaign: Campaign
    progress: CampaignProgress
    mine_submitted: int
    held: Assignment | None
    has_work: bool


def campaigns_for_annotator(*, annotator, now: datetime) -> list[AnnotatorCampaign]:
    """The active campaigns an annotator belongs to, with overall and personal progress."""
    campaigns = Campaign.objects.filter(annotators=annotator, is_active=True).select_related("dataset").order_by("-created_at")
    mine = dict(
        Assignment.objects.filter(annotator=annotator, status=AssignmentStatus.SUBMITTED, campaign__in=campaigns)
        .values("campaign")
        .annotate(n=Count("pk"))
        .values_list("campaign", "n")
    )
    cards = []
    for campaign in campaigns:
        held = held_assignment(campaign=campaign, annotator=annotator)
        cards.append(
            AnnotatorCampaign(
                campaign=campaign,
                progress=campaign_progress(campaign, now=now),
                mine_submitted=mine.get(campaign.pk, 0),
                held=held,
                has_work=held is not None or has_open_items(campaign=campaign, annotator=annotator, now=now),
            )
        )
    return cards


def dataset_splits() -> list[tuple[int, str, str, int]]:
    """(dataset id, dataset name, split, examples) for every split that has examples."""
    rows = (
        Example.objects.values("dataset_id", "dataset__name", "split")
        .annotate(n=Count("pk"))
        .order_by("dataset__name", "split")
    )
    return [(r["dataset_id"], r["dataset__name"], r["split"], r["n"]) for r in rows]


def annotator_choices() -> QuerySet:
    return get_user_model().objects.filter(groups__name=ANNOTATOR, is_active=True).order_by("username").distinct()


def my_assignments(*, annotator, limit: int = 50) -> QuerySet[Assignment]:
    """The annotator's own recent work, newest first (annotators see only their own)."""
    return (
        Assignment.objects.filter(annotator=annotator)
        .exclude(status=AssignmentStatus.EXPIRED)
        .select_related("campaign", "example")
        .order_by("-updated_at")[:limit]
    )
