"""Reads for annotation campaigns: which items exist, who holds what, progress.

A campaign item is one example of the campaign's dataset split and one kind
of work. Fine-grained items are the examples with a response 1 (the
qa-feedback format keeps fine-grained feedback on `prediction 1`);
comparison items are the examples with responses 1 to 4. Each item has
`annotators_per_item` slots; a slot is live while an assignment holds it
with an unexpired lease or has been submitted.
"""

import hashlib
import json
import time
from contextlib import contextmanager, nullcontext
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet

from annotation.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Campaign,
    CampaignTask,
    Example,
    FeedbackStatus,
    Response,
)
from annotation.qa.vocab import RESPONSES
from annotation.roles import ANNOTATOR
from annotation.selectors.annotate import FINE_GRAINED_RESPONSE_NUMBER
from annotation.selectors.model_rows import first_where, model_columns
from annotation.selectors.queue_order import ORDER_KEYS, queue_order_sql

# Served in this order for the same example: read the passages once, do both.
KIND_ORDER = (AssignmentKind.FINE_GRAINED, AssignmentKind.COMPARISON)


def campaign_kinds(campaign: Campaign) -> list[str]:
    if campaign.task == CampaignTask.BOTH:
        return list(KIND_ORDER)
    return [campaign.task]


def campaign_items(campaign: Campaign, kind: str) -> QuerySet[Example]:
    """The examples that are items of `kind` in this campaign, in file order."""
    examples = Example.objects.filter(dataset_id=campaign.dataset_id, split=campaign.split)
    if kind == AssignmentKind.FINE_GRAINED:
        return examples.filter(
            Exists(Response.objects.filter(example=OuterRef("pk"), number=FINE_GRAINED_RESPONSE_NUMBER))
        ).order_by("position")
    # Every one of the responses (an example holds each number once): one index probe each, where counting them
    # in a grouped subquery per example cost about twice as much (93-109 against 62-64 ms at 20,000 examples).
    return examples.filter(
        *[Exists(Response.objects.filter(example=OuterRef("pk"), number=number)) for number in RESPONSES]
    ).order_by("position")


class _ProcessMemo:
    """Values kept in this process's memory, each for `ttl_s` seconds from when it was first stored."""

    def __init__(self, ttl_s: float, size: int = 4096):
        self.ttl_s, self.size, self.entries = ttl_s, size, {}

    def get(self, key: tuple) -> tuple[Any, float] | None:
        """(value, when it was first stored), or None when there is none or it has run out."""
        entry = self.entries.get(key)
        if entry is None or time.monotonic() - entry[1] > self.ttl_s:
            return None
        return entry

    def put(self, key: tuple, value: Any, started: float | None = None) -> None:
        if len(self.entries) >= self.size:
            self.entries.clear()
        self.entries[key] = (value, time.monotonic() if started is None else started)


def _cache_key(name: str, key: tuple) -> str:
    """A memo's key in the cache: the same in every process (a kind is a plain string there, whichever enum it came as)."""
    return f"{name}:" + hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()


def _share(memo: _ProcessMemo, name: str, key: tuple) -> None:
    """Put this process's value for `key` in the cache, with the wall-clock time it was first stored."""
    entry = memo.get(key)
    if entry is None:
        return
    value, started = entry
    age = time.monotonic() - started
    cache.set(_cache_key(name, key), (value, time.time() - age), timeout=max(1, int(memo.ttl_s - age)))


def _take_shared(memo: _ProcessMemo, name: str, key: tuple) -> Any | None:
    """The value another process shared for `key`, kept here until it runs out there; None when there is none."""
    shared = cache.get(_cache_key(name, key))
    if shared is None:
        return None
    value, started_at = shared
    age = time.time() - started_at
    if not 0 <= age < memo.ttl_s:
        return None
    memo.put(key, value, started=time.monotonic() - age)
    return value


# Choosing the shared items reads every item of the split and hashes each (about 130 ms for both
# kinds at 20,000 items on PostgreSQL), and the queue asks on every lookup; each process keeps a
# campaign's choice this long, and shares it through the cache (Redis when CACHE_URL is set), so a
# process that has none takes another's instead of choosing again. The choice depends on the
# campaign's share and its split's items; a split gains items only when an import joins answers
# onto it, and the choice catches up within this time of when it was made, in every process.
SHARED_TTL_S = 60.0
_SHARED = _ProcessMemo(SHARED_TTL_S)


def shared_item_ids(campaign: Campaign, kind: str) -> frozenset[int]:
    """The items every annotator of the campaign annotates (for agreement): `shared_share` of them, rounded.

    A seeded choice that depends only on the campaign and the example, so it
    is stable for a campaign and the same examples are shared for both kinds.
    """
    if campaign.shared_share <= 0:
        return frozenset()
    key = (campaign.pk, campaign.created_at, campaign.shared_share, campaign.dataset_id, campaign.split, kind)
    if (kept := _SHARED.get(key)) is not None:
        return kept[0]
    if (taken := _take_shared(_SHARED, "shared-items", key)) is not None:
        return taken
    started = time.monotonic()
    ids = list(campaign_items(campaign, kind).values_list("pk", flat=True))
    count = round(campaign.shared_share * len(ids))
    ranked = sorted(ids, key=lambda pk: hashlib.sha256(f"granary-shared:{campaign.pk}:{pk}".encode()).digest())
    shared = frozenset(ranked[:count])
    _SHARED.put(key, shared, started=started)
    _share(_SHARED, "shared-items", key)
    return shared


def team_size(campaign: Campaign) -> int:
    """How many annotate a shared item: everyone on the campaign (never fewer than the overlap)."""
    # Written out: the queue asks on every lookup of a campaign with shared items, and the ORM's count
    # cost more than the statement.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {Campaign.annotators.through._meta.db_table} WHERE campaign_id = %s", [campaign.pk])
        members = cursor.fetchone()[0]
    return max(campaign.annotators_per_item, members)


def item_capacity(campaign: Campaign, *, example_id: int, kind: str) -> int:
    """Slots of one item: the whole team on a shared item, else `annotators_per_item`."""
    if example_id in shared_item_ids(campaign, kind):
        return team_size(campaign)
    return campaign.annotators_per_item


def _item_sql(kind: str) -> tuple[str, list]:
    """SQL that holds when the example row `e` is an item of `kind`, and its parameters."""
    if kind == AssignmentKind.FINE_GRAINED:
        return ("(SELECT COUNT(*) FROM annotation_response r WHERE r.example_id = e.id AND r.number = %s) = 1",
                [FINE_GRAINED_RESPONSE_NUMBER])
    numbers = ", ".join(["%s"] * len(RESPONSES))
    return (f"(SELECT COUNT(*) FROM annotation_response r WHERE r.example_id = e.id AND r.number IN ({numbers})) = %s",
            [*RESPONSES, len(RESPONSES)])


def _capacity_sql(campaign: Campaign, kind: str) -> tuple[str, list]:
    """SQL for the slots of the item on the example row `e` (the whole team on a shared item), and its parameters."""
    shared = shared_item_ids(campaign, kind)
    if not shared:
        return "%s", [campaign.annotators_per_item]
    if connection.vendor == "postgresql":
        among = "e.id = ANY(CAST(%s AS bigint[]))"
    else:
        among = "e.id IN (SELECT value FROM json_each(%s))"
    return f"CASE WHEN {among} THEN %s ELSE %s END", [_ids_param(shared, connection.vendor), team_size(campaign),
                                                       campaign.annotators_per_item]


@lru_cache(maxsize=64)
def _ids_param(ids: frozenset[int], vendor: str) -> str:
    """The ids as one SQL parameter: a PostgreSQL array literal, or a JSON list for SQLite's json_each.

    One parameter, not one each: thousands of placeholders cost PostgreSQL
    about 7 ms to parse and plan per lookup at 2,000 shared items, and SQLite
    refuses more than 32,766. Kept per set (the sets are kept, see _SHARED), so
    neither the text nor its hash is made again on each lookup.
    """
    ordered = sorted(ids)
    if vendor == "postgresql":
        return "{" + ",".join(map(str, ordered)) + "}"
    return json.dumps(ordered)


def _first_open_item(
    *, campaign: Campaign, annotator, kind: str, now: datetime, lock: bool, planned: bool = False
) -> tuple[int, float] | None:
    """(example id, queue key) of the first item of `kind`, in queue order, that still needs annotations and
    that this annotator has neither done (in this campaign or another) nor skipped; None when there is none.

    One SQL statement written out rather than composed with the ORM: it runs
    on every submit, and composing and compiling its subqueries cost about
    5 ms of CPU per kind against 0.2 ms to execute it (issue 9). Its rules are
    the module's: an item's live slots (submitted, or leased with time left)
    must be fewer than its capacity (the whole team on a shared item); any
    row of the annotator's own on the item except an expired lease counts.

    Every condition is a count over one example's rows, never a top-level
    EXISTS: PostgreSQL turns those into joins and, with the statistics of a
    campaign that is filling up, picked plans that read every example
    (15-27 ms); counts stay index probes per example, so in input order the
    query walks the position index and stops at the first open item. It
    starts at the queue's floor (queue_floor below), so the walk does not
    grow with the campaign's progress.
    `lock`: on PostgreSQL the chosen example's row is locked with SKIP
    LOCKED (call inside a transaction). `planned`: the caller already runs it
    inside _planned_for_its_parameters() (one statement fewer per kind after the first).
    """
    key, key_params, order_by = queue_order_sql(campaign, "e")
    responses, responses_params = _item_sql(kind)
    if kind == AssignmentKind.FINE_GRAINED:
        done = (
            "(SELECT COUNT(*) FROM annotation_finegrainedfeedback f INNER JOIN annotation_response r ON f.response_id = r.id"
            " WHERE r.example_id = e.id AND r.number = %s AND f.annotator_id = %s AND f.status = %s) = 0"
        )
        done_params = [FINE_GRAINED_RESPONSE_NUMBER, annotator.pk, FeedbackStatus.SUBMITTED]
    else:
        done = "(SELECT COUNT(*) FROM annotation_comparison c WHERE c.example_id = e.id AND c.annotator_id = %s AND c.status = %s) = 0"
        done_params = [annotator.pk, FeedbackStatus.SUBMITTED]
    live = (
        "(SELECT COUNT(*) FROM annotation_assignment a WHERE a.campaign_id = %s AND a.example_id = e.id AND a.kind = %s"
        " AND (a.status = %s OR (a.status = %s AND a.lease_expires_at > %s)))"
    )
    live_params = [campaign.pk, kind, AssignmentStatus.SUBMITTED, AssignmentStatus.LEASED, connection.ops.adapt_datetimefield_value(now)]
    capacity, capacity_params = _capacity_sql(campaign, kind)
    not_mine = (
        "(SELECT COUNT(*) FROM annotation_assignment m WHERE m.campaign_id = %s AND m.example_id = e.id AND m.kind = %s"
        " AND m.annotator_id = %s AND m.status <> %s) = 0"
    )
    not_mine_params = [campaign.pk, kind, annotator.pk, AssignmentStatus.EXPIRED]
    floor_key = _floor_key(campaign, kind, capacity_params) if serves_in_input_order(campaign) else None
    floor = _floor_at(floor_key) if floor_key is not None else None
    from_floor, floor_params = ("e.position >= %s AND ", [floor]) if floor is not None else ("", [])
    sql = (
        f"SELECT e.id, {key} AS queue_key FROM annotation_example e"
        f" WHERE e.dataset_id = %s AND e.split = %s AND {from_floor}{responses} AND {live} < {capacity} AND {not_mine} AND {done}"
        f" ORDER BY {order_by} LIMIT 1"
    )
    if lock and connection.features.has_select_for_update_skip_locked:
        sql += " FOR UPDATE SKIP LOCKED"
    params = [
        *key_params, campaign.dataset_id, campaign.split, *floor_params, *responses_params, *live_params, *capacity_params,
        *not_mine_params, *done_params,
    ]
    with nullcontext() if planned else _planned_for_its_parameters(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        if floor is not None and (row is None or row[1] - floor >= FLOOR_STEP) and _STUCK.get(floor_key) is None:
            _raise_floor(cursor, floor_key, campaign, kind, floor, capacity, capacity_params)
    return (row[0], float(row[1])) if row else None


# --- the queue's floor ---------------------------------------------------------------------
#
# In input order the next-item lookup walks the examples from the first one, and every example
# whose slots are all submitted costs it four index probes: its time grew with the campaign's
# progress (2 ms per kind after 400 examples, so about 0.25 s per submit near the end of a 50k
# campaign). The floor is a position below which every example is an item of the kind whose
# submitted slots fill its capacity: no lookup can return one of them, so the lookup starts there.
#
# A submitted slot stays submitted, so a floor stays true while what an item's capacity depends
# on stays the same; that (the campaign's overlap, its shared items and team) is part of the
# floor's key, so editing the campaign starts a new floor from 0. An example that is not an item
# yet stops the floor, so one that becomes an item later (a response added) is above it. Only
# deleting an annotator's account (their submitted rows go with it) reopens an item below a
# floor: every floor is dropped and walked again from 0 after FLOOR_TTL_S, so such an item is
# served again within that time. The floors live in each process's memory and are shared through
# the cache (Redis when CACHE_URL is set) with the wall-clock time their walk from 0 started, so
# a floor runs out at the same moment in every process that took it. A process with no floor of
# its own takes the shared one; the periodic task `annotation.refresh_queue_floors` walks the
# floors of the campaigns at work from 0 in the background (every QUEUE_FLOOR_REFRESH_S, under
# FLOOR_TTL_S), so no request walks a deep campaign from its first example (about 1.1 s at
# 24,000 examples in). Without a shared cache each process walks from 0 once per FLOOR_TTL_S.

FLOOR_TTL_S = 600.0
# The floor is raised when the lookup found its item at least this many examples above it.
FLOOR_STEP = 32
_FLOORS = _ProcessMemo(FLOOR_TTL_S)
# A walk that could not raise the floor (an item at the floor is still open: someone holds it, or it waits
# for a slot) is not tried again for this long, so lookups landing far above it do not each walk in vain.
FLOOR_RETRY_S = 1.0
_STUCK = _ProcessMemo(FLOOR_RETRY_S)


def serves_in_input_order(campaign: Campaign) -> bool:
    return campaign.order not in ORDER_KEYS


def _floor_key(campaign: Campaign, kind: str, capacity_params: list) -> tuple:
    return (campaign.pk, campaign.created_at, campaign.dataset_id, campaign.split, kind, tuple(capacity_params))


def queue_floor(campaign: Campaign, kind: str, capacity_params: list) -> int:
    """The position the next-item lookup of `kind` starts from (0 until a lookup has raised it)."""
    return _floor_at(_floor_key(campaign, kind, capacity_params))


# A process without a floor of its own asks the cache for a shared one at most this often.
FLOOR_ASK_S = 30.0
_ASKED = _ProcessMemo(FLOOR_ASK_S)


def floor_cache_key(key: tuple) -> str:
    """The floor's key in the cache."""
    return _cache_key("queue-floor", key)


def _floor_at(key: tuple) -> int:
    entry = _FLOORS.get(key)
    if entry is not None:
        return entry[0]
    if _ASKED.get(key) is None:
        _ASKED.put(key, True)
        shared = _take_shared(_FLOORS, "queue-floor", key)
        if shared is not None:
            return shared
    return 0


def _share_floor(key: tuple) -> None:
    """Put this process's floor for `key` in the cache, with the wall-clock time its walk from 0 started."""
    _share(_FLOORS, "queue-floor", key)


def _walk_up(cursor, campaign: Campaign, kind: str, floor: int, capacity: str, capacity_params: list) -> int:
    """The first position at or above `floor` that is not an item of `kind` with every slot submitted."""
    item, item_params = _item_sql(kind)
    submitted = (
        "(SELECT COUNT(*) FROM annotation_assignment a WHERE a.campaign_id = %s AND a.example_id = e.id AND a.kind = %s"
        " AND a.status = %s)"
    )
    cursor.execute(
        "SELECT COALESCE("
        " (SELECT e.position FROM annotation_example e WHERE e.dataset_id = %s AND e.split = %s AND e.position >= %s"
        f"  AND NOT ({item} AND {submitted} >= {capacity}) ORDER BY e.position LIMIT 1),"
        " (SELECT MAX(e.position) + 1 FROM annotation_example e WHERE e.dataset_id = %s AND e.split = %s), 0)",
        [campaign.dataset_id, campaign.split, floor, *item_params, campaign.pk, kind, AssignmentStatus.SUBMITTED,
         *capacity_params, campaign.dataset_id, campaign.split],
    )
    return cursor.fetchone()[0]


def _raise_floor(cursor, key: tuple, campaign: Campaign, kind: str, floor: int, capacity: str, capacity_params: list) -> None:
    """Walk up from `floor` past the examples that are items of `kind` with every slot submitted.

    The walk reads only what was filled since the floor was last raised.
    """
    raised = _walk_up(cursor, campaign, kind, floor, capacity, capacity_params)
    if raised <= floor:
        _STUCK.put(key, True)
    entry = _FLOORS.get(key)
    if entry is None:
        if floor != 0:
            return  # walked from a floor that has since run out: the next lookup starts again from 0
        _FLOORS.put(key, raised)
    else:
        # The walk started at or above the stored floor; keep its age, so that it still runs out.
        _FLOORS.put(key, max(entry[0], raised), started=entry[1])
    if raised > floor:
        _share_floor(key)


def walk_queue_floors(*, campaign: Campaign) -> dict[str, int]:
    """Walk the campaign's floor of each kind from the first example, keep it and share it (it runs out
    FLOOR_TTL_S after this walk started). {} for a campaign that is not served in input order."""
    floors: dict[str, int] = {}
    if not serves_in_input_order(campaign):
        return floors
    for kind in campaign_kinds(campaign):
        capacity, capacity_params = _capacity_sql(campaign, kind)
        key = _floor_key(campaign, kind, capacity_params)
        started = time.monotonic()
        with _planned_for_its_parameters(), connection.cursor() as cursor:
            floors[kind] = _walk_up(cursor, campaign, kind, 0, capacity, capacity_params)
        _FLOORS.put(key, floors[kind], started=started)
        _share_floor(key)
    return floors


def campaigns_at_work(*, since: datetime) -> list[Campaign]:
    """Active campaigns served in input order with an item leased, renewed or submitted since `since`."""
    touched = Assignment.objects.filter(campaign=OuterRef("pk"), updated_at__gte=since)
    campaigns = Campaign.objects.filter(is_active=True).filter(Exists(touched)).order_by("pk")
    return [campaign for campaign in campaigns if serves_in_input_order(campaign)]


# One statement (its count is pinned in tests/annotation/test_query_counts.py): both settings last until the transaction ends.
PLANNED_FOR_ITS_PARAMETERS = "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), set_config('jit', 'off', true)"


@contextmanager
def _planned_for_its_parameters():
    """On PostgreSQL, the rest of the transaction plans each statement for its own parameters, without JIT.

    Prepared statements (settings.py) otherwise move to a generic plan after
    five runs when PostgreSQL estimates it no dearer; for this lookup it is
    far dearer (it reads every example of a campaign that is filling up:
    bench_load measured PostgreSQL at 33-35 ms of CPU per annotation against
    11-12 ms). Every other statement keeps its generic plan, and skips being
    planned on each run. JIT: the lookup's estimated cost grows with the split
    (every example might be walked) though it reads a few rows; from about
    20,000 examples it passed PostgreSQL's thresholds for compiling and
    optimizing, and each lookup spent about 180 ms in LLVM for 0.3 ms of work.
    Settings made LOCAL end with the transaction, so a pooler in transaction
    mode is safe; outside a transaction the lookup gets its own.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic() if connection.get_autocommit() else nullcontext():
        with connection.cursor() as cursor:
            cursor.execute(PLANNED_FOR_ITS_PARAMETERS)
        yield


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
    # Written out (model_rows.py): asked on every submit, and the queryset's compiling cost more than its run.
    return first_where(
        Assignment, campaign_id=campaign.pk, annotator_id=annotator.pk, status=AssignmentStatus.LEASED, order_by=("created_at", "id")
    )


def live_slots(*, campaign_id: int, example_id: int, kind: str) -> list[tuple]:
    """(id, slot, status, lease end) of the item's rows that hold a slot: submitted, or leased (run out or not).

    Written out (model_rows.py): asked each time an item is leased, and a queryset's compiling cost
    more than its run. Lease ends come as aware datetimes on both databases, as the ORM gives them.
    """
    database = connections[DEFAULT_DB_ALIAS]
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT id, slot, status, lease_expires_at FROM annotation_assignment"
            " WHERE campaign_id = %s AND example_id = %s AND kind = %s AND status IN (%s, %s)",
            [campaign_id, example_id, kind, AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED],
        )
        rows = cursor.fetchall()
    columns = model_columns(Assignment)
    return [(pk, slot, status, columns.convert("lease_expires_at", end, database)) for pk, slot, status, end in rows]


def locked_assignment(*, assignment_id: int) -> Assignment:
    """The assignment's row, locked until the caller's transaction ends (call inside one).

    Every autosave and submit locks its item first; written out (model_rows.py) for the same reason as
    held_assignment. Raises Assignment.DoesNotExist, as `get()` would, when the row is gone.
    """
    locked = first_where(Assignment, lock=True, id=assignment_id)
    if locked is None:
        raise Assignment.DoesNotExist(f"Assignment {assignment_id} does not exist.")
    return locked


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
    with _planned_for_its_parameters():
        for order, kind in enumerate(campaign_kinds(campaign)):
            row = _first_open_item(campaign=campaign, annotator=annotator, kind=kind, now=now, lock=True, planned=True)
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
    with _planned_for_its_parameters():
        return any(
            _first_open_item(campaign=campaign, annotator=annotator, kind=kind, now=now, lock=False, planned=True) is not None
            for kind in campaign_kinds(campaign)
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
