"""Campaigns, queues and leases: who gets which item, and what researchers see."""

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.template import Context, Template
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from annotation.models import Assignment, AssignmentKind, AssignmentStatus, Campaign, CampaignTask, Response
from annotation.selectors.campaigns import campaign_progress, campaigns_for_annotator, held_assignment
from annotation.services.campaigns import assignment_next, assignment_open, assignment_skip, campaign_create
from annotation.qa import drafts
from annotation.services.feedback import LeaseLost, assignment_draft_save, comparison_submit, fine_grained_feedback_submit
from tests.annotation.annotate_data import make_campaign, make_dataset


@pytest.fixture
def team(make_user):
    return [make_user(name, role="annotator") for name in ("anna", "bob", "carl")]


def positions(assignments):
    return [(a.example.position, a.kind, a.slot) for a in assignments]


def test_it_never_gives_two_annotators_the_same_slot(team):
    anna, bob, carl = team
    campaign = make_campaign(make_dataset(examples=2), team)
    first = assignment_next(campaign=campaign, annotator=anna)
    second = assignment_next(campaign=campaign, annotator=bob)
    assert positions([first, second]) == [(0, "fine_grained", 0), (1, "fine_grained", 0)]
    assert assignment_next(campaign=campaign, annotator=carl) is None


def test_it_fills_every_slot_of_an_item_with_different_annotators(team):
    anna, bob, carl = team
    campaign = make_campaign(make_dataset(examples=2), team, per_item=2)
    leased = [assignment_next(campaign=campaign, annotator=user) for user in (anna, bob, carl)]
    assert positions(leased) == [(0, "fine_grained", 0), (0, "fine_grained", 1), (1, "fine_grained", 0)]


def test_it_resumes_the_item_an_annotator_already_holds(team):
    anna = team[0]
    campaign = make_campaign(make_dataset(examples=2), team)
    first = assignment_next(campaign=campaign, annotator=anna)
    assert assignment_next(campaign=campaign, annotator=anna).pk == first.pk
    assert Assignment.objects.count() == 1


def test_the_held_item_is_the_annotators_oldest_lease_in_that_campaign_as_the_orm_reads_it(team):
    anna, bob, _carl = team
    dataset = make_dataset(examples=3)
    campaign, other = make_campaign(dataset, team), make_campaign(dataset, team)
    assert held_assignment(campaign=campaign, annotator=anna) is None
    assignment_next(campaign=other, annotator=anna)  # another campaign's lease
    first = assignment_next(campaign=campaign, annotator=anna)
    assignment_next(campaign=campaign, annotator=bob)  # another annotator's lease
    # A second lease of anna's, newer (created later); her oldest is the one she is working on.
    newer = Assignment.objects.create(campaign=campaign, example=first.example, kind=AssignmentKind.COMPARISON, annotator=anna,
                                      lease_expires_at=first.lease_expires_at)
    Assignment.objects.filter(pk=newer.pk).update(created_at=first.created_at + timedelta(seconds=1))
    held = held_assignment(campaign=campaign, annotator=anna)
    orm = Assignment.objects.get(pk=first.pk)
    assert held.pk == first.pk
    assert {f.attname: getattr(held, f.attname) for f in Assignment._meta.concrete_fields} == {
        f.attname: getattr(orm, f.attname) for f in Assignment._meta.concrete_fields
    }
    Assignment.objects.filter(pk=first.pk).update(status=AssignmentStatus.SUBMITTED)
    assert held_assignment(campaign=campaign, annotator=anna).pk == newer.pk


def test_it_reassigns_a_slot_whose_lease_expired(team, settings):
    anna, bob, _carl = team
    campaign = make_campaign(make_dataset(examples=1), team)
    held = assignment_next(campaign=campaign, annotator=anna)
    assert assignment_next(campaign=campaign, annotator=bob) is None
    later = timezone.now() + timedelta(minutes=settings.ANNOTATION_LEASE_MINUTES + 1)
    taken = assignment_next(campaign=campaign, annotator=bob, now=later)
    assert (taken.example_id, taken.slot, taken.annotator) == (held.example_id, held.slot, bob)
    held.refresh_from_db()
    assert held.status == AssignmentStatus.EXPIRED
    with pytest.raises(LeaseLost, match="given to another annotator"):
        assignment_draft_save(assignment=held, draft={}, base_draft_version=held.draft_version)


def test_a_draft_from_a_page_read_before_its_lease_was_lost_is_refused_and_stores_nothing(team, settings):
    anna, bob, _carl = team
    campaign = make_campaign(make_dataset(examples=1), team)
    held = assignment_next(campaign=campaign, annotator=anna)  # the page's copy still says "leased"
    later = timezone.now() + timedelta(minutes=settings.ANNOTATION_LEASE_MINUTES + 1)
    assignment_next(campaign=campaign, annotator=bob, now=later)  # Bob takes the slot: Anna's row expires
    assert held.status == AssignmentStatus.LEASED
    with pytest.raises(LeaseLost, match="given to another annotator"):
        assignment_draft_save(assignment=held, draft={"errors": []}, base_draft_version=held.draft_version)
    stored = Assignment.objects.get(pk=held.pk)
    assert (stored.status, stored.draft, stored.draft_version) == (AssignmentStatus.EXPIRED, {}, held.draft_version)


def test_it_lets_an_annotator_resume_a_run_out_lease_nobody_took(team, settings):
    anna = team[0]
    campaign = make_campaign(make_dataset(examples=1), team)
    held = assignment_next(campaign=campaign, annotator=anna)
    later = timezone.now() + timedelta(minutes=settings.ANNOTATION_LEASE_MINUTES + 1)
    resumed = assignment_next(campaign=campaign, annotator=anna, now=later)
    assert resumed.pk == held.pk
    assert resumed.lease_expires_at > later


def test_it_moves_on_after_a_skip_and_gives_the_item_to_someone_else(team):
    anna, bob, _carl = team
    campaign = make_campaign(make_dataset(examples=2), team)
    skipped = assignment_next(campaign=campaign, annotator=anna)
    assignment_skip(assignment=skipped)
    assert assignment_next(campaign=campaign, annotator=anna).example.position == 1
    assert assignment_next(campaign=campaign, annotator=bob).example_id == skipped.example_id


def test_it_never_serves_an_item_the_annotator_already_did(team):
    anna = team[0]
    dataset = make_dataset(examples=1)
    done_elsewhere = make_campaign(dataset, [anna], task=CampaignTask.COMPARISON, name="Earlier")
    item = assignment_next(campaign=done_elsewhere, annotator=anna)
    comparison_submit(example=item.example, annotator=anna, preference=[1] * 6, submit_token="x", base_version=0, assignment=item)
    assert assignment_next(campaign=done_elsewhere, annotator=anna) is None
    again = make_campaign(dataset, [anna], task=CampaignTask.COMPARISON, name="Again")
    assert assignment_next(campaign=again, annotator=anna) is None


def test_it_never_serves_fine_grained_work_the_annotator_submitted_in_another_campaign_and_says_there_is_none(team):
    anna, bob = team[0], team[1]
    dataset = make_dataset(examples=2)
    earlier = make_campaign(dataset, [anna], task=CampaignTask.FINE_GRAINED, name="Earlier")
    item = assignment_next(campaign=earlier, annotator=anna)
    fine_grained_feedback_submit(
        response=item.example.responses.get(number=1), annotator=anna, feedback=drafts.empty_fine_grained("x"),
        submit_token="t", base_version=0, assignment=item,
    )
    again = make_campaign(dataset, [anna, bob], task=CampaignTask.FINE_GRAINED, name="Again")
    assert assignment_next(campaign=again, annotator=anna).example.position == 1
    assert assignment_next(campaign=again, annotator=bob).example.position == 0
    Assignment.objects.filter(annotator=anna, campaign=again).update(status=AssignmentStatus.SUBMITTED)
    cards = {card.campaign.name: card for card in campaigns_for_annotator(annotator=anna, now=timezone.now())}
    assert not cards["Again"].has_work and cards["Again"].held is None
    assert [card.has_work for card in campaigns_for_annotator(annotator=bob, now=timezone.now())] == [True]


def test_it_serves_both_tasks_of_an_example_before_the_next_example(team):
    anna = team[0]
    campaign = make_campaign(make_dataset(examples=2), [anna], task=CampaignTask.BOTH)
    order = []
    while (item := assignment_next(campaign=campaign, annotator=anna)) is not None:
        order.append((item.example.position, item.kind))
        item.status = AssignmentStatus.SUBMITTED
        item.save()
    assert order == [(0, "fine_grained"), (0, "comparison"), (1, "fine_grained"), (1, "comparison")]


def test_it_only_compares_examples_with_four_responses(team):
    anna = team[0]
    dataset = make_dataset(examples=2)
    Response.objects.filter(example__position=0, number=4).delete()
    campaign = make_campaign(dataset, [anna], task=CampaignTask.COMPARISON)
    assert assignment_next(campaign=campaign, annotator=anna).example.position == 1
    assert campaign_progress(campaign, now=timezone.now()).kinds[0].items == 1


def test_it_serves_nothing_from_a_closed_campaign(team):
    campaign = make_campaign(make_dataset(examples=1), team)
    campaign.is_active = False
    campaign.save()
    assert assignment_next(campaign=campaign, annotator=team[0]) is None


def test_it_counts_progress_per_kind_and_per_annotator(team):
    anna, bob, carl = team
    campaign = make_campaign(make_dataset(examples=2), [anna, bob, carl], task=CampaignTask.BOTH, per_item=2)
    done = assignment_next(campaign=campaign, annotator=anna)
    done.status = AssignmentStatus.SUBMITTED
    done.save()
    assignment_next(campaign=campaign, annotator=anna)
    assignment_skip(assignment=assignment_next(campaign=campaign, annotator=bob))
    progress = campaign_progress(campaign, now=timezone.now(), with_annotators=True)
    assert [(k.kind, k.items, k.slots, k.submitted, k.in_progress) for k in progress.kinds] == [
        ("fine_grained", 2, 4, 1, 0),
        ("comparison", 2, 4, 0, 1),
    ]
    assert (progress.submitted, progress.slots, progress.percent) == (1, 8, 12)
    by_name = {row.user.username: (row.submitted, row.in_progress, row.skipped) for row in progress.annotators}
    assert by_name == {"anna": (1, 1, 0), "bob": (0, 0, 1), "carl": (0, 0, 0)}


def test_it_validates_a_new_campaign(team, researcher):
    dataset = make_dataset(examples=1)
    with pytest.raises(ValidationError) as refused:
        campaign_create(name=" ", dataset=dataset, split="test", task="everything", annotators=[], annotators_per_item=1)
    assert set(refused.value.message_dict) == {"name", "split", "task", "annotators"}
    with pytest.raises(ValidationError) as refused:
        campaign_create(name="x", dataset=dataset, split="dev", task="both", annotators=team[:1], annotators_per_item=2)
    assert "needs at least that many annotators" in refused.value.message_dict["annotators_per_item"][0]


def test_it_lets_a_researcher_create_a_campaign_from_the_form(researcher_client, team):
    dataset = make_dataset(examples=2)
    response = researcher_client.post(
        reverse("annotation:campaign_create"),
        {
            "name": "Dev round",
            "dataset_split": f"{dataset.pk}:dev",
            "task": "comparison",
            "annotators_per_item": 2,
            "annotators": [team[0].pk, team[1].pk],
        },
    )
    campaign = Campaign.objects.get()
    assert response.url == reverse("annotation:campaign_detail", args=[campaign.pk])
    assert (campaign.name, campaign.split, campaign.task, campaign.annotators_per_item) == ("Dev round", "dev", "comparison", 2)
    assert set(campaign.annotators.values_list("username", flat=True)) == {"anna", "bob"}


def test_it_shows_form_errors_for_a_bad_campaign(researcher_client, team):
    make_dataset(examples=1)
    response = researcher_client.post(reverse("annotation:campaign_create"), {"name": "", "task": "both", "annotators_per_item": 0})
    assert response.status_code == 422
    html = response.content.decode()
    assert "This field is required." in html and "greater than or equal to 1" in html


def test_it_shows_researchers_progress_per_annotator(researcher_client, team):
    anna = team[0]
    campaign = make_campaign(make_dataset(examples=2), team)
    item = assignment_next(campaign=campaign, annotator=anna)
    item.status = AssignmentStatus.SUBMITTED
    item.save()
    html = researcher_client.get(reverse("annotation:campaign_detail", args=[campaign.pk])).content.decode()
    assert '<td>anna</td><td data-label="Submitted">1</td><td data-label="In progress">0</td><td data-label="Skipped">0</td>' in html
    assert "1 / 2" in html
    partial = researcher_client.get(reverse("annotation:campaign_detail", args=[campaign.pk]), HTTP_HX_REQUEST="true")
    assert partial.content.decode().lstrip().startswith('<div id="campaign-progress"')
    listing = researcher_client.get(reverse("annotation:campaign_list")).content.decode()
    assert campaign.name in listing


def test_it_keeps_campaign_pages_from_annotators(annotator_client):
    campaign = make_campaign(make_dataset(examples=1), [])
    assert annotator_client.get(reverse("annotation:campaign_list")).status_code == 403
    assert annotator_client.get(reverse("annotation:campaign_create")).status_code == 403
    assert annotator_client.get(reverse("annotation:campaign_detail", args=[campaign.pk])).status_code == 403


def test_it_starts_work_only_for_the_campaigns_annotators(annotator_client, annotator, make_user):
    dataset = make_dataset(examples=1)
    mine = make_campaign(dataset, [annotator], name="Mine")
    other = make_campaign(dataset, [make_user("otto", role="annotator")], name="Theirs")
    response = annotator_client.post(reverse("annotation:campaign_start", args=[mine.pk]))
    assert response.url == reverse("annotation:annotate", args=[Assignment.objects.get().pk])
    assert annotator_client.post(reverse("annotation:campaign_start", args=[other.pk])).status_code == 403


def test_it_shows_annotators_their_campaigns_with_start_buttons(annotator):
    dataset = make_dataset(examples=2)
    campaign = make_campaign(dataset, [annotator], name="Round 7")
    request = RequestFactory().get("/")
    request.user = annotator
    html = Template('{% include "annotation/_home_cards.html" %}').render(Context({"request": request, "csrf_token": "t"}))
    assert "Round 7" in html and "0 / 2" in html
    assert reverse("annotation:campaign_start", args=[campaign.pk]) in html and ">Start<" in html
    [card] = campaigns_for_annotator(annotator=annotator, now=timezone.now())
    assert card.has_work and card.held is None


def test_it_shows_researchers_a_link_to_the_campaigns(researcher):
    request = RequestFactory().get("/")
    request.user = researcher
    html = Template('{% include "annotation/_home_cards.html" %}').render(Context({"request": request}))
    assert reverse("annotation:campaign_list") in html


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks with SKIP LOCKED need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_it_hands_concurrent_annotators_different_items_on_postgresql(make_user):
    users = [make_user(f"worker{i}", role="annotator") for i in range(6)]
    campaign = make_campaign(make_dataset(examples=6), users)
    barrier = threading.Barrier(len(users))
    results = {}

    def lease(user):
        try:
            barrier.wait()
            item = assignment_next(campaign=campaign, annotator=user)
            results[user.pk] = (item.example_id, item.kind, item.slot)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=lease, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == len(users)
    assert len(set(results.values())) == len(users)
    assert Assignment.objects.filter(status=AssignmentStatus.LEASED, kind=AssignmentKind.FINE_GRAINED).count() == len(users)


def test_opening_an_item_renews_its_lease_unless_it_was_granted_moments_ago(team, settings):
    anna = team[0]
    campaign = make_campaign(make_dataset(examples=1), team)
    held = assignment_next(campaign=campaign, annotator=anna)
    granted = held.lease_expires_at
    # Opened straight after it was leased (the page a submit leads to): nothing is written.
    opened = assignment_open(assignment=held, now=timezone.now() + timedelta(seconds=5))
    held.refresh_from_db()
    assert opened.lease_expires_at == held.lease_expires_at == granted
    # Opened later: the lease runs a whole lease from then.
    later = timezone.now() + timedelta(minutes=5)
    assignment_open(assignment=held, now=later)
    held.refresh_from_db()
    assert held.lease_expires_at == later + timedelta(minutes=settings.ANNOTATION_LEASE_MINUTES)
    # Short leases are renewed once a tenth of them has run.
    settings.ANNOTATION_LEASE_MINUTES = 2
    start = timezone.now()
    Assignment.objects.filter(pk=held.pk).update(lease_expires_at=start + timedelta(minutes=2))
    held.refresh_from_db()
    assignment_open(assignment=held, now=start + timedelta(seconds=5))
    held.refresh_from_db()
    assert held.lease_expires_at == start + timedelta(minutes=2)
    assignment_open(assignment=held, now=start + timedelta(seconds=20))
    held.refresh_from_db()
    assert held.lease_expires_at == start + timedelta(seconds=20, minutes=2)
