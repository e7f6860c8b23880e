"""The campaign page's bias check and suggester metrics on a crafted campaign, against hand-computed values.

Response 1's words (39): 0-8 "Bloom ... Sivan." | 9-15 "It was released on 31 August 2018." |
16-22 the same sentence again | 23-32 "The album sold ten million copies in its first week." |
33-38 "Sivan was born in Perth, Australia."
"""

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation.models import Adjudication, Assignment, AssignmentKind, SuggestionEvent
from annotation.qa import suggestions as sq
from annotation.qa.vocab import ERROR_TYPES
from annotation.selectors.suggestions import campaign_suggest_overview
from annotation.services.campaigns import assignment_next
from annotation.services.feedback import fine_grained_feedback_submit
from annotation.services.suggestions import campaign_suggest_settings_save
from tests.annotation.annotate_data import RESPONSES, make_campaign, make_dataset, offsets_of
from tests.annotation.suggest_data import add_suggestion, suggester_run

pytestmark = pytest.mark.django_db

IRRELEVANT, REDUNDANT, INCOHERENT, UNVERIFIABLE, WRONG = ERROR_TYPES
TEXT = RESPONSES[1]
FIRST = "Bloom is the second studio album by Troye Sivan."
REPEATED = "It was released on 31 August 2018."
SOLD = "The album sold ten million copies in its first week."
BORN = "Sivan was born in Perth, Australia."


def _error(error_type, phrase, occurrence=1):
    start, end = offsets_of(TEXT, phrase, occurrence)
    return {"error type": error_type, "explanation": "", "start": start, "end": end}


def _submit(campaign, annotator, errors, seconds):
    item = assignment_next(campaign=campaign, annotator=annotator)
    response = item.example.responses.get(number=1)
    block = {"errors": errors, "missing-info": [], "corrected-prediction": TEXT}
    fine_grained_feedback_submit(response=response, annotator=annotator, feedback=block,
                                 submit_token=f"{item.pk}-{annotator.pk}", base_version=0, assignment=item)
    Assignment.objects.filter(pk=item.pk).update(active_seconds=seconds)
    return item


@pytest.fixture
def crafted(make_user):
    ann1, ann2 = make_user("ann1", role="annotator"), make_user("ann2", role="annotator")
    dataset = make_dataset(examples=2)
    campaign = make_campaign(dataset, [ann1, ann2], per_item=2)
    runs = {"relevance": suggester_run("relevance").pk, "factuality": suggester_run("factuality").pk}
    campaign_suggest_settings_save(campaign=campaign, runs=runs, no_suggestion_share=0.5, order="input", order_seed=0)
    a, b = dataset.examples.order_by("position")
    for example in (a, b):
        response = example.responses.get(number=1)
        add_suggestion(campaign, response, sq.RELEVANCE, FIRST, p=0.2)  # an `O` segment: predicts nothing
        add_suggestion(campaign, response, sq.RELEVANCE, REPEATED, occurrence=2, p=0.7)
        add_suggestion(campaign, response, sq.FACTUALITY, FIRST, p=0.6)
        add_suggestion(campaign, response, sq.FACTUALITY, SOLD, p=0.9)
    items = {
        ("a", 1): _submit(campaign, ann1, [_error(INCOHERENT, REPEATED, 2), _error(UNVERIFIABLE, "ten million copies")], 30),
        ("a", 2): _submit(campaign, ann2, [_error(IRRELEVANT, REPEATED, 1)], 50),
        ("b", 1): _submit(campaign, ann1, [], 20),
        ("b", 2): _submit(campaign, ann2, [_error(UNVERIFIABLE, "born in Perth, Australia.")], 40),
    }
    assert {i.example_id for k, i in items.items() if k[0] == "a"} == {a.pk}
    Adjudication.objects.create(example=b, kind=AssignmentKind.FINE_GRAINED, campaign=campaign,
                                errors=[_error(UNVERIFIABLE, BORN)], adjudicated_at=timezone.now())
    return campaign, a, b, items


def test_suggester_metrics_equal_the_hand_computed_word_counts(crafted):
    campaign, *_ = crafted
    rows = {row.suggester: row for row in campaign_suggest_overview(campaign).metrics}
    # References: a by ann1, a by ann2, b's adjudicated version (replacing both of b's annotations).
    # R1 predicts words 16-22 on each: a/ann1 gold 16-22 (TP 7), a/ann2 gold 9-15 (FP 7, FN 7), b gold none (FP 7).
    r1 = rows[sq.SUGGESTER_NAMES[sq.RELEVANCE]]
    assert (r1.counts.tp, r1.counts.fp, r1.counts.fn, r1.annotations) == (7, 14, 7, 3)
    assert r1.counts.precision == pytest.approx(1 / 3) and r1.counts.recall == pytest.approx(1 / 2)
    assert r1.counts.f1 == pytest.approx(0.4)
    # R2 predicts words 0-8 and 23-32 (19): a/ann1 gold 26-28 (TP 3, FP 16), a/ann2 none (FP 19), b gold 33-38 (FP 19, FN 6).
    r2 = rows[sq.SUGGESTER_NAMES[sq.FACTUALITY]]
    assert (r2.counts.tp, r2.counts.fp, r2.counts.fn, r2.annotations) == (3, 54, 6, 3)
    assert r2.counts.precision == pytest.approx(3 / 57) and r2.counts.recall == pytest.approx(1 / 3)
    assert r2.counts.f1 == pytest.approx(1 / 11)


def test_the_bias_check_compares_items_with_and_without_suggestions(crafted):
    campaign, a, b, items = crafted
    control = sq.no_suggestion_items([a.pk, b.pk], share=0.5, seed=0)
    assert len(control) == 1
    shown_key = "b" if a.pk in control else "a"
    # Answers on the item that showed suggestions: ann1 accepts R1 and trims one R2, dismisses the other; ann2 dismisses R1.
    example = a if shown_key == "a" else b
    s = {(x.suggester, x.start): x for x in example.responses.get(number=1).suggestions.all()}
    r1 = s[(sq.RELEVANCE, offsets_of(TEXT, REPEATED, 2)[0])]
    sold = s[(sq.FACTUALITY, offsets_of(TEXT, SOLD)[0])]
    first = s[(sq.FACTUALITY, 0)]
    one, two = items[(shown_key, 1)], items[(shown_key, 2)]
    for item, suggestion, action, error_type in (
        (one, r1, sq.ACCEPT, INCOHERENT), (one, sold, sq.TRIM, UNVERIFIABLE), (one, first, sq.DISMISS, ""), (two, r1, sq.DISMISS, ""),
    ):
        SuggestionEvent.objects.create(suggestion=suggestion, assignment=item, annotator=item.annotator, action=action, error_type=error_type)

    overview = campaign_suggest_overview(campaign)
    figures = {"a": dict(seconds=[30, 50], spans=[2, 1], peer=[0.0, 0.0], gold=[]),
               "b": dict(seconds=[20, 40], spans=[0, 1], peer=[0.0, 0.0], gold=[0.0, 0.8])}
    with_group, without_group = overview.groups
    for group, key in ((with_group, shown_key), (without_group, "b" if shown_key == "a" else "a")):
        expected = figures[key]
        assert group.items == 1
        assert sorted(group.seconds) == expected["seconds"] and sorted(group.spans) == sorted(expected["spans"])
        assert group.peer_agreement == pytest.approx(expected["peer"])
        assert sorted(group.gold_agreement) == pytest.approx(expected["gold"])
    acceptance = {row.suggester: row for row in overview.acceptance}
    r1_row, r2_row = acceptance[sq.SUGGESTER_NAMES[sq.RELEVANCE]], acceptance[sq.SUGGESTER_NAMES[sq.FACTUALITY]]
    assert (r1_row.shown, r1_row.accepted, r1_row.trimmed, r1_row.dismissed, r1_row.rate) == (2, 1, 0, 1, 0.5)
    assert (r2_row.shown, r2_row.accepted, r2_row.trimmed, r2_row.dismissed, r2_row.rate) == (4, 0, 1, 1, 0.25)


def test_the_campaign_page_says_which_order_is_in_use_and_shows_the_tables(researcher_client, crafted):
    campaign, *_ = crafted
    html = researcher_client.get(reverse("annotation:campaign_detail", args=[campaign.pk])).content.decode()
    assert "Queue order in use:</strong> Input order" in html
    assert "Without suggestions:</strong> 1 of 2 items" in html
    assert "Bias check" in html and "Suggesters measured against annotators" in html
    assert "0.333" in html and "0.400" in html  # R1 precision and F1


def test_the_settings_form_saves_suggesters_share_and_order(researcher_client, crafted):
    campaign, *_ = crafted
    preference = suggester_run("preference")
    url = reverse("annotation:campaign_suggest_settings", args=[campaign.pk])
    answer = researcher_client.post(url, {"relevance": campaign.suggest_relevance_run_id, "factuality": "",
                                          "preference": preference.pk, "no_suggestion_percent": 30, "order": "random", "order_seed": 5})
    assert answer.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.suggest_factuality_run_id, campaign.suggest_preference_run_id) == (None, preference.pk)
    assert (campaign.no_suggestion_share, campaign.order, campaign.order_seed) == (0.3, "random", 5)
    html = researcher_client.get(reverse("annotation:campaign_detail", args=[campaign.pk])).content.decode()
    assert "Queue order in use:</strong> Random, seed 5" in html
    wrong = researcher_client.post(url, {"relevance": preference.pk, "no_suggestion_percent": 30, "order": "random", "order_seed": 5})
    assert wrong.status_code == 422 and "Select a valid choice" in wrong.content.decode()


def test_scoring_is_started_from_the_campaign_page(researcher_client, crafted, django_capture_on_commit_callbacks):
    campaign, *_ = crafted
    with django_capture_on_commit_callbacks() as callbacks:
        answer = researcher_client.post(reverse("annotation:campaign_suggest_score", args=[campaign.pk]))
    assert answer.status_code == 302 and len(callbacks) == 1
    job = campaign.suggestion_jobs.get()
    assert job.status == "queued"
    panel = researcher_client.get(reverse("annotation:campaign_suggest_panel", args=[campaign.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in panel and "queued" in panel
