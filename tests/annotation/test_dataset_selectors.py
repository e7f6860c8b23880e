"""Reads behind exports and the dataset pages: which feedback a record uses, which examples count."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from annotation.models import Comparison, ErrorSpan, Example, FeedbackStatus, FineGrainedFeedback, Response
from annotation.qa.vocab import FIRST_PREDICTION, INCOHERENT
from annotation.selectors.datasets import (
    dataset_list,
    dataset_split_stats,
    example_previews,
    feedback_records_for,
    input_records_for,
)
from annotation.services.datasets import dataset_import

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
DEMO_FEEDBACK = DEMO_DIR / "qa_feedback_demo.json"
DEMO_INPUTS = DEMO_DIR / "qa_feedback_demo_inputs.json"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashing costs about half a second per account; these tests create several.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def demo():
    dataset_import(path_or_file=DEMO_FEEDBACK, dataset_name="demo", split="dev")
    dataset_import(path_or_file=DEMO_INPUTS, dataset_name="demo", split="dev")
    return json.loads(DEMO_FEEDBACK.read_text())


def annotate(example: Example, annotator, *, status=FeedbackStatus.SUBMITTED, when=None, preference=(0,) * 6):
    """What the annotation pages store for one annotator: feedback on response 1 and a comparison."""
    when = when or timezone.now() + timedelta(minutes=5)
    response = example.responses.get(number=1)
    feedback = FineGrainedFeedback.objects.create(
        response=response, annotator=annotator, corrected_prediction="fixed", status=status, submitted_at=when
    )
    ErrorSpan.objects.create(
        feedback=feedback,
        position=0,
        error_type=INCOHERENT,
        explanation="",
        start=0,
        end=len(response.text.split()[0]),
    )
    Comparison.objects.create(
        example=example, annotator=annotator, preference=list(preference), status=status, submitted_at=when
    )
    return feedback


def test_it_reads_back_the_imported_records(demo):
    assert feedback_records_for("demo", "dev") == demo
    assert [r["question"] for r in input_records_for("demo", "dev")] == [r["question"] for r in demo]


def test_it_uses_the_latest_submitted_feedback_and_comparison(demo, make_user):
    example = Example.objects.get(dataset__name="demo", position=2)
    annotate(example, make_user("ann", role="annotator"), preference=(2, 2, 2, 2, 2, 2))
    record = feedback_records_for("demo", "dev")[2]
    first_word = record[FIRST_PREDICTION].split()[0]
    assert record["feedback"] == {
        "errors": [{"error type": INCOHERENT, "explanation": "", "start": 0, "end": len(first_word)}],
        "missing-info": [],
        "corrected-prediction": "fixed",
    }
    assert record["preference"] == [2, 2, 2, 2, 2, 2]


def test_it_ignores_drafts_and_older_submissions(demo, make_user):
    example = Example.objects.get(dataset__name="demo", position=0)
    annotate(example, make_user("ann", role="annotator"), status=FeedbackStatus.DRAFT)
    annotate(example, make_user("bob", role="annotator"), when=timezone.now() - timedelta(days=1))
    assert feedback_records_for("demo", "dev")[0] == demo[0]


def test_it_leaves_out_examples_without_a_submitted_comparison(demo):
    Comparison.objects.filter(example__position=4).delete()
    records = feedback_records_for("demo", "dev")
    assert len(records) == len(demo) - 1
    assert demo[4] not in records


def test_it_uses_the_first_answer_as_gold_for_examples_imported_as_inputs_only(make_user):
    dataset_import(path_or_file=DEMO_INPUTS, dataset_name="prompts", split="train")
    example = Example.objects.get(dataset__name="prompts", position=0)
    Response.objects.bulk_create(Response(example=example, number=n, text=f"Answer number {n}.") for n in range(1, 5))
    annotate(example, make_user("ann", role="annotator"))
    records = feedback_records_for("prompts", "train")
    assert len(records) == 1
    assert records[0]["gold"] == example.answers[0]
    assert records[0]["passages"] == []


def test_it_reads_records_in_a_fixed_number_of_queries(demo, django_assert_max_num_queries):
    with django_assert_max_num_queries(9):
        assert len(feedback_records_for("demo", "dev")) == len(demo)


def test_it_counts_feedback_per_split_apart_from_imported_feedback(demo, make_user):
    annotate(Example.objects.get(dataset__name="demo", position=1), make_user("ann", role="annotator"))
    [stats] = dataset_split_stats("demo")
    assert (stats.split, stats.examples, stats.feedback_format, stats.input_format) == ("dev", 12, 12, 12)
    assert (stats.feedback_imported, stats.feedback_by_annotators) == (12, 1)
    assert (stats.comparisons_imported, stats.comparisons_by_annotators) == (12, 1)
    assert stats.exportable_feedback == 12


def test_it_lists_datasets_with_their_splits(demo):
    dataset_import(path_or_file=DEMO_INPUTS, dataset_name="demo", split="test")
    [row] = dataset_list()
    assert (row.dataset.name, row.splits, row.examples) == ("demo", [("dev", 12), ("test", 12)], 24)


def test_it_previews_the_first_examples(demo):
    previews = example_previews("demo", "dev", limit=2)
    assert [e.question for e in previews] == [r["question"] for r in demo[:2]]
