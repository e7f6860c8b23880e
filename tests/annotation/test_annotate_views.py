"""The annotation pages over HTTP: rendering, htmx edits, submit, permissions."""

import re

import pytest
from django.urls import reverse

from annotation.models import Assignment, CampaignTask, Comparison, FineGrainedFeedback
from annotation.qa.vocab import (
    ERROR_LABELS,
    IRRELEVANT,
    MISSING_LABELS,
    MISSING_MINOR,
    REDUNDANT,
    UNVERIFIABLE,
    WRONG_GROUNDING,
)
from annotation.services.campaigns import assignment_next
from tests.annotation.annotate_data import PASSAGES, QUESTION, RESPONSES, make_campaign, make_dataset, offsets_of

TEXT = RESPONSES[1]
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def fine_grained(annotator):
    dataset = make_dataset(examples=2)
    campaign = make_campaign(dataset, [annotator], task=CampaignTask.FINE_GRAINED)
    return assignment_next(campaign=campaign, annotator=annotator)


@pytest.fixture
def comparison(annotator):
    dataset = make_dataset(examples=1)
    campaign = make_campaign(dataset, [annotator], task=CampaignTask.COMPARISON)
    return assignment_next(campaign=campaign, annotator=annotator)


def hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def open_page(client, assignment) -> dict:
    """GET the page and return the form fields it would post."""
    response = client.get(reverse("annotation:annotate", args=[assignment.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    return {name: hidden(html, name) for name in ("version", "submit_token", "draft_version")}


def draft_op(client, assignment, **values):
    return client.post(reverse("annotation:annotate_draft", args=[assignment.pk]), values, **HTMX)


def test_offsets_and_numbers_the_page_scripts_read_are_never_localized(annotator_client, fine_grained, settings):
    settings.USE_THOUSAND_SEPARATOR = True
    text = "word " * 300
    fine_grained.example.responses.filter(number=1).update(text=text)
    fine_grained.draft = {"errors": [{"error type": IRRELEVANT, "explanation": "", "start": 1000, "end": 1004}],
                          "missing-info": [], "corrected-prediction": text}
    fine_grained.save(update_fields=["draft"])
    html = annotator_client.get(reverse("annotation:annotate", args=[fine_grained.pk])).content.decode()
    assert 'data-start="1000" data-end="1004"' in html and "1,00" not in html
    assert 'data-p="2" data-s="3"' in html


def test_it_shows_the_question_the_numbered_passage_sentences_and_the_response(annotator_client, fine_grained):
    html = annotator_client.get(reverse("annotation:annotate", args=[fine_grained.pk])).content.decode()
    assert f"{QUESTION} (#1)" in html
    assert 'data-p="2" data-s="3"' in html and PASSAGES[1][3] in html
    assert ERROR_LABELS[WRONG_GROUNDING] in html and MISSING_LABELS[MISSING_MINOR] in html
    assert 'id="fg-correction"' in html and TEXT in html


def test_it_forbids_another_annotators_item(client, make_user, fine_grained):
    client.force_login(make_user("otto", role="annotator"))
    assert client.get(reverse("annotation:annotate", args=[fine_grained.pk])).status_code == 403
    assert client.post(reverse("annotation:annotate_draft", args=[fine_grained.pk]), {"draft_version": 0}).status_code == 403
    assert client.post(reverse("annotation:annotate_submit", args=[fine_grained.pk]), {}).status_code == 403
    assert client.post(reverse("annotation:annotate_skip", args=[fine_grained.pk])).status_code == 403


def test_it_forbids_researchers_from_other_peoples_items_too(researcher_client, fine_grained):
    assert researcher_client.get(reverse("annotation:annotate", args=[fine_grained.pk])).status_code == 403


def test_it_sends_anonymous_visitors_to_the_login_page(client, fine_grained):
    response = client.get(reverse("annotation:annotate", args=[fine_grained.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response.url


def test_it_adds_a_span_and_answers_with_only_the_changed_regions(annotator_client, fine_grained):
    fields = open_page(annotator_client, fine_grained)
    start, end = offsets_of(TEXT, "ten million copies")
    response = draft_op(
        annotator_client, fine_grained, op="add_span", start=start + 2, end=end - 2, type=UNVERIFIABLE, draft_version=fields["draft_version"]
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("hx-swap-oob") == 4  # save state, message, response text, span list
    assert f'data-start="{start}" data-end="{end}" data-index="0"' in html
    assert "Span 1 marked Unverifiable." in html
    fine_grained.refresh_from_db()
    assert fine_grained.draft_version == 1
    assert fine_grained.draft["errors"] == [{"error type": UNVERIFIABLE, "explanation": "", "start": start, "end": end}]


def test_it_refuses_an_overlapping_span_with_a_visible_message(annotator_client, fine_grained):
    start, end = offsets_of(TEXT, "ten million copies")
    draft_op(annotator_client, fine_grained, op="add_span", start=start, end=end, type=UNVERIFIABLE, draft_version=0)
    response = draft_op(annotator_client, fine_grained, op="add_span", start=start - 5, end=start + 3, type=IRRELEVANT, draft_version=1)
    assert response.status_code == 422
    assert "overlaps span 1 (Unverifiable" in response.content.decode()
    fine_grained.refresh_from_db()
    assert len(fine_grained.draft["errors"]) == 1


def test_it_keeps_the_text_fields_with_every_edit(annotator_client, fine_grained):
    draft_op(annotator_client, fine_grained, op="add_span", start=0, end=5, type=REDUNDANT, draft_version=0)
    draft_op(annotator_client, fine_grained, **{"explanation-0": "Bloom", "corrected-prediction": "Fixed.", "draft_version": 1})
    fine_grained.refresh_from_db()
    assert fine_grained.draft["errors"][0]["explanation"] == "Bloom"
    assert fine_grained.draft["corrected-prediction"] == "Fixed."


def test_it_refuses_an_autosave_from_a_tab_that_fell_behind(annotator_client, fine_grained):
    draft_op(annotator_client, fine_grained, **{"corrected-prediction": "tab A", "draft_version": 0})
    response = draft_op(annotator_client, fine_grained, **{"corrected-prediction": "tab B", "draft_version": 0})
    assert response.status_code == 409
    assert response["HX-Retarget"] == "#draft-problems"
    assert "changed in another tab" in response.content.decode()
    fine_grained.refresh_from_db()
    assert fine_grained.draft["corrected-prediction"] == "tab A"


def test_it_cites_a_sentence_for_an_inconsistent_fact(annotator_client, fine_grained):
    start, end = offsets_of(TEXT, "born in Perth, Australia.")
    draft_op(annotator_client, fine_grained, op="add_span", start=start, end=end, type=WRONG_GROUNDING, draft_version=0)
    response = draft_op(annotator_client, fine_grained, op="set_grounding", index=0, passage_id=2, sentence_ids="2", draft_version=1)
    assert "Contradicts <strong>passage 2, sentence 2</strong>" in response.content.decode()
    fine_grained.refresh_from_db()
    assert fine_grained.draft["errors"][0]["explanation"] == '{"passage_id":2,"sentence_id":[2]}'


def test_it_answers_malformed_edits_with_400(annotator_client, fine_grained):
    assert draft_op(annotator_client, fine_grained, op="add_span", start="x", end=3, type=IRRELEVANT, draft_version=0).status_code == 400
    assert draft_op(annotator_client, fine_grained, op="explode", draft_version=0).status_code == 400
    assert draft_op(annotator_client, fine_grained, op="sync").status_code == 400


def test_it_submits_and_sends_the_browser_to_the_next_item(annotator_client, fine_grained):
    fields = open_page(annotator_client, fine_grained)
    response = annotator_client.post(
        reverse("annotation:annotate_submit", args=[fine_grained.pk]), {**fields, "corrected-prediction": "Fixed."}, **HTMX
    )
    assert response.status_code == 200
    following = Assignment.objects.exclude(pk=fine_grained.pk).get()
    assert response["HX-Redirect"] == reverse("annotation:annotate", args=[following.pk])
    assert following.example.position == 1
    assert FineGrainedFeedback.objects.get().corrected_prediction == "Fixed."


def test_it_stores_one_row_when_submit_is_sent_twice(annotator_client, fine_grained):
    fields = open_page(annotator_client, fine_grained)
    url = reverse("annotation:annotate_submit", args=[fine_grained.pk])
    first = annotator_client.post(url, fields, **HTMX)
    second = annotator_client.post(url, fields, **HTMX)
    assert first["HX-Redirect"] == second["HX-Redirect"]
    assert FineGrainedFeedback.objects.count() == 1
    assert FineGrainedFeedback.objects.get().version == 1


def test_it_refuses_an_invalid_submit_with_a_message_naming_the_problem(annotator_client, fine_grained):
    draft_op(annotator_client, fine_grained, op="add_span", start=0, end=5, type=REDUNDANT, draft_version=0)
    fields = open_page(annotator_client, fine_grained)
    response = annotator_client.post(reverse("annotation:annotate_submit", args=[fine_grained.pk]), fields, **HTMX)
    html = response.content.decode()
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#submit-problems"
    assert "Span 1 (explanation):" in html and "give the earlier text it repeats" in html
    assert FineGrainedFeedback.objects.count() == 0


def test_it_shows_the_problems_on_the_page_without_htmx(annotator_client, fine_grained):
    draft_op(annotator_client, fine_grained, op="add_span", start=0, end=5, type=REDUNDANT, draft_version=0)
    fields = open_page(annotator_client, fine_grained)
    response = annotator_client.post(reverse("annotation:annotate_submit", args=[fine_grained.pk]), fields)
    assert response.status_code == 422
    assert "give the earlier text it repeats" in response.content.decode()


def test_it_refuses_a_submit_from_a_stale_tab(annotator_client, fine_grained):
    tab_a = open_page(annotator_client, fine_grained)
    tab_b = open_page(annotator_client, fine_grained)
    url = reverse("annotation:annotate_submit", args=[fine_grained.pk])
    assert annotator_client.post(url, {**tab_a, "corrected-prediction": "A"}, **HTMX).status_code == 200
    refused = annotator_client.post(url, {**tab_b, "corrected-prediction": "B"}, **HTMX)
    assert refused.status_code == 409
    # Said once, in the same place as an autosave that finds out, and as what happened: a submit, not an edit.
    assert refused["HX-Retarget"] == "#draft-problems"
    assert "submitted in another tab" in refused.content.decode()
    assert "changed" not in refused.content.decode()
    assert FineGrainedFeedback.objects.get().corrected_prediction == "A"


def test_it_says_an_autosave_from_a_stale_tab_lost_to_a_submit_not_to_an_edit(annotator_client, fine_grained):
    tab_a = open_page(annotator_client, fine_grained)
    url = reverse("annotation:annotate_submit", args=[fine_grained.pk])
    assert annotator_client.post(url, {**tab_a, "corrected-prediction": "A"}, **HTMX).status_code == 200
    response = draft_op(annotator_client, fine_grained, **{"corrected-prediction": "tab B", "draft_version": tab_a["draft_version"]})
    assert response.status_code == 409
    assert response["HX-Retarget"] == "#draft-problems"
    assert "submitted in another tab" in response.content.decode()


def test_it_does_not_call_a_refused_edit_a_saved_draft(annotator_client, fine_grained):
    start, end = offsets_of(TEXT, "ten million copies")
    draft_op(annotator_client, fine_grained, op="add_span", start=start, end=end, type="Unverifiable", draft_version=0)
    response = draft_op(annotator_client, fine_grained, op="add_span", start=start - 5, end=start + 3, type="Irrelevant", draft_version=1)
    html = response.content.decode()
    assert response.status_code == 422
    assert "Draft saved" not in html
    assert 'data-state="refused"' in html and "Not applied" in html


def test_it_says_draft_restored_only_when_there_is_a_draft(annotator_client, fine_grained):
    page = annotator_client.get(reverse("annotation:annotate", args=[fine_grained.pk])).content.decode()
    assert "Autosave on" in page and "Draft restored" not in page
    draft_op(annotator_client, fine_grained, **{"corrected-prediction": "Half done.", "draft_version": 0})
    page = annotator_client.get(reverse("annotation:annotate", args=[fine_grained.pk])).content.decode()
    assert "Draft restored" in page
    fields = open_page(annotator_client, fine_grained)
    annotator_client.post(reverse("annotation:annotate_submit", args=[fine_grained.pk]), {**fields, "corrected-prediction": "Done."}, **HTMX)
    page = annotator_client.get(reverse("annotation:annotate", args=[fine_grained.pk])).content.decode()
    assert "Draft restored" not in page
    assert "Showing what you submitted" in page


def test_it_reopens_submitted_work_with_what_was_stored(annotator_client, fine_grained):
    start, end = offsets_of(TEXT, "ten million copies")
    draft_op(annotator_client, fine_grained, op="add_span", start=start, end=end, type=UNVERIFIABLE, draft_version=0)
    fields = open_page(annotator_client, fine_grained)
    annotator_client.post(reverse("annotation:annotate_submit", args=[fine_grained.pk]), {**fields, "corrected-prediction": "Kept."}, **HTMX)
    html = annotator_client.get(reverse("annotation:annotate", args=[fine_grained.pk])).content.decode()
    assert f'data-start="{start}" data-end="{end}" data-index="0"' in html
    assert ">Kept.</textarea>" in html
    assert hidden(html, "version") == "1"
    assert "Submit changes" in html


def test_it_warns_about_intransitive_answers_while_autosaving(annotator_client, comparison):
    answers = {"pair-0": "first", "pair-1": "second", "pair-3": "first", "draft_version": 0}  # 1>2, 3>1, 2>3
    html = draft_op(annotator_client, comparison, **answers).content.decode()
    assert "These answers go in a circle" in html and "1 &gt; 2, 2 &gt; 3, 3 &gt; 1" in html
    comparison.refresh_from_db()
    assert comparison.draft == {"preference": [1, 2, None, 1, None, None]}


def test_it_submits_a_comparison_as_the_preference_list(annotator_client, comparison):
    fields = open_page(annotator_client, comparison)
    answers = dict(zip([f"pair-{i}" for i in range(6)], ["first", "second", "equal", "first", "first", "second"]))
    response = annotator_client.post(reverse("annotation:annotate_submit", args=[comparison.pk]), {**fields, **answers}, **HTMX)
    assert response["HX-Redirect"] == reverse("annotation:my_work")
    assert Comparison.objects.get().preference == [1, 2, 0, 1, 1, 2]


def test_it_refuses_an_unfinished_comparison(annotator_client, comparison):
    fields = open_page(annotator_client, comparison)
    response = annotator_client.post(reverse("annotation:annotate_submit", args=[comparison.pk]), {**fields, "pair-0": "first"}, **HTMX)
    assert response.status_code == 422
    assert "response 1 vs 3 is not answered" in response.content.decode()


def test_it_skips_to_the_next_item(annotator_client, fine_grained):
    response = annotator_client.post(reverse("annotation:annotate_skip", args=[fine_grained.pk]))
    following = Assignment.objects.exclude(pk=fine_grained.pk).get()
    assert response.url == reverse("annotation:annotate", args=[following.pk])
    assert annotator_client.get(reverse("annotation:annotate", args=[fine_grained.pk])).url == reverse("annotation:my_work")


def test_it_lists_only_the_annotators_own_work(annotator_client, fine_grained, make_user):
    other = make_user("otto", role="annotator")
    fine_grained.campaign.annotators.add(other)
    theirs = assignment_next(campaign=fine_grained.campaign, annotator=other)
    html = annotator_client.get(reverse("annotation:my_work")).content.decode()
    assert reverse("annotation:annotate", args=[fine_grained.pk]) in html
    assert reverse("annotation:annotate", args=[theirs.pk]) not in html
