"""The queue's floor: in input order the next-item lookup starts above the examples that are done.

Also the other thing the queue keeps per process and shares through the cache: the choice of shared items.
"""

import random
import re
import time
import uuid
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation.models import Assignment, AssignmentKind, AssignmentStatus, CampaignOrder, CampaignTask, Response
from annotation.selectors import campaigns as queue
from annotation.services.campaigns import assignment_next, assignment_skip, queue_floors_refresh
import annotation.tasks  # noqa: F401 - registers the task that celery beat sends
from config.celery import app as celery_app
from tests.annotation.annotate_data import make_campaign, make_dataset, make_example

pytestmark = pytest.mark.django_db

FG = AssignmentKind.FINE_GRAINED


def another_process(monkeypatch):
    """This process's memory of floors and shared items forgotten, as in a web process that has served nothing yet."""
    monkeypatch.setattr(queue, "_FLOORS", queue._ProcessMemo(queue.FLOOR_TTL_S))
    monkeypatch.setattr(queue, "_SHARED", queue._ProcessMemo(queue.SHARED_TTL_S))
    monkeypatch.setattr(queue, "_STUCK", queue._ProcessMemo(queue.FLOOR_RETRY_S))
    monkeypatch.setattr(queue, "_ASKED", queue._ProcessMemo(queue.FLOOR_ASK_S))


@pytest.fixture(autouse=True)
def small_steps(monkeypatch):
    """A floor raised every two examples, and no floor left over from another test."""
    monkeypatch.setattr(queue, "FLOOR_STEP", 2)
    another_process(monkeypatch)


@pytest.fixture
def team(make_user):
    return [make_user(name, role="annotator") for name in ("anna", "bob", "carl")]


def floor(campaign, kind=FG):
    return queue.queue_floor(campaign, kind, queue._capacity_sql(campaign, kind)[1])


def submit(item):
    item.status = AssignmentStatus.SUBMITTED
    item.save()


def first_open(campaign, annotator, kind=FG):
    return queue._first_open_item(campaign=campaign, annotator=annotator, kind=kind, now=timezone.now(), lock=False)


def test_the_floor_rises_as_the_campaign_fills_and_the_items_still_come_in_input_order(team):
    anna = team[0]
    campaign = make_campaign(make_dataset(examples=8), [anna])
    served, floors = [], []
    while (item := assignment_next(campaign=campaign, annotator=anna)) is not None:
        served.append(item.example.position)
        floors.append(floor(campaign))
        submit(item)
    assert served == list(range(8))
    # Never above an open item, and it does rise: the lookup no longer walks from the first example.
    assert all(f <= position for f, position in zip(floors, served))
    assert floors == sorted(floors) and floors[-1] >= 4
    assert first_open(campaign, anna) is None and floor(campaign) == 8


def test_a_lookup_from_the_floor_finds_what_a_lookup_from_the_first_example_finds(team):
    """Several annotators, two per item, with skips, run-out leases and submits in a random order."""
    rng = random.Random(7)
    campaign = make_campaign(make_dataset(examples=12), team, task=CampaignTask.BOTH, per_item=2)
    checked = 0
    for _ in range(80):
        annotator = rng.choice(team)
        for kind in (FG, AssignmentKind.COMPARISON):
            from_floor = first_open(campaign, annotator, kind)
            floors = dict(queue._FLOORS.entries)
            queue._FLOORS.entries.clear()
            assert from_floor == first_open(campaign, annotator, kind), (annotator, kind, floors)
            queue._FLOORS.entries = floors
            checked += 1
        item = assignment_next(campaign=campaign, annotator=annotator)
        if item is None:
            continue
        action = rng.random()
        if action < 0.15:
            assignment_skip(assignment=item)
        elif action < 0.25:
            Assignment.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timezone.timedelta(seconds=1))
        else:
            submit(item)
    assert checked == 160
    assert max(floor(campaign, kind) for kind in (FG, AssignmentKind.COMPARISON)) > 0


def test_more_annotators_per_item_reopen_the_items_below_the_floor(team):
    anna, bob, _carl = team
    campaign = make_campaign(make_dataset(examples=6), [anna, bob])
    while (item := assignment_next(campaign=campaign, annotator=anna)) is not None:
        submit(item)
    assert floor(campaign) == 6 and assignment_next(campaign=campaign, annotator=bob) is None

    campaign.annotators_per_item = 2
    campaign.save()
    assert floor(campaign) == 0
    assert assignment_next(campaign=campaign, annotator=bob).example.position == 0


def test_the_floor_stops_at_an_example_that_is_not_an_item_yet_and_serves_it_once_it_is(team):
    anna = team[0]
    dataset = make_dataset(examples=6)
    missing = Response.objects.get(example__dataset=dataset, example__position=2, number=1)
    missing.delete()
    campaign = make_campaign(dataset, [anna])
    served = []
    while (item := assignment_next(campaign=campaign, annotator=anna)) is not None:
        served.append(item.example.position)
        submit(item)
    assert served == [0, 1, 3, 4, 5] and floor(campaign) == 2

    Response.objects.create(example=missing.example, number=1, text=missing.text)
    assert assignment_next(campaign=campaign, annotator=anna).example.position == 2


def test_an_item_reopened_below_the_floor_is_served_once_the_floor_runs_out(team, monkeypatch):
    anna, bob, carl = team
    campaign = make_campaign(make_dataset(examples=6), [anna, bob, carl])
    for annotator in (bob, anna, anna, anna, anna, anna):
        submit(assignment_next(campaign=campaign, annotator=annotator))
    assert assignment_next(campaign=campaign, annotator=anna) is None and floor(campaign) == 6
    bob.delete()  # the only thing that takes a submitted slot back: example 0 needs an annotator again
    assert assignment_next(campaign=campaign, annotator=carl) is None  # the floor still stands

    # Time passes for this process and for the floor it shared (a process that takes it later finds it run out too).
    later, wall_later = time.monotonic() + queue.FLOOR_TTL_S + 1, time.time() + queue.FLOOR_TTL_S + 1
    monkeypatch.setattr(queue, "time", SimpleNamespace(monotonic=lambda: later, time=lambda: wall_later))
    assert floor(campaign) == 0
    assert assignment_next(campaign=campaign, annotator=carl).example.position == 0


def test_only_a_queue_in_input_order_keeps_a_floor(team):
    anna = team[0]
    campaign = make_campaign(make_dataset(examples=6), [anna])
    campaign.order = CampaignOrder.RANDOM
    campaign.save()
    while (item := assignment_next(campaign=campaign, annotator=anna)) is not None:
        submit(item)
    assert not queue.serves_in_input_order(campaign) and queue._FLOORS.entries == {}


def test_a_floor_held_down_by_an_open_item_is_walked_again_only_after_a_pause(team, monkeypatch):
    anna, bob = team[:2]
    campaign = make_campaign(make_dataset(examples=10), [anna, bob])
    held = assignment_next(campaign=campaign, annotator=bob)  # bob keeps the first item open
    assert held.example.position == 0

    def lookup_walks() -> int:
        """Serve anna her next item and submit it; how many floor walks its lookup ran."""
        with CaptureQueriesContext(connection) as captured:
            item = assignment_next(campaign=campaign, annotator=anna)
        submit(item)
        return sum("SELECT COALESCE(" in query["sql"] for query in captured.captured_queries)

    walks = [lookup_walks() for _ in range(6)]
    # Her items are 1 to 6; from the second on her lookups land two and more above the floor: the first of
    # them walks, finds the floor held at bob's item, and the rest do not walk again within FLOOR_RETRY_S.
    assert walks == [0, 1, 0, 0, 0, 0] and floor(campaign) == 0
    submit(held)
    monkeypatch.setattr(queue, "_STUCK", queue._ProcessMemo(0.0))  # the pause is over
    assert lookup_walks() == 1 and floor(campaign) == 7


# --- floors shared between processes, and walked in the background ----------------------------------------


@pytest.fixture
def shared_cache(settings):
    """Django's cache on the machine's Redis, as in production with CACHE_URL set; keys of this test only."""
    location = "redis://127.0.0.1:6379/14"
    settings.CACHE_URL = location
    settings.CACHES = {"default": {
        "BACKEND": "config.cache.ReusingRedisCache", "LOCATION": location, "KEY_PREFIX": f"floors-{uuid.uuid4().hex}",
    }}
    try:
        cache.set("ping", 1)
    except Exception as exc:  # noqa: BLE001 - any client error means there is no Redis to test against
        pytest.skip(f"no Redis at {location}: {exc}")
    return cache


def starts_of_next_lookup(campaign, annotator) -> list[int]:
    """The positions that the annotator's next lookup, and any floor walk it ran, started from."""
    with CaptureQueriesContext(connection) as captured:
        first_open(campaign, annotator)
    return [int(start) for query in captured.captured_queries for start in re.findall(r"e\.position >= (\d+)", query["sql"])]


def test_a_process_without_a_floor_takes_the_one_another_process_shared(team, shared_cache, monkeypatch):
    anna, bob = team[:2]
    campaign = make_campaign(make_dataset(examples=10), [anna, bob])
    for _ in range(6):
        submit(assignment_next(campaign=campaign, annotator=anna))
    raised = floor(campaign)
    assert raised >= 4

    another_process(monkeypatch)
    assert floor(campaign) == raised
    # Bob's lookup, and the walk that raises the floor past anna's items, start from the shared floor.
    starts = starts_of_next_lookup(campaign, bob)
    assert starts and set(starts) == {raised}
    assert assignment_next(campaign=campaign, annotator=bob).example.position == 6


def test_the_background_walk_shares_the_floors_of_the_campaigns_at_work_so_no_lookup_walks_from_the_first_example(
    team, shared_cache, monkeypatch
):
    anna, bob = team[:2]
    at_work = make_campaign(make_dataset(examples=10), [anna, bob], name="At work")
    idle = make_campaign(make_dataset("idle", examples=4), [anna, bob], name="Idle")
    paused = make_campaign(make_dataset("paused", examples=4), [anna, bob], name="Paused")
    for campaign, count in ((at_work, 6), (idle, 4), (paused, 4)):
        for _ in range(count):
            submit(assignment_next(campaign=campaign, annotator=anna))
    Assignment.objects.filter(campaign=idle).update(updated_at=timezone.now() - timezone.timedelta(seconds=queue.FLOOR_TTL_S + 5))
    paused.is_active = False
    paused.save()
    for campaign in (at_work, idle, paused):  # what the lookups shared so far has run out
        cache.delete(queue.floor_cache_key(queue._floor_key(campaign, FG, queue._capacity_sql(campaign, FG)[1])))

    another_process(monkeypatch)  # the worker that celery beat sends the task to
    task = celery_app.tasks[celery_app.conf.beat_schedule["refresh-queue-floors"]["task"]]
    assert task.apply().get() == 1  # only the campaign at work

    another_process(monkeypatch)  # a web process that has served nothing yet
    assert floor(at_work) == 6 and floor(idle) == 0 and floor(paused) == 0
    assert starts_of_next_lookup(at_work, bob) == [6]  # one lookup from the floor, and no walk
    assert assignment_next(campaign=at_work, annotator=bob).example.position == 6


def test_the_beat_walks_the_floors_well_inside_their_lifetime(settings):
    entry = celery_app.conf.beat_schedule["refresh-queue-floors"]
    assert entry["schedule"] == settings.QUEUE_FLOOR_REFRESH_S <= queue.FLOOR_TTL_S / 2
    assert entry["options"]["queue"] == "default" and entry["task"] in celery_app.tasks


def test_a_shared_floor_runs_out_when_the_walk_it_came_from_would_have(team, shared_cache, monkeypatch):
    anna = team[0]
    campaign = make_campaign(make_dataset(examples=6), [anna])
    queue.walk_queue_floors(campaign=campaign)  # nothing done yet: the floor is 0 and is shared as such
    for _ in range(6):
        submit(assignment_next(campaign=campaign, annotator=anna))
    assert queue.walk_queue_floors(campaign=campaign) == {FG: 6}

    another_process(monkeypatch)
    assert floor(campaign) == 6
    another_process(monkeypatch)
    wall_later = time.time() + queue.FLOOR_TTL_S + 1
    monkeypatch.setattr(queue, "time", SimpleNamespace(monotonic=time.monotonic, time=lambda: wall_later))
    assert floor(campaign) == 0


def test_without_a_shared_cache_the_background_walk_does_nothing(team, settings, monkeypatch):
    anna = team[0]
    campaign = make_campaign(make_dataset(examples=4), [anna])
    submit(assignment_next(campaign=campaign, annotator=anna))
    settings.CACHE_URL = ""
    assert queue_floors_refresh() == 0 and queue._FLOORS.entries == {}
    settings.CACHE_URL = "redis://127.0.0.1:6379/14"
    monkeypatch.setattr(queue, "cache", SimpleNamespace(get=lambda key: None, set=lambda *args, **kwargs: None))
    assert queue_floors_refresh() == 1 and floor(campaign) == 1


def shared_campaign(team, examples=10):
    campaign = make_campaign(make_dataset(examples=examples), team, per_item=1)
    campaign.shared_share = 0.5
    campaign.save()
    return campaign


def test_a_process_without_a_choice_of_shared_items_takes_the_one_another_process_made(team, shared_cache, monkeypatch):
    campaign = shared_campaign(team)
    chosen = queue.shared_item_ids(campaign, FG)
    assert len(chosen) == 5

    another_process(monkeypatch)
    with CaptureQueriesContext(connection) as captured:
        assert queue.shared_item_ids(campaign, FG) == chosen
    assert len(captured) == 0  # the split is not read again: the choice comes from the cache
    # The whole team on a shared item, one annotator on the others, in the new process as in the first.
    assert {queue.item_capacity(campaign, example_id=pk, kind=FG) for pk in chosen} == {len(team)}


def test_a_shared_choice_runs_out_when_the_choice_it_came_from_would_have(team, shared_cache, monkeypatch):
    campaign = shared_campaign(team)
    chosen = queue.shared_item_ids(campaign, FG)
    for position in (10, 11):  # the split gains two items (answers joined onto it)
        make_example(campaign.dataset, position)

    another_process(monkeypatch)
    assert queue.shared_item_ids(campaign, FG) == chosen  # the choice taken, within its time
    another_process(monkeypatch)
    wall_later = time.time() + queue.SHARED_TTL_S + 1
    monkeypatch.setattr(queue, "time", SimpleNamespace(monotonic=time.monotonic, time=lambda: wall_later))
    again = queue.shared_item_ids(campaign, FG)
    assert len(again) == 6 and again != chosen  # made again from the twelve items
