"""Writes for annotation campaigns: create them, lease items, skip items."""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Campaign, CampaignTask, Dataset, Example
from annotation.selectors.campaigns import (
    FLOOR_TTL_S,
    campaigns_at_work,
    item_capacity,
    live_slots,
    locked_assignment,
    next_assignment_for,
    walk_queue_floors,
)
from annotation.services.model_writes import insert_row, update_columns

FLOORS_TASK = "annotation.refresh_queue_floors"

# Leasing retries when another annotator took the chosen slot between our read and our insert.
_LEASE_ATTEMPTS = 5


def _lease_until(now: datetime) -> datetime:
    return now + timedelta(minutes=settings.ANNOTATION_LEASE_MINUTES)


def campaign_create(
    *,
    name: str,
    dataset: Dataset,
    split: str,
    task: str,
    annotators: Iterable[AbstractBaseUser],
    annotators_per_item: int = 1,
    shared_share: float = 0.0,
    guidelines: str = "",
    created_by: AbstractBaseUser | None = None,
) -> Campaign:
    annotators = list(annotators)
    errors = {}
    if not name.strip():
        errors["name"] = "Give the campaign a name."
    if task not in CampaignTask.values:
        errors["task"] = f"{task!r} is not a task; choose one of {', '.join(CampaignTask.values)}."
    if annotators_per_item < 1:
        errors["annotators_per_item"] = "At least one annotator per item is needed."
    elif annotators and annotators_per_item > len(annotators):
        errors["annotators_per_item"] = (
            f"{annotators_per_item} annotators per item needs at least that many annotators; {len(annotators)} chosen."
        )
    if not 0 <= shared_share <= 1:
        errors["shared_share"] = f"The share annotated by everyone is between 0 and 1 (0% and 100%), not {shared_share}."
    if not annotators:
        errors["annotators"] = "Choose at least one annotator."
    if not Example.objects.filter(dataset=dataset, split=split).exists():
        errors["split"] = f"Dataset {dataset.name} has no examples in split {split!r}."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        campaign = Campaign.objects.create(
            name=name.strip(),
            dataset=dataset,
            split=split,
            task=task,
            annotators_per_item=annotators_per_item,
            shared_share=shared_share,
            guidelines=guidelines,
            created_by=created_by,
        )
        campaign.annotators.set(annotators)
    return campaign


def campaign_update_team_settings(*, campaign: Campaign, annotators_per_item: int, shared_share: float, guidelines: str) -> Campaign:
    """Change the overlap, the share every annotator does and the guidelines of a running campaign.

    Work already submitted stays; new leases follow the new settings. The
    overlap cannot exceed the campaign's annotators.
    """
    errors = {}
    team = campaign.annotators.count()
    if annotators_per_item < 1:
        errors["annotators_per_item"] = "At least one annotator per item is needed."
    elif annotators_per_item > team:
        errors["annotators_per_item"] = f"{annotators_per_item} annotators per item needs at least that many annotators; the campaign has {team}."
    if not 0 <= shared_share <= 1:
        errors["shared_share"] = f"The share annotated by everyone is between 0 and 1 (0% and 100%), not {shared_share}."
    if errors:
        raise ValidationError(errors)
    campaign.annotators_per_item = annotators_per_item
    campaign.shared_share = shared_share
    campaign.guidelines = guidelines
    campaign.save(update_fields=["annotators_per_item", "shared_share", "guidelines"])
    return campaign


def campaign_set_active(*, campaign: Campaign, is_active: bool) -> Campaign:
    campaign.is_active = is_active
    campaign.save(update_fields=["is_active"])
    return campaign


def assignment_next(*, campaign: Campaign, annotator: AbstractBaseUser, now: datetime | None = None) -> Assignment | None:
    """Hand the annotator their next item under a fresh lease, or None when nothing is left for them.

    An item the annotator already holds is resumed. Otherwise the first open
    item gets the lowest free slot; leases that ran out on that item are
    ended first so that their slots can be reused.
    """
    now = now or timezone.now()
    for _attempt in range(_LEASE_ATTEMPTS):
        try:
            with transaction.atomic():
                item = next_assignment_for(campaign=campaign, annotator=annotator, now=now)
                if item is None:
                    return None
                if item.assignment is not None:
                    held = item.assignment
                    held.lease_expires_at = _lease_until(now)
                    update_columns(held, ["lease_expires_at", "updated_at"])
                    return held
                taken, ran_out = set(), []
                for pk, slot, status, lease_expires_at in live_slots(campaign_id=campaign.pk, example_id=item.example_id, kind=item.kind):
                    if status == AssignmentStatus.LEASED and lease_expires_at is not None and lease_expires_at <= now:
                        ran_out.append(pk)
                    else:
                        taken.add(slot)
                if ran_out:
                    # Leases that ran out on this item end here, so that their slots can be reused.
                    Assignment.objects.filter(pk__in=ran_out).update(status=AssignmentStatus.EXPIRED, updated_at=now)
                capacity = item_capacity(campaign, example_id=item.example_id, kind=item.kind)
                free = [slot for slot in range(capacity) if slot not in taken]
                if not free:
                    continue
                return insert_row(
                    Assignment(
                        campaign=campaign,
                        example_id=item.example_id,
                        kind=item.kind,
                        slot=free[0],
                        annotator=annotator,
                        status=AssignmentStatus.LEASED,
                        lease_expires_at=_lease_until(now),
                    )
                )
        except IntegrityError:
            # Someone else took that slot first; look again.
            continue
    return None


def _renewal_slack() -> timedelta:
    """How much of a fresh lease may have run before opening the item renews it: a tenth, at most a minute."""
    return min(timedelta(minutes=1), timedelta(minutes=settings.ANNOTATION_LEASE_MINUTES) / 10)


def assignment_open(*, assignment: Assignment, now: datetime | None = None) -> Assignment:
    """Renew the lease of an item the annotator is looking at (no-op once submitted).

    A lease granted or renewed moments ago is left as it is: the page that opens
    straight after a submit (whose lookup has just leased the item) writes nothing.
    """
    now = now or timezone.now()
    fresh = assignment.lease_expires_at is not None and assignment.lease_expires_at >= _lease_until(now) - _renewal_slack()
    if assignment.status == AssignmentStatus.LEASED and not fresh:
        assignment.lease_expires_at = _lease_until(now)
        update_columns(assignment, ["lease_expires_at", "updated_at"])
    return assignment


def assignment_skip(*, assignment: Assignment) -> Assignment:
    """Give the item back so that someone else can take the slot; the annotator is not offered it again."""
    with transaction.atomic():
        locked = locked_assignment(assignment_id=assignment.pk)
        if locked.status == AssignmentStatus.LEASED:
            locked.status = AssignmentStatus.SKIPPED
            locked.lease_expires_at = None
            locked.draft_version += 1
            locked.save(update_fields=["status", "lease_expires_at", "draft_version", "updated_at"])
    return locked


# One report covers at most this much time: a page left open in a background tab adds nothing after that.
MAX_ACTIVE_SECONDS_PER_REPORT = 120


def assignment_add_active_time(*, assignment: Assignment, seconds: int) -> Assignment:
    """Add the seconds the item's page was in use (reported by the page) to the annotator's time on it."""
    seconds = max(0, min(int(seconds), MAX_ACTIVE_SECONDS_PER_REPORT))
    if seconds and assignment.status in (AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED):
        Assignment.objects.filter(pk=assignment.pk).update(active_seconds=F("active_seconds") + seconds)
        assignment.refresh_from_db(fields=["active_seconds"])
    return assignment


def queue_floors_refresh(*, now: datetime | None = None) -> int:
    """Walk from the first example the queue floors of the campaigns whose items were leased or submitted in the
    floors' lifetime, and share them through the cache, so that web processes start their lookups there instead
    of walking from 0 (see the queue's floor in annotation/selectors/campaigns.py). How many campaigns were walked.

    Nothing to do without a shared cache (CACHE_URL): a floor kept in this process's memory helps no web process.
    """
    if not settings.CACHE_URL:
        return 0
    now = now or timezone.now()
    campaigns = campaigns_at_work(since=now - timedelta(seconds=FLOOR_TTL_S))
    for campaign in campaigns:
        walk_queue_floors(campaign=campaign)
    return len(campaigns)
