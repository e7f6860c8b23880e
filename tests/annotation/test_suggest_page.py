"""Suggestions on the fine-grained page: outlined, accepted, trimmed or dismissed; only accepted ones become spans."""

import re

import pytest
from django.urls import reverse

from annotation.models import ErrorSpan, SuggestionEvent
from annotation.qa import suggestions as sq
from annotation.qa.vocab import ERROR_TYPES
from annotation.services.campaigns import assignment_next
from annotation.services.suggestions import campaign_suggest_settings_save
from tests.annotation.annotate_data import RESPONSES, make_campaign, make_dataset, offsets_of
from tests.annotation.suggest_data import add_suggestion, suggester_run
from tests.annotation.test_annotate_views import HTMX, draft_op, open_page

pytestmark = pytest.mark.django_db

IRRELEVANT, REDUNDANT, INCOHERENT, UNVERIFIABLE, WRONG = ERROR_TYPES
TEXT = RESPONSES[1]
REPEATED = "It was released on 31 August 2018."
SOLD = "The album sold ten million copies in its first week."
BORN = "Sivan was born in Perth, Australia."


@pytest.fixture
def suggested(annotator):
    """An item of a campaign with R1 and R2 suggesters, three error suggestions and one `O` segment on response 1."""
    dataset = make_dataset(examples=1)
    campaign = make_campaign(dataset, [annotator])
    runs = {"relevance": suggester_run("relevance").pk, "factuality": suggester_run("factuality").pk}
    campaign_suggest_settings_save(campaign=campaign, runs=runs, no_suggestion_share=0.0, order="input", order_seed=0)
    response = dataset.examples.get().responses.get(number=1)
    fine = add_suggestion(campaign, response, sq.RELEVANCE, "Bloom is the second studio album by Troye Sivan.", p=0.1)
    repeated = add_suggestion(campaign, response, sq.RELEVANCE, REPEATED, occurrence=2, p=0.7)
    sold = add_suggestion(campaign, response, sq.FACTUALITY, SOLD, p=0.83)
    born = add_suggestion(campaign, response, sq.FACTUALITY, BORN, p=0.6)
    item = assignment_next(campaign=campaign, annotator=annotator)
    return item, {"fine": fine, "repeated": repeated, "sold": sold, "born": born}


def _page(client, item) -> str:
    return client.get(reverse("annotation:annotate", args=[item.pk])).content.decode()


def test_the_page_outlines_error_suggestions_with_their_probability_and_hides_no_error_segments(annotator_client, suggested):
    item, s = suggested
    html = _page(annotator_client, item)
    rows = re.findall(r'class="sug-item[^"]*" data-sug-id="(\d+)"', html)
    assert rows == [str(s["repeated"].pk), str(s["sold"].pk), str(s["born"].pk)]  # in text order, `O` left out
    assert "83%" in html and "70%" in html
    # The outlined runs of the response carry the suggestion ids and tags; the text is unchanged.
    runs = re.findall(r'<(?:span|mark) class="seg sug [^"]*" data-start="(\d+)" data-end="(\d+)" data-sug="([\d ]+)"', html)
    start, end = offsets_of(TEXT, SOLD)
    assert (str(start), str(end), str(s["sold"].pk)) in runs
    assert 'data-tag="R2 83%"' in html


def test_accept_trim_and_dismiss_store_the_right_span_or_nothing_and_are_recorded(annotator_client, annotator, suggested):
    item, s = suggested
    fields = open_page(annotator_client, item)
    version = int(fields["draft_version"])

    answer = draft_op(annotator_client, item, op="accept_suggestion", suggestion=s["repeated"].pk, type=IRRELEVANT, draft_version=version)
    assert answer.status_code == 200 and "Suggestion accepted as span 1" in answer.content.decode()
    trim_start, trim_end = offsets_of(TEXT, "ten million copies")
    answer = draft_op(annotator_client, item, op="trim_suggestion", suggestion=s["sold"].pk, type=UNVERIFIABLE,
                      start=trim_start + 2, end=trim_end - 1, draft_version=version + 1)  # snapped to whole words
    assert answer.status_code == 200 and "trimmed and accepted as span 2" in answer.content.decode()
    answer = draft_op(annotator_client, item, op="dismiss_suggestion", suggestion=s["born"].pk, draft_version=version + 2)
    assert answer.status_code == 200 and "Suggestion dismissed." in answer.content.decode()

    item.refresh_from_db()
    repeated = offsets_of(TEXT, REPEATED, occurrence=2)
    assert [(e["error type"], e["start"], e["end"]) for e in item.draft["errors"]] == [
        (IRRELEVANT, *repeated),
        (UNVERIFIABLE, trim_start, trim_end),
    ]
    events = list(SuggestionEvent.objects.order_by("pk").values_list("suggestion_id", "action", "error_type", "start", "end", "annotator_id"))
    assert events == [
        (s["repeated"].pk, sq.ACCEPT, IRRELEVANT, *repeated, annotator.pk),
        (s["sold"].pk, sq.TRIM, UNVERIFIABLE, trim_start, trim_end, annotator.pk),
        (s["born"].pk, sq.DISMISS, "", None, None, annotator.pk),
    ]
    # Answered suggestions leave the page.
    assert "No open suggestions on this response." in _page(annotator_client, item)

    fields = open_page(annotator_client, item)
    submitted = annotator_client.post(reverse("annotation:annotate_submit", args=[item.pk]), fields, **HTMX)
    assert submitted.status_code == 200, submitted.content[:400]
    assert sorted(ErrorSpan.objects.values_list("error_type", "start", "end")) == sorted(
        [(IRRELEVANT, *repeated), (UNVERIFIABLE, trim_start, trim_end)]
    )


def test_suggestions_are_not_annotations_until_accepted(annotator_client, suggested):
    item, _s = suggested
    fields = open_page(annotator_client, item)
    submitted = annotator_client.post(reverse("annotation:annotate_submit", args=[item.pk]), fields, **HTMX)
    assert submitted.status_code == 200
    assert ErrorSpan.objects.count() == 0
    assert SuggestionEvent.objects.count() == 0


def test_a_type_the_suggester_does_not_propose_and_a_trim_outside_it_are_refused_and_not_recorded(annotator_client, suggested):
    item, s = suggested
    fields = open_page(annotator_client, item)
    version = int(fields["draft_version"])
    answer = draft_op(annotator_client, item, op="accept_suggestion", suggestion=s["repeated"].pk, type=UNVERIFIABLE, draft_version=version)
    assert answer.status_code == 422
    assert "R1 relevance suggests" in answer.content.decode()
    start, end = offsets_of(TEXT, BORN)
    answer = draft_op(annotator_client, item, op="trim_suggestion", suggestion=s["sold"].pk, type=UNVERIFIABLE,
                      start=start, end=end, draft_version=version + 1)
    assert answer.status_code == 422 and "inside its suggestion" in answer.content.decode()
    answer = draft_op(annotator_client, item, op="dismiss_suggestion", suggestion=999999, draft_version=version + 2)
    assert answer.status_code == 422 and "not one of this response" in answer.content.decode()
    item.refresh_from_db()
    assert item.draft["errors"] == [] and SuggestionEvent.objects.count() == 0


def test_an_answered_suggestion_cannot_be_answered_again(annotator_client, suggested):
    item, s = suggested
    version = int(open_page(annotator_client, item)["draft_version"])
    draft_op(annotator_client, item, op="dismiss_suggestion", suggestion=s["born"].pk, draft_version=version)
    again = draft_op(annotator_client, item, op="accept_suggestion", suggestion=s["born"].pk, type=UNVERIFIABLE, draft_version=version + 1)
    assert again.status_code == 422 and "already answered" in again.content.decode()
    assert SuggestionEvent.objects.count() == 1


def test_an_item_of_the_control_group_shows_no_suggestions_and_no_model_rewards(annotator_client, suggested):
    item, _s = suggested
    campaign = item.campaign
    response = item.example.responses.get(number=1)
    response.reward_segments = [{"start": 0, "end": 10, "reward": -0.5, "label": "F-ERR", "model": "R2", "source": "suggestions"}]
    response.save()
    campaign_suggest_settings_save(campaign=campaign, runs={}, no_suggestion_share=1.0, order="input", order_seed=0)
    html = _page(annotator_client, item)
    assert "sug-item" not in html and "data-sug=" not in html
    assert "Reward per segment" not in html


def test_per_segment_rewards_show_sign_value_and_label_not_only_colour(annotator_client, suggested):
    item, _s = suggested
    response = item.example.responses.get(number=1)
    first = offsets_of(TEXT, "Bloom is the second studio album by Troye Sivan.")
    sold = offsets_of(TEXT, SOLD)
    response.reward_segments = [
        {"start": first[0], "end": first[1], "reward": 0.5, "label": "O", "model": "R2 factuality"},
        {"start": sold[0], "end": sold[1], "reward": -0.5, "label": "F-ERR", "model": "R2 factuality"},
    ]
    response.save()
    html = _page(annotator_client, item)
    assert "Reward per segment" in html
    assert '<span class="rw rw-pos" title="O · reward +0.50">' in html
    assert '<span class="rw rw-neg" title="F-ERR · reward -0.50">' in html
    assert "▲+0.50" in html and "▼-0.50" in html
