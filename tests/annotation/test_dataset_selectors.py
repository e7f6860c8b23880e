"""Reads behind exports and the dataset pages: which feedback a record uses, which examples count."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from annotation.models import Comparison, ErrorSpan, Example, FeedbackStatus, FineGrainedFeedback, Response
from annotation.qa.vocab import FIRST_PREDICTION, INCOHERENT, IRRELEVANT, REDUNDANT, WRONG_GROUNDING
from annotation.selectors.datasets import (
    dataset_list,
    dataset_split_stats,
    feedback_records_count,
    feedback_records_for,
    input_records_for,
    iter_feedback_records,
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


def test_it_leaves_out_incomplete_examples_in_every_chunk_as_the_count_does(demo, make_user):
    def at(position: int) -> Example:
        return Example.objects.get(dataset__name="demo", position=position)

    Response.objects.filter(example=at(1), number=3).delete()  # three answers
    Response.objects.filter(example=at(3), number=1).delete()  # no answer 1, the one annotated
    Response.objects.create(example=at(3), number=5, text="A fifth answer, never exported.")
    FineGrainedFeedback.objects.filter(response__example=at(5)).update(status=FeedbackStatus.DRAFT)
    Comparison.objects.filter(example=at(6)).update(status=FeedbackStatus.DRAFT)
    ann = make_user("ann", role="annotator")
    annotate(at(8), ann, preference=(1, 1, 1, 1, 1, 1))
    kept = [0, 2, 4, 7, 8, 9, 10, 11]

    expected = [demo[n] for n in kept]
    for chunk_size in (1, 2, 5, 100):
        records = list(iter_feedback_records("demo", "dev", chunk_size=chunk_size))
        assert [r["question"] for r in records] == [r["question"] for r in expected], chunk_size
        assert records[:4] == expected[:4] and records[5:] == expected[5:]
        assert records[4]["preference"] == [1] * 6 and records[4]["feedback"]["corrected-prediction"] == "fixed"
    assert feedback_records_count("demo", "dev") == len(kept)
    # Only ann's work: the one example ann annotated, in whatever chunk it falls.
    for chunk_size in (1, 3, 100):
        [only] = iter_feedback_records("demo", "dev", chunk_size=chunk_size, annotator=ann.pk)
        assert only["question"] == demo[8]["question"] and only["preference"] == [1] * 6
    assert feedback_records_count("demo", "dev", annotator=ann.pk) == 1


@pytest.mark.parametrize(
    "text",
    ['["plain", "\\u00e9t\\u00e9", "\\ud83d\\ude00"]', '["\\ud800 alone"]', "[123456789012345678901234567890, 1.5]", "[]", ' [1] '],
)
def test_its_json_reader_gives_what_json_loads_gives(text):
    from annotation.selectors.datasets import _loads

    assert _loads(text) == json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        _loads(text + " x")


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
    assert stats.annotators == ("ann", "import@demo")  # whose own work can be exported, by name


def test_it_lists_datasets_with_their_splits(demo):
    dataset_import(path_or_file=DEMO_INPUTS, dataset_name="demo", split="test")
    [row] = dataset_list()
    assert (row.dataset.name, row.splits, row.examples) == ("demo", [("dev", 12), ("test", 12)], 24)


# --- the example list and one example's annotations ---------------------------------


def _numbers(examples) -> list[int]:
    return [example.number for example in examples]


def test_example_search_finds_questions_by_every_word_in_any_case(demo):
    from annotation.selectors.datasets import ExampleFilters, example_search

    assert _numbers(example_search("demo", ExampleFilters())) == list(range(1, 13))
    assert _numbers(example_search("demo", ExampleFilters(text="WHO"))) == [3, 6, 10, 12]
    assert _numbers(example_search("demo", ExampleFilters(text="who  the"))) == [3, 6, 12]
    assert _numbers(example_search("demo", ExampleFilters(text="zebra"))) == []


def test_example_search_filters_by_feedback_error_type_and_round(demo, make_user):
    from annotation.selectors.datasets import ExampleFilters, example_search

    by_type = {
        error_type: [n for n, record in enumerate(demo, start=1) if any(e["error type"] == error_type for e in record["feedback"]["errors"])]
        for error_type in (REDUNDANT, INCOHERENT, WRONG_GROUNDING)
    }
    for error_type, numbers in by_type.items():
        assert _numbers(example_search("demo", ExampleFilters(error_type=error_type))) == numbers
    assert by_type[REDUNDANT] == [2, 7, 12]

    # Every demo example has imported feedback; a draft is not feedback yet.
    assert _numbers(example_search("demo", ExampleFilters(feedback="no"))) == []
    FineGrainedFeedback.objects.filter(response__example__position=4).update(status=FeedbackStatus.DRAFT)
    assert _numbers(example_search("demo", ExampleFilters(feedback="no"))) == [5]
    assert 5 not in _numbers(example_search("demo", ExampleFilters(feedback="yes")))
    assert 5 not in _numbers(example_search("demo", ExampleFilters(error_type=IRRELEVANT)))

    Response.objects.filter(example__position__in=[2, 8], number=2).update(round=1)
    assert _numbers(example_search("demo", ExampleFilters(round=1))) == [3, 9]
    assert len(example_search("demo", ExampleFilters(round=0))) == 12  # their other responses are round 0
    assert _numbers(example_search("demo", ExampleFilters(round=1, text="frankenstein"))) == [3]


def test_example_filter_choices_name_the_splits_and_rounds_there_are(demo):
    from annotation.selectors.datasets import example_filter_choices

    dataset_import(path_or_file=DEMO_INPUTS, dataset_name="demo", split="test")
    Response.objects.filter(example__position=0, number=1).update(round=2)
    choices = example_filter_choices("demo")
    assert choices.splits == ["dev", "test"]
    assert choices.rounds == [0, 2]
    assert (WRONG_GROUNDING, "Inconsistent Fact") in choices.error_types


def test_example_rows_count_responses_feedback_comparisons_and_error_types(demo, make_user, django_assert_max_num_queries):
    from annotation.selectors.datasets import example_rows

    examples = list(Example.objects.filter(dataset__name="demo").order_by("position")[:3])
    annotate(examples[0], make_user("anna"))
    with django_assert_max_num_queries(4):
        rows = example_rows(examples)
    assert [(row.responses, row.feedback, row.comparisons) for row in rows] == [(4, 2, 2), (4, 1, 1), (4, 1, 1)]
    assert rows[1].error_types == ["Repetitive", "Unverifiable"]


def test_example_annotations_show_every_feedback_and_comparison_of_example_n(demo, make_user):
    from annotation.selectors.datasets import example_annotations

    a = example_annotations("demo", "dev", 1)
    assert a.example.question == "Why is the sky blue?" and a.example.number == 1
    assert (a.previous, a.next) == (None, 2)
    assert [view.response.number for view in a.responses] == [1, 2, 3, 4]
    [feedback] = a.responses[0].feedback
    assert feedback.imported and feedback.record.status == FeedbackStatus.SUBMITTED
    record = demo[0]["feedback"]
    assert [span.error_type for span in feedback.spans] == [e["error type"] for e in record["errors"]]
    grounded = next(span for span in feedback.spans if span.error_type == WRONG_GROUNDING)
    assert grounded.label == "Inconsistent Fact" and grounded.note.startswith("contradicts passage ")
    marked = [segment for segment in feedback.segments if segment["index"] is not None]
    assert [segment["span"].number for segment in marked] == sorted(
        range(1, len(record["errors"]) + 1), key=lambda n: record["errors"][n - 1]["start"]
    )
    assert "".join(segment["text"] for segment in feedback.segments) == a.responses[0].response.text
    assert len(feedback.missing) == 1 and feedback.missing[0].quotes
    [comparison] = a.comparisons
    assert comparison.imported
    assert [answer for _a, _b, answer in comparison.answers] == ["2 > 1", "1 > 3", "4 > 1", "2 > 3", "2 > 4", "4 > 3"]

    assert example_annotations("demo", "dev", 12).next is None
    assert example_annotations("demo", "dev", 13) is None
    assert example_annotations("demo", "dev", 0) is None
    assert example_annotations("demo", "nope", 1) is None
