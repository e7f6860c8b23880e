"""Review and adjudication: gold versions, send-back, flags, who may see what, and the team settings of campaigns."""

import io
import json
import time
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from annotation.guidelines import guidelines_html
from annotation.models import Adjudication, Assignment, AssignmentStatus, CampaignTask, ItemNote
from annotation.qa.errors import Conflict
from annotation.qa.vocab import ERROR_LABELS, IRRELEVANT, UNVERIFIABLE
from annotation.selectors.campaigns import campaign_progress, shared_item_ids
from annotation.selectors.reviews import review_queue
from annotation.services.campaigns import assignment_next
from annotation.services.feedback import fine_grained_feedback_submit
from annotation.services.reviews import adjudication_accept, adjudication_save
from tests.annotation.annotate_data import make_campaign, make_dataset
from tests.annotation.review_data import ANNA, BOB, BORN, REPEATED, TEXT, disagreeing_item, submit_comparison, submit_fine_grained


@pytest.fixture
def web():
    """The annotator's browser: its own session, apart from researcher_client's."""
    return Client()


@pytest.fixture
def pair(make_user):
    return make_user("anna", role="annotator"), make_user("bob", role="annotator")


def url(name, campaign, kind="fine_grained", number=1):
    return reverse(f"annotation:{name}", args=[campaign.pk, kind, number])


def test_accepting_an_annotators_version_stores_it_as_gold(pair, researcher):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    example = campaign.dataset.examples.get()
    gold = adjudication_accept(example=example, kind="fine_grained", annotator=bob, reviewer=researcher, base_version=0, campaign=campaign)
    gold.refresh_from_db()
    assert gold.errors == BOB["errors"]
    assert gold.missing_info == BOB["missing-info"]
    assert gold.corrected_prediction == BOB["corrected-prediction"]
    assert (gold.accepted_from, gold.adjudicated_by, gold.version, gold.campaign) == (bob, researcher, 1, campaign)
    assert gold.adjudicated_at is not None
    # The annotators' own work is untouched.
    assert [e.start for e in example.responses.get(number=1).feedback.get(annotator=anna).errors.all()] == [e["start"] for e in ANNA["errors"]]


def test_the_review_page_builds_a_gold_version_from_parts_of_each_annotator(pair, researcher_client, researcher):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    corrected = "Bloom is the second studio album by Troye Sivan, released on 31 August 2018."
    response = researcher_client.post(url("review_save", campaign), {
        "version": 0, "span": [f"{anna.pk}:0", f"{bob.pk}:1"], f"type-{bob.pk}:1": IRRELEVANT,
        "missing": [f"{anna.pk}:0"], "corrected-prediction": corrected,
    })
    assert response.status_code == 302
    gold = Adjudication.objects.get()
    assert gold.errors == [ANNA["errors"][0], {**BOB["errors"][1], "error type": IRRELEVANT, "explanation": ""}]
    assert gold.missing_info == ANNA["missing-info"]
    assert gold.corrected_prediction == corrected
    assert (gold.adjudicated_by, gold.accepted_from, gold.version) == (researcher, None, 1)
    page = researcher_client.get(url("review_item", campaign)).content.decode()
    assert "Gold v1" in page
    # Coming back, the page shows the gold's parts as taken, bob's span with the type the gold gave it.
    assert f'value="{anna.pk}:0" checked' in page and f'value="{bob.pk}:1" checked' in page
    assert f'value="{anna.pk}:1" checked' not in page
    retyped = page.split(f'name="type-{bob.pk}:1"')[1].split("</select>")[0]
    assert f'<option value="{IRRELEVANT}" selected>' in retyped


def test_a_gold_span_can_be_moved_or_drawn_and_comes_back_as_the_reviewers_own(pair, researcher_client):
    from tests.annotation.annotate_data import offsets_of

    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    moved = f"{anna.pk}:0"  # anna's repeated sentence, with her explanation
    repeated = offsets_of(TEXT, REPEATED, 2)
    narrowed = offsets_of(TEXT, "31 August 2018.", 2)
    drawn = offsets_of(TEXT, "the second studio album")
    response = researcher_client.post(url("review_save", campaign), {
        "version": 0, "span": [moved, "own:0"],
        f"start-{moved}": narrowed[0], f"end-{moved}": narrowed[1],
        "start-own:0": drawn[0], "end-own:0": drawn[1], "type-own:0": IRRELEVANT,
        "corrected-prediction": TEXT,
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    gold = Adjudication.objects.get()
    assert gold.errors == [
        {"error type": IRRELEVANT, "explanation": "", "start": drawn[0], "end": drawn[1]},
        {**ANNA["errors"][0], "start": narrowed[0], "end": narrowed[1]},  # her type and explanation kept
    ]

    # Neither gold span is an annotator's as it stands: the page shows both as the reviewer's own, taken.
    page = researcher_client.get(url("review_item", campaign)).content.decode()
    assert ANNA["errors"][0]["explanation"] and f'value="{moved}" checked' not in page
    assert 'value="own:0" checked' in page and 'value="own:1" checked' in page and "Yours" in page
    assert f'name="start-own:1" value="{narrowed[0]}"' in page
    assert f'name="start-{moved}" value="{repeated[0]}"' in page and f'name="end-{moved}" value="{repeated[1]}"' in page
    assert '<span class="rv-aw" data-start="0" data-end="5">Bloom</span> ' in page  # the words to draw on

    # Saved again as it stands, the gold version is the same (explanations included).
    again = researcher_client.post(url("review_save", campaign), {
        "version": 1, "span": ["own:0", "own:1"],
        "start-own:0": drawn[0], "end-own:0": drawn[1], "type-own:0": IRRELEVANT,
        "start-own:1": narrowed[0], "end-own:1": narrowed[1], "type-own:1": ANNA["errors"][0]["error type"],
        "explanation-own:1": ANNA["errors"][0]["explanation"], "corrected-prediction": TEXT,
    })
    assert again.status_code == 302
    regold = Adjudication.objects.get()
    assert (regold.version, regold.errors) == (2, gold.errors)


@pytest.mark.parametrize(
    ("shift", "status", "message"),
    [(1, 422, "is not at the start of a word"), ("x", 400, "the start of span")],
)
def test_moved_bounds_are_checked_and_a_refused_page_keeps_them(pair, researcher_client, shift, status, message):
    from tests.annotation.annotate_data import offsets_of

    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    key = f"{bob.pk}:1"
    start, end = offsets_of(TEXT, BORN)
    bad_start = start + shift if isinstance(shift, int) else shift
    response = researcher_client.post(url("review_save", campaign), {
        "version": 0, "span": [key], f"start-{key}": bad_start, f"end-{key}": end, "corrected-prediction": TEXT,
    })
    assert response.status_code == status
    assert message in response.content.decode()
    if status == 422:  # the page comes back with the bounds as they were sent, to fix
        assert f'name="start-{key}" value="{bad_start}"' in response.content.decode()
    assert not Adjudication.objects.exists()


def test_a_gold_version_with_overlapping_spans_is_refused_and_nothing_is_stored(pair, researcher_client):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    response = researcher_client.post(url("review_save", campaign), {
        "version": 0, "span": [f"{anna.pk}:1", f"{bob.pk}:0"], "corrected-prediction": TEXT,
    })
    assert response.status_code == 422
    assert "overlaps" in response.content.decode()
    assert not Adjudication.objects.exists()


def test_a_gold_span_off_word_boundaries_is_refused_by_the_service(pair, researcher):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    example = campaign.dataset.examples.get()
    bad = {"errors": [{"error type": UNVERIFIABLE, "explanation": "", "start": 1, "end": 5}], "missing-info": [], "corrected-prediction": ""}
    with pytest.raises(Exception, match="not saved") as caught:
        adjudication_save(example=example, kind="fine_grained", reviewer=researcher, base_version=0, feedback=bad)
    assert any("start of a word" in message for _field, message in caught.value.problems)
    assert not Adjudication.objects.exists()


def test_a_gold_version_saved_meanwhile_makes_an_older_page_stale(pair, researcher):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    example = campaign.dataset.examples.get()
    adjudication_accept(example=example, kind="fine_grained", annotator=anna, reviewer=researcher, base_version=0)
    with pytest.raises(Conflict, match="another reviewer"):
        adjudication_accept(example=example, kind="fine_grained", annotator=bob, reviewer=researcher, base_version=0)
    assert Adjudication.objects.get().accepted_from == anna


def test_comparison_gold_versions_from_the_page_and_by_accepting(pair, researcher_client):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob, task=CampaignTask.COMPARISON)
    page = researcher_client.get(url("review_item", campaign, "comparison")).content.decode()
    assert page.count("differ</span>") == 2  # pairs 1 vs 3 and 2 vs 4
    answers = {f"pref-{i}": v for i, v in enumerate([1, 2, 1, 2, 0, 1])}
    assert researcher_client.post(url("review_save", campaign, "comparison"), {"version": 0, **answers}).status_code == 302
    assert Adjudication.objects.get().preference == [1, 2, 1, 2, 0, 1]
    researcher_client.post(url("review_accept", campaign, "comparison"), {"version": 1, "annotator": anna.pk})
    gold = Adjudication.objects.get()
    assert (gold.preference, gold.accepted_from, gold.version) == ([1, 1, 1, 2, 0, 1], anna, 2)


def test_a_sent_back_item_shows_in_the_annotators_work_with_the_comment_until_submitted_again(pair, researcher_client, web):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    response = researcher_client.post(url("review_send_back", campaign), {"annotator": bob.pk, "comment": "Sales are in no passage: recheck span 1."})
    assert response.status_code == 302
    note = ItemNote.objects.get()
    assert (note.kind, note.annotator, note.resolved_at) == (ItemNote.Kind.SEND_BACK, bob, None)
    web.force_login(bob)
    page = web.get(reverse("annotation:my_work")).content.decode()
    assert "Sent back to you" in page and "Sales are in no passage: recheck span 1." in page
    held = Assignment.objects.get(annotator=bob)
    assert reverse("annotation:annotate", args=[held.pk]) in page
    web.force_login(anna)
    assert "Sales are in no passage" not in web.get(reverse("annotation:my_work")).content.decode()
    # bob opens the item again and submits a change: the send-back is answered.
    web.force_login(bob)
    page = web.get(reverse("annotation:annotate", args=[held.pk]))
    assert page.status_code == 200
    version = page.context["version"]
    fine_grained_feedback_submit(response=held.example.responses.get(number=1), annotator=bob, feedback={**BOB, "errors": BOB["errors"][1:]},
                                 submit_token="resubmit-token-1", base_version=version, assignment=held, base_draft_version=held.draft_version)
    note.refresh_from_db()
    assert note.resolved_at is not None and note.resolved_by == bob
    assert "Sent back to you" not in web.get(reverse("annotation:my_work")).content.decode()


def test_a_send_back_needs_a_comment_and_submitted_work(pair, researcher_client, make_user):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    assert researcher_client.post(url("review_send_back", campaign), {"annotator": bob.pk, "comment": "  "}).status_code == 422
    carl = make_user("carl", role="annotator")
    refused = researcher_client.post(url("review_send_back", campaign), {"annotator": carl.pk, "comment": "look again"})
    assert refused.status_code == 422 and "carl has no submitted work" in refused.content.decode()
    assert not ItemNote.objects.exists()


def test_an_annotator_flags_an_item_with_a_comment_and_a_reviewer_resolves_it(pair, web, researcher_client, researcher):
    anna, bob = pair
    campaign = make_campaign(make_dataset(examples=2), [anna], per_item=1)
    held = assignment_next(campaign=campaign, annotator=anna)
    web.force_login(anna)
    assert web.post(reverse("annotation:annotate_flag", args=[held.pk]), {"comment": ""}).status_code == 422
    response = web.post(reverse("annotation:annotate_flag", args=[held.pk]), {"comment": "The passages are about another album."})
    assert response.status_code == 302
    held.refresh_from_db()
    assert held.status == AssignmentStatus.SKIPPED
    flag = ItemNote.objects.get()
    assert (flag.kind, flag.annotator, flag.example, flag.comment) == (ItemNote.Kind.FLAG, anna, held.example, "The passages are about another album.")
    queue_page = researcher_client.get(reverse("annotation:review_queue", args=[campaign.pk])).content.decode()
    assert "Flagged by annotators" in queue_page and "The passages are about another album." in queue_page
    assert researcher_client.post(reverse("annotation:review_resolve", args=[campaign.pk, flag.pk]), {"next": "https://evil.example/"}).url == reverse("annotation:review_queue", args=[campaign.pk])
    flag.refresh_from_db()
    assert flag.resolved_by == researcher
    assert "Flagged by annotators" not in researcher_client.get(reverse("annotation:review_queue", args=[campaign.pk])).content.decode()


def test_annotators_get_403_on_review_pages_and_on_other_annotators_work(pair, web):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    web.force_login(anna)
    for address in (
        reverse("annotation:review_queue", args=[campaign.pk]),
        reverse("annotation:campaign_agreement", args=[campaign.pk]),
        url("review_item", campaign),
    ):
        assert web.get(address).status_code == 403, address
    for address in (url("review_save", campaign), url("review_accept", campaign), url("review_send_back", campaign)):
        assert web.post(address, {"version": 0, "annotator": anna.pk, "comment": "x"}).status_code == 403, address
    bobs = Assignment.objects.get(annotator=bob)
    assert web.get(reverse("annotation:annotate", args=[bobs.pk])).status_code == 403
    assert web.post(reverse("annotation:annotate_time", args=[bobs.pk]), {"seconds": 5}).status_code == 403
    assert web.post(reverse("annotation:annotate_flag", args=[bobs.pk]), {"comment": "x"}).status_code == 403
    assert not Adjudication.objects.exists() and not ItemNote.objects.exists()


def test_the_review_page_shows_each_annotators_spans_aligned_with_disagreements_and_diffs(pair, researcher_client):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    page = researcher_client.get(url("review_item", campaign)).content.decode()
    assert page.count('class="rv-lane ') == 2
    # "The album" is in anna's span only, "sold" in both (same type): only the first is a disagreement.
    assert 'rv-w t-unverifiable rv-dis rv-first" data-tag="4"' in page
    # bob's "Sivan was born ..." is his alone: marked and a disagreement in his lane, plain in anna's.
    assert 'title="bob: Unverifiable">Sivan' in page
    assert '<span class="rv-w rv-dis">Sivan</span>' in page
    # Each span's type is preselected as its annotator gave it, so taking a span keeps its type.
    assert page.count(f'<option value="{UNVERIFIABLE}" selected>') == 3
    assert "<del>" in page and "<ins>" in page
    assert "Johannesburg." in page
    assert ERROR_LABELS[UNVERIFIABLE] in page


def test_the_queue_puts_the_lowest_agreement_first(make_user):
    anna, bob = make_user("anna", role="annotator"), make_user("bob", role="annotator")
    campaign = make_campaign(make_dataset(examples=2), [anna, bob], per_item=2)
    agreeing = {**ANNA, "errors": ANNA["errors"][:1]}
    submit_fine_grained(campaign, anna, agreeing)  # example 1
    submit_fine_grained(campaign, bob, agreeing)  # example 1
    submit_fine_grained(campaign, anna, ANNA)  # example 2
    submit_fine_grained(campaign, bob, BOB)  # example 2
    rows = review_queue(campaign)
    assert [(row.example.number, row.agreement_percent) for row in rows][0][0] == 2
    assert rows[0].agreement < rows[1].agreement == 1.0


def test_the_shared_items_are_chosen_once_per_process_and_catch_up_with_new_items_after_their_time(make_user, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotation.selectors import campaigns as selectors
    from tests.annotation.annotate_data import make_example

    monkeypatch.setattr(selectors, "_SHARED", selectors._ProcessMemo(selectors.SHARED_TTL_S))
    dataset = make_dataset(examples=10)
    campaign = make_campaign(dataset, [make_user("anna", role="annotator")], per_item=1)
    campaign.shared_share = 0.5
    campaign.save()
    chosen = shared_item_ids(campaign, "fine_grained")
    with CaptureQueriesContext(connection) as captured:
        assert shared_item_ids(campaign, "fine_grained") == chosen and len(chosen) == 5
    assert len(captured) == 0  # every lookup of the queue asks: the split is not read again
    # The lookup gets the ids as one parameter (not one each: SQLite refuses more than 32,766).
    sql, params = selectors._capacity_sql(campaign, "fine_grained")
    assert sql.count("%s") == len(params) == 3

    for position in (10, 11):  # the split gains two items (answers joined onto it)
        make_example(dataset, position)
    assert shared_item_ids(campaign, "fine_grained") == chosen  # the kept choice, for at most SHARED_TTL_S
    campaign.shared_share = 0.25
    assert len(shared_item_ids(campaign, "fine_grained")) == 3  # another share is another choice, made now
    campaign.shared_share = 0.5
    later, wall_later = time.monotonic() + selectors.SHARED_TTL_S + 1, time.time() + selectors.SHARED_TTL_S + 1
    monkeypatch.setattr(selectors, "time", SimpleNamespace(monotonic=lambda: later, time=lambda: wall_later))
    assert len(shared_item_ids(campaign, "fine_grained")) == 6


def test_shared_share_gives_that_share_of_items_to_every_annotator_and_the_rest_to_one(make_user):
    team = [make_user(name, role="annotator") for name in ("anna", "bob", "carl")]
    campaign = make_campaign(make_dataset(examples=10), team, per_item=1)
    campaign.shared_share = 0.3
    campaign.save()
    shared = shared_item_ids(campaign, "fine_grained")
    assert len(shared) == 3 and shared == shared_item_ids(campaign, "fine_grained")  # stable
    for _round in range(10):
        for user in team:
            assignment = assignment_next(campaign=campaign, annotator=user)
            if assignment is not None:
                Assignment.objects.filter(pk=assignment.pk).update(status=AssignmentStatus.SUBMITTED)
    per_item = {}
    for example_id, annotator_id in Assignment.objects.filter(status=AssignmentStatus.SUBMITTED).values_list("example_id", "annotator_id"):
        per_item.setdefault(example_id, set()).add(annotator_id)
    assert {e for e, who in per_item.items() if len(who) == 3} == shared
    assert all(len(who) == 1 for e, who in per_item.items() if e not in shared)
    assert len(per_item) == 10
    progress = campaign_progress(campaign, now=Assignment.objects.first().created_at)
    assert progress.slots == 7 * 1 + 3 * 3 == progress.submitted


def test_time_on_an_item_is_recorded_and_shown_per_annotator(pair, web, researcher_client):
    anna, _bob = pair
    campaign = make_campaign(make_dataset(examples=1), [anna])
    held = assignment_next(campaign=campaign, annotator=anna)
    web.force_login(anna)
    page = web.get(reverse("annotation:annotate", args=[held.pk])).content.decode()
    assert reverse("annotation:annotate_time", args=[held.pk]) in page
    for seconds in (20, 25, 9999):
        assert web.post(reverse("annotation:annotate_time", args=[held.pk]), {"seconds": seconds}).status_code == 204
    held.refresh_from_db()
    assert held.active_seconds == 20 + 25 + 120  # one report counts two minutes at most
    submitted = submit_fine_grained(campaign, anna, ANNA)
    assert submitted.pk == held.pk and submitted.submitted_at is not None
    page = researcher_client.get(reverse("annotation:campaign_detail", args=[campaign.pk])).content.decode()
    assert "165 s" in page


def test_guidelines_are_markdown_with_raw_html_shown_as_text_and_a_default_per_error_type(pair, web):
    html = guidelines_html("# Rules\n\n<script>alert(1)</script> **bold** [x](javascript:alert(1))")
    assert "<strong>bold</strong>" in html and "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    default = guidelines_html("")
    for label in ERROR_LABELS.values():
        assert label in default
    anna, _bob = pair
    campaign = make_campaign(make_dataset(examples=1), [anna])
    held = assignment_next(campaign=campaign, annotator=anna)
    web.force_login(anna)
    page = web.get(reverse("annotation:annotate", args=[held.pk])).content.decode()
    assert 'id="guidelines-panel"' in page and "worked example" in page and 'id="flag-form"' in page


def test_guidelines_are_rendered_once_per_text_and_an_edit_shows_at_once(pair, web, monkeypatch):
    from annotation import guidelines

    rendered = []
    render = guidelines._renderer().render
    monkeypatch.setattr(guidelines._renderer(), "render", lambda text: rendered.append(text) or render(text))
    anna, _bob = pair
    campaign = make_campaign(make_dataset(examples=1), [anna])
    campaign.guidelines = "Mark **each unsupported claim** (rendered once)."
    campaign.save(update_fields=["guidelines"])
    held = assignment_next(campaign=campaign, annotator=anna)
    web.force_login(anna)
    address = reverse("annotation:annotate", args=[held.pk])
    pages = [web.get(address).content.decode() for _ in range(3)]
    assert all("<strong>each unsupported claim</strong>" in page for page in pages)
    assert rendered == [campaign.guidelines]

    campaign.guidelines = "Mark *only* the first error (edited)."
    campaign.save(update_fields=["guidelines"])
    page = web.get(address).content.decode()
    assert "<em>only</em> the first error (edited)" in page and "each unsupported claim" not in page
    assert rendered == ["Mark **each unsupported claim** (rendered once).", campaign.guidelines]


def test_the_campaign_form_takes_the_shared_share_and_guidelines(researcher_client, make_user):
    anna = make_user("anna", role="annotator")
    bob = make_user("bob", role="annotator")
    dataset = make_dataset(examples=4)
    response = researcher_client.post(reverse("annotation:campaign_create"), {
        "name": "Team round", "dataset_split": f"{dataset.pk}:dev", "task": "fine_grained", "annotators_per_item": 1,
        "shared_percent": 50, "guidelines": "Mark **every** error.", "annotators": [anna.pk, bob.pk],
    })
    assert response.status_code == 302
    campaign = dataset.campaigns.get()
    assert (campaign.shared_share, campaign.guidelines) == (0.5, "Mark **every** error.")
    page = researcher_client.get(response.url).content.decode()
    assert "50% of the items (2 items)" in page and "<strong>every</strong>" in page


def test_the_agreement_page_shows_the_campaigns_figures_per_type_and_per_annotator(pair, researcher_client):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob, examples=1)
    response = researcher_client.get(reverse("annotation:campaign_agreement", args=[campaign.pk]))
    assert response.status_code == 200
    figures = response.context["figures"]
    assert figures["items"] == 1 and figures["annotators"] == ["anna", "bob"]
    page = response.content.decode()
    assert 'id="ag-items">1<' in page
    for label in ERROR_LABELS.values():
        assert label in page
    assert "vs bob" in page and "vs anna" in page
    detail = researcher_client.get(reverse("annotation:campaign_detail", args=[campaign.pk])).content.decode()
    assert "errors α" in detail and "(1 shared)" in detail


def test_taking_spans_names_the_annotators_parts(pair, researcher_client):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    refused = researcher_client.post(url("review_save", campaign), {"version": 0, "span": [f"{anna.pk}:7"], "corrected-prediction": ""})
    assert refused.status_code == 400
    assert BORN in TEXT and REPEATED in TEXT


def test_the_campaign_page_changes_the_team_settings_and_refuses_an_overlap_above_the_team(pair, researcher_client):
    anna, bob = pair
    campaign = make_campaign(make_dataset(examples=4), [anna, bob])
    address = reverse("annotation:campaign_settings", args=[campaign.pk])
    refused = researcher_client.post(address, {"annotators_per_item": 3, "shared_percent": 25, "guidelines": "x"})
    assert refused.status_code == 422 and "the campaign has 2" in refused.content.decode()
    campaign.refresh_from_db()
    assert (campaign.annotators_per_item, campaign.shared_share) == (1, 0.0)
    saved = researcher_client.post(address, {"annotators_per_item": 2, "shared_percent": 25, "guidelines": "Be *brief*."})
    assert saved.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.annotators_per_item, campaign.shared_share, campaign.guidelines) == (2, 0.25, "Be *brief*.")
    assert len(shared_item_ids(campaign, "fine_grained")) == 1


def test_a_gold_version_saved_on_the_review_pages_is_what_export_aggregate_adjudicated_writes(pair, researcher_client, tmp_path):
    anna, bob = pair
    campaign = make_campaign(make_dataset(examples=1), [anna, bob], task=CampaignTask.BOTH, per_item=2)
    for user, feedback, preference in ((anna, ANNA, [1, 1, 1, 2, 0, 1]), (bob, BOB, [1, 2, 1, 2, 1, 1])):
        submit_fine_grained(campaign, user, feedback)
        submit_comparison(campaign, user, preference)
    researcher_client.post(url("review_save", campaign), {
        "version": 0, "span": [f"{anna.pk}:0", f"{bob.pk}:1"], "missing": [f"{anna.pk}:0"], "corrected-prediction": "Gold answer.",
    })
    researcher_client.post(url("review_accept", campaign, "comparison"), {"version": 0, "annotator": bob.pk})
    out = tmp_path / "gold.json"
    call_command("export_qa_feedback", dataset="bloom", split="dev", out=str(out), aggregate="adjudicated", stdout=io.StringIO())
    (record,) = json.loads(out.read_text())
    assert record["feedback"] == {
        "errors": [ANNA["errors"][0], BOB["errors"][1]], "missing-info": ANNA["missing-info"], "corrected-prediction": "Gold answer.",
    }
    assert record["preference"] == [1, 2, 1, 2, 1, 1]


def test_a_reviewer_reviews_without_the_researcher_pages(pair, make_user, web):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    vera = make_user("vera", role="reviewer")
    web.force_login(vera)
    home = web.get(reverse("annotation:review_home")).content.decode()
    assert reverse("annotation:review_queue", args=[campaign.pk]) in home and ">Review</a>" in home
    assert web.get(reverse("annotation:review_queue", args=[campaign.pk])).status_code == 200
    assert web.get(reverse("annotation:campaign_agreement", args=[campaign.pk])).status_code == 200
    page = web.get(url("review_item", campaign)).content.decode()
    assert f'href="{reverse("annotation:campaign_detail", args=[campaign.pk])}"' not in page
    assert web.post(url("review_accept", campaign), {"version": 0, "annotator": anna.pk}).status_code == 302
    assert Adjudication.objects.get().adjudicated_by == vera
    for name in ("campaign_list", "dataset_list"):
        assert web.get(reverse(f"annotation:{name}")).status_code == 403
    assert web.get(reverse("annotation:campaign_detail", args=[campaign.pk])).status_code == 403
    web.force_login(anna)
    assert web.get(reverse("annotation:review_home")).status_code == 403


def test_the_review_page_shows_the_per_segment_rewards_of_a_scored_response(pair, researcher_client):
    anna, bob = pair
    campaign = disagreeing_item(anna, bob)
    response = campaign.dataset.examples.get(split=campaign.split, position=0).responses.get(number=1)
    first_word_end = response.text.index(" ")
    response.reward_segments = [
        {"start": 0, "end": first_word_end, "reward": -0.5, "label": "F-ERR", "model": "rm_factuality"},
        {"start": first_word_end, "end": len(response.text), "reward": 0.3, "label": "O", "model": "rm_factuality"},
    ]
    response.save(update_fields=["reward_segments"])
    page = researcher_client.get(url("review_item", campaign)).content.decode()
    assert "Reward per segment" in page
    assert f'title="F-ERR · reward -0.50">{response.text[:first_word_end]}' in page
    assert "▲+0.30" in page


def test_the_review_page_has_no_reward_rows_for_an_unscored_response(pair, researcher_client):
    anna, bob = pair
    page = researcher_client.get(url("review_item", disagreeing_item(anna, bob))).content.decode()
    assert "Reward per segment" not in page
