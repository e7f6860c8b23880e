"""The queue's floor: in input order the next-item lookup starts above the examples that are done."""

import random
import time
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation.models import Assignment, AssignmentKind, AssignmentStatus, CampaignOrder, CampaignTask, Response
from annotation.selectors import campaigns as queue
from annotation.services.campaigns import assignment_next, assignment_skip
from tests.annotation.annotate_data import make_campaign, make_dataset

pytestmark = pytest.mark.django_db

FG = AssignmentKind.FINE_GRAINED


@pytest.fixture(autouse=True)
def small_steps(monkeypatch):
    """A floor raised every two examples, and no floor left over from another test."""
    monkeypatch.setattr(queue, "FLOOR_STEP", 2)
    monkeypatch.setattr(queue, "_FLOORS", queue._ProcessMemo(queue.FLOOR_TTL_S))
    monkeypatch.setattr(queue, "_STUCK", queue._ProcessMemo(queue.FLOOR_RETRY_S))


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

    later = time.monotonic() + queue.FLOOR_TTL_S + 1
    monkeypatch.setattr(queue, "time", SimpleNamespace(monotonic=lambda: later))
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
