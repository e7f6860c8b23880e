"""Storing annotations: idempotent retries, stale tabs, the import's validation rules."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import AssignmentStatus, CampaignTask, Comparison, ErrorSpan, FineGrainedFeedback
from annotation.qa.vocab import IRRELEVANT, MISSING_ANSWER, REDUNDANT, UNVERIFIABLE, WRONG_GROUNDING
from annotation.services.campaigns import assignment_next, assignment_skip
from annotation.services.feedback import (
    InvalidSubmit,
    LeaseLost,
    StaleSubmit,
    assignment_draft_save,
    comparison_submit,
    fine_grained_feedback_submit,
)
from tests.annotation.annotate_data import RESPONSES, make_campaign, make_dataset, offsets_of

TEXT = RESPONSES[1]


@pytest.fixture
def item(annotator):
    dataset = make_dataset(examples=1)
    campaign = make_campaign(dataset, [annotator], task=CampaignTask.BOTH)
    assignment = assignment_next(campaign=campaign, annotator=annotator)
    return assignment, assignment.example.responses.get(number=1)


def feedback(*errors, missing=(), corrected="A corrected answer."):
    return {"errors": list(errors), "missing-info": list(missing), "corrected-prediction": corrected}


def error(phrase, kind=IRRELEVANT, explanation="", occurrence=1):
    start, end = offsets_of(TEXT, phrase, occurrence)
    return {"error type": kind, "explanation": explanation, "start": start, "end": end}


def test_it_stores_feedback_in_the_qa_feedback_shape(item, annotator):
    assignment, response = item
    block = feedback(
        error("It was released on 31 August 2018.", REDUNDANT, "It was released on 31 August 2018.", occurrence=2),
        error("born in Perth, Australia.", WRONG_GROUNDING, '{"passage_id":2,"sentence_id":[2]}'),
        missing=[{"error type": MISSING_ANSWER, "passage_id": 1, "sentence_id": [2]}],
    )
    result = fine_grained_feedback_submit(
        response=response, annotator=annotator, feedback=block, submit_token="t1", base_version=0, assignment=assignment
    )
    stored = result.record
    assert not result.replayed
    assert (stored.version, stored.status, stored.corrected_prediction) == (1, "submitted", "A corrected answer.")
    assert [(e.position, e.error_type, e.explanation, e.start, e.end) for e in stored.errors.order_by("position")] == [
        (i, e["error type"], e["explanation"], e["start"], e["end"]) for i, e in enumerate(block["errors"])
    ]
    assert [(m.error_type, m.passage_id, m.sentence_ids) for m in stored.missing_info.all()] == [(MISSING_ANSWER, 1, [2])]
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SUBMITTED
    assert assignment.draft == {}


def test_it_stores_one_annotation_when_the_same_submit_arrives_twice(item, annotator):
    assignment, response = item
    block = feedback(error("ten million copies", UNVERIFIABLE))
    first = fine_grained_feedback_submit(
        response=response, annotator=annotator, feedback=block, submit_token="same", base_version=0, assignment=assignment
    )
    again = fine_grained_feedback_submit(
        response=response, annotator=annotator, feedback=block, submit_token="same", base_version=0, assignment=assignment
    )
    assert again.replayed and again.record.pk == first.record.pk
    assert FineGrainedFeedback.objects.count() == 1
    assert ErrorSpan.objects.count() == 1
    assert FineGrainedFeedback.objects.get().version == 1


def test_it_refuses_a_stale_submit_and_keeps_the_newer_annotation(item, annotator):
    _assignment, response = item
    fine_grained_feedback_submit(
        response=response, annotator=annotator, feedback=feedback(corrected="From tab A."), submit_token="a", base_version=0
    )
    with pytest.raises(StaleSubmit, match="submitted in another tab"):
        fine_grained_feedback_submit(
            response=response, annotator=annotator, feedback=feedback(corrected="From tab B."), submit_token="b", base_version=0
        )
    stored = FineGrainedFeedback.objects.get()
    assert (stored.corrected_prediction, stored.version) == ("From tab A.", 1)


def test_it_replaces_an_annotation_submitted_again_on_the_current_version(item, annotator):
    _assignment, response = item
    fine_grained_feedback_submit(
        response=response, annotator=annotator, feedback=feedback(error("first week.")), submit_token="a", base_version=0
    )
    fine_grained_feedback_submit(
        response=response, annotator=annotator, feedback=feedback(error("ten million copies", UNVERIFIABLE)), submit_token="b", base_version=1
    )
    stored = FineGrainedFeedback.objects.get()
    assert stored.version == 2
    assert list(stored.errors.values_list("error_type", flat=True)) == [UNVERIFIABLE]


def test_it_refuses_spans_off_word_boundaries_naming_the_field(item, annotator):
    _assignment, response = item
    start, end = offsets_of(TEXT, "million")
    bad = {"error type": IRRELEVANT, "explanation": "", "start": start + 1, "end": end}
    with pytest.raises(InvalidSubmit) as refused:
        fine_grained_feedback_submit(response=response, annotator=annotator, feedback=feedback(bad), submit_token="t", base_version=0)
    fields = [field for field, _message in refused.value.problems]
    assert "feedback.errors[0].start" in fields
    assert FineGrainedFeedback.objects.count() == 0


def test_it_refuses_overlapping_spans(item, annotator):
    _assignment, response = item
    block = feedback(error("ten million copies"), error("million copies in"))
    with pytest.raises(InvalidSubmit) as refused:
        fine_grained_feedback_submit(response=response, annotator=annotator, feedback=block, submit_token="t", base_version=0)
    assert any("overlaps" in message for _field, message in refused.value.problems)


def test_it_refuses_an_inconsistent_fact_without_its_sentence(item, annotator):
    _assignment, response = item
    with pytest.raises(InvalidSubmit) as refused:
        fine_grained_feedback_submit(
            response=response,
            annotator=annotator,
            feedback=feedback(error("born in Perth, Australia.", WRONG_GROUNDING)),
            submit_token="t",
            base_version=0,
        )
    assert refused.value.problems == [
        ("feedback.errors[0].explanation", "span 1 (Inconsistent Fact): click the passage sentence it contradicts")
    ]


def test_it_refuses_a_grounding_to_a_sentence_that_does_not_exist(item, annotator):
    _assignment, response = item
    block = feedback(error("born in Perth, Australia.", WRONG_GROUNDING, '{"passage_id":2,"sentence_id":[7]}'))
    with pytest.raises(InvalidSubmit) as refused:
        fine_grained_feedback_submit(response=response, annotator=annotator, feedback=block, submit_token="t", base_version=0)
    assert any("sentence 7 does not exist in passage 2" in message for _field, message in refused.value.problems)


def test_it_refuses_a_submit_token_used_by_another_annotation(item, annotator, make_user):
    _assignment, response = item
    other = make_user("otto", role="annotator")
    fine_grained_feedback_submit(response=response, annotator=other, feedback=feedback(), submit_token="shared", base_version=0)
    with pytest.raises(InvalidSubmit, match="another annotation"):
        fine_grained_feedback_submit(response=response, annotator=annotator, feedback=feedback(), submit_token="shared", base_version=0)


def test_it_refuses_a_submit_after_the_item_was_skipped(item, annotator):
    assignment, response = item
    assignment_skip(assignment=assignment)
    with pytest.raises(LeaseLost, match="skipped"):
        fine_grained_feedback_submit(
            response=response, annotator=annotator, feedback=feedback(), submit_token="t", base_version=0, assignment=assignment
        )


def test_it_refuses_a_submit_built_on_an_older_draft(item, annotator):
    assignment, response = item
    assignment_draft_save(assignment=assignment, draft=feedback(corrected="other tab"), base_draft_version=0)
    with pytest.raises(StaleSubmit):
        fine_grained_feedback_submit(
            response=response,
            annotator=annotator,
            feedback=feedback(),
            submit_token="t",
            base_version=0,
            assignment=assignment,
            base_draft_version=0,
        )


def test_it_stores_the_comparison_as_the_preference_list(item, annotator):
    assignment, _response = item
    result = comparison_submit(
        example=assignment.example, annotator=annotator, preference=[1, 2, 0, 1, 1, 2], submit_token="c", base_version=0
    )
    assert Comparison.objects.get().preference == [1, 2, 0, 1, 1, 2]
    replay = comparison_submit(
        example=assignment.example, annotator=annotator, preference=[1, 2, 0, 1, 1, 2], submit_token="c", base_version=0
    )
    assert replay.replayed and replay.record.pk == result.record.pk
    assert Comparison.objects.count() == 1


def test_it_refuses_an_incomplete_or_malformed_comparison(item, annotator):
    assignment, _response = item
    with pytest.raises(InvalidSubmit) as refused:
        comparison_submit(
            example=assignment.example, annotator=annotator, preference=[1, None, 0, 1, None, 2], submit_token="c", base_version=0
        )
    assert [message for _f, message in refused.value.problems] == ["response 1 vs 3 is not answered", "response 2 vs 4 is not answered"]
    with pytest.raises(InvalidSubmit) as refused:
        comparison_submit(example=assignment.example, annotator=annotator, preference=[1, 2, 3, 1, 1, 1], submit_token="d", base_version=0)
    assert refused.value.problems == [("preference[2]", "3 is not 0, 1 or 2 (pair 1-4)")]
    assert Comparison.objects.count() == 0


def test_it_refuses_a_draft_save_from_a_tab_that_fell_behind(item):
    assignment, _response = item
    saved = assignment_draft_save(assignment=assignment, draft=feedback(corrected="one"), base_draft_version=0)
    assert saved.draft_version == 1
    with pytest.raises(StaleSubmit):
        assignment_draft_save(assignment=assignment, draft=feedback(corrected="two"), base_draft_version=0)
    assignment.refresh_from_db()
    assert assignment.draft["corrected-prediction"] == "one"


def test_it_renews_the_lease_when_a_draft_is_saved(item):
    assignment, _response = item
    assignment.lease_expires_at = timezone.now()
    assignment.save()
    saved = assignment_draft_save(assignment=assignment, draft=feedback(), base_draft_version=0)
    assert saved.lease_expires_at > timezone.now() + timedelta(minutes=5)


def test_an_autosave_of_submitted_work_stores_the_draft_and_takes_no_lease(item, annotator):
    assignment, response = item
    fine_grained_feedback_submit(response=response, annotator=annotator, feedback=feedback(), submit_token="t1", base_version=0,
                                 assignment=assignment, base_draft_version=0)
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SUBMITTED and assignment.lease_expires_at is None
    saved = assignment_draft_save(assignment=assignment, draft=feedback(corrected="second thoughts"),
                                  base_draft_version=assignment.draft_version)
    stored = type(assignment).objects.get(pk=assignment.pk)
    assert saved.draft_version == stored.draft_version == assignment.draft_version + 1
    assert stored.draft["corrected-prediction"] == "second thoughts"
    assert stored.status == AssignmentStatus.SUBMITTED and stored.lease_expires_at is None


def _race_lost(monkeypatch):
    """Make the submit read the annotator's row as if a concurrent request had not committed it yet."""
    from annotation.services import feedback as service

    monkeypatch.setattr(service, "_open_submission", lambda model, **kwargs: service._Opened(None, None, None, 0))


def test_a_retry_that_loses_the_race_to_its_twin_returns_the_twins_annotation(item, annotator, monkeypatch):
    assignment, response = item
    first = fine_grained_feedback_submit(response=response, annotator=annotator, feedback=feedback(), submit_token="t1", base_version=0)
    _race_lost(monkeypatch)
    again = fine_grained_feedback_submit(response=response, annotator=annotator, feedback=feedback(), submit_token="t1", base_version=0)
    assert again.replayed and again.record.pk == first.record.pk
    assert FineGrainedFeedback.objects.count() == 1


def test_a_submit_that_loses_the_race_to_another_tab_is_stale(item, annotator, monkeypatch):
    assignment, response = item
    fine_grained_feedback_submit(response=response, annotator=annotator, feedback=feedback(), submit_token="t1", base_version=0)
    _race_lost(monkeypatch)
    with pytest.raises(StaleSubmit, match="it is at version 1, this page has version 0"):
        fine_grained_feedback_submit(response=response, annotator=annotator, feedback=feedback(), submit_token="t2", base_version=0)
    assert FineGrainedFeedback.objects.get().submit_token == "t1"
