"""The annotation page's reads: the item with its example's responses, and passages read once, when asked for."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.models import Assignment, Response
from annotation.selectors.annotate import (
    assignment_for_page,
    example_passages,
    example_responses,
    response_of,
    stored_comparison,
    stored_fine_grained,
)
from annotation.services.campaigns import assignment_next
from annotation.services.feedback import comparison_submit, fine_grained_feedback_submit
from tests.annotation.annotate_data import PASSAGES, RESPONSES, make_campaign, make_dataset, offsets_of

pytestmark = pytest.mark.django_db


def _item(annotator):
    campaign = make_campaign(make_dataset(examples=1), [annotator])
    return assignment_next(campaign=campaign, annotator=annotator)


def test_the_item_comes_with_its_responses_in_number_order_and_reads_nothing_more(annotator):
    item = _item(annotator)
    Response.objects.filter(example=item.example, number=2).update(reward_segments=[{"source": "x", "segments": []}])
    with CaptureQueriesContext(connection) as captured:
        page = assignment_for_page(assignment_id=item.pk)
    assert len(captured) == 1  # the item with its campaign, example, dataset and responses

    with CaptureQueriesContext(connection) as captured:
        responses = example_responses(page.example)
        assert [r.number for r in responses] == sorted(RESPONSES)
        assert [r.text for r in responses] == [RESPONSES[n] for n in sorted(RESPONSES)]
        assert response_of(page.example, 3).text == RESPONSES[3]
        assert response_of(page.example, 9) is None
        assert all(r.example is page.example for r in responses)
        # JSON columns come back decoded, as through the ORM.
        assert responses[1].reward_segments == [{"source": "x", "segments": []}]
        assert page.campaign.pk == item.campaign_id and page.example.dataset.name == "bloom"
    assert len(captured) == 0


def _values(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def test_every_instance_holds_what_the_orm_would_have_given(annotator):
    item = _item(annotator)
    Assignment.objects.filter(pk=item.pk).update(draft={"errors": [], "corrected-prediction": "é ✓"}, draft_version=7)
    page = assignment_for_page(assignment_id=item.pk)
    orm = Assignment.objects.select_related("campaign", "example__dataset").get(pk=item.pk)
    # Dates aware and JSON decoded on both databases: the converters of the ORM ran.
    assert _values(page) == _values(orm) and page.draft == {"errors": [], "corrected-prediction": "é ✓"}
    assert page.lease_expires_at.tzinfo is not None and not page._state.adding and page._state.db == "default"
    assert _values(page.campaign) == _values(orm.campaign)
    assert _values(page.example) == _values(orm.example)
    assert _values(page.example.dataset) == _values(orm.example.dataset)
    assert [_values(r) for r in example_responses(page.example)] == [
        _values(r) for r in Response.objects.filter(example=orm.example).order_by("number")
    ]


def test_an_example_without_responses_comes_with_none(annotator):
    item = _item(annotator)
    Response.objects.filter(example=item.example).delete()
    page = assignment_for_page(assignment_id=item.pk)
    assert page.pk == item.pk and example_responses(page.example) == [] and response_of(page.example, 1) is None


def test_passages_are_read_once_when_first_asked_for(annotator):
    item = _item(annotator)
    page = assignment_for_page(assignment_id=item.pk)
    with CaptureQueriesContext(connection) as captured:
        assert example_passages(page.example) == PASSAGES
        assert example_passages(page.example) == PASSAGES
    assert len(captured) == 1


def test_an_unknown_item_is_none(annotator):
    assert assignment_for_page(assignment_id=987654) is None


def test_examples_not_loaded_by_the_page_read_their_own(annotator):
    item = _item(annotator)
    example = type(item.example).objects.get(pk=item.example_id)
    assert example_passages(example) == PASSAGES
    assert [r.number for r in example_responses(example)] == sorted(RESPONSES)


def test_an_annotators_stored_work_reads_back_in_list_order_and_nobody_elses(annotator, make_user):
    item = _item(annotator)
    response = response_of(item.example, 1)
    text = response.text
    errors = [
        {"error type": "Redundant", "explanation": "It was released on 31 August 2018.", **dict(zip(("start", "end"), offsets_of(text, "It was released on 31 August 2018.", 2)))},
        {"error type": "Unverifiable", "explanation": "", **dict(zip(("start", "end"), offsets_of(text, "The album sold ten million copies in its first week.")))},
    ]
    errors.sort(key=lambda e: -e["start"])  # stored in the order given, which is not the text's
    feedback = {"errors": errors, "missing-info": [
        {"error type": "Missing-Minor-Auxiliary", "passage_id": 2, "sentence_id": [2]},
        {"error type": "Missing-Major-Auxiliary", "passage_id": 1, "sentence_id": [1, 2]},
    ], "corrected-prediction": "Bloom is the second studio album by Troye Sivan, released on 31 August 2018."}
    fine_grained_feedback_submit(response=response, annotator=annotator, feedback=feedback, submit_token="tok-1", base_version=0)
    other = make_user("olga", role="annotator")
    assert stored_fine_grained(response=response, annotator=other) is None

    stored = stored_fine_grained(response=response, annotator=annotator)
    assert stored.feedback == feedback and stored.record.version == 1 and stored.record.submit_token == "tok-1"

    comparison_submit(example=item.example, annotator=annotator, preference=[1, 2, 0, 1, 1, 2], submit_token="tok-2", base_version=0)
    assert stored_comparison(example=item.example, annotator=other) is None
    assert stored_comparison(example=item.example, annotator=annotator).preference == [1, 2, 0, 1, 1, 2]
