"""Reads for datasets: qa-feedback records, split statistics, previews."""

from dataclasses import dataclass

from django.db.models import Count, Exists, F, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from annotation.models import (
    Comparison,
    Dataset,
    ErrorSpan,
    Example,
    FeedbackStatus,
    FineGrainedFeedback,
    MissingInfo,
    Passage,
    Response,
)
from annotation.qa import format as qa_format
from annotation.qa.vocab import RESPONSES
from annotation.selectors.annotate import FINE_GRAINED_RESPONSE_NUMBER

# Imported feedback belongs to the inactive account `import@<dataset>` (see services/datasets.py).
IMPORT_USER_PREFIX = "import@"
N_RESPONSES = len(RESPONSES)

_LATEST = (F("submitted_at").desc(nulls_last=True), "-id")


def dataset_resolve(dataset: Dataset | str | int) -> Dataset:
    """A Dataset from itself, its name or its id; raises Dataset.DoesNotExist."""
    if isinstance(dataset, Dataset):
        return dataset
    if isinstance(dataset, int):
        return Dataset.objects.get(pk=dataset)
    return Dataset.objects.get(name=dataset)


def feedback_complete_examples(dataset: Dataset | str | int, split: str) -> QuerySet[Example]:
    """Examples that make a whole feedback-format record, in feedback-file order.

    Complete means: responses 1-4, a submitted fine-grained feedback on
    response 1 and a submitted comparison.
    """
    dataset = dataset_resolve(dataset)
    responses = (
        Response.objects.filter(example=OuterRef("pk"), number__in=RESPONSES)
        .order_by()
        .values("example")
        .annotate(n=Count("id"))
        .values("n")
    )
    return (
        Example.objects.filter(dataset=dataset, split=split)
        .annotate(
            n_responses=Coalesce(Subquery(responses, output_field=IntegerField()), 0),
            has_feedback=Exists(
                FineGrainedFeedback.objects.filter(
                    response__example=OuterRef("pk"),
                    response__number=FINE_GRAINED_RESPONSE_NUMBER,
                    status=FeedbackStatus.SUBMITTED,
                )
            ),
            has_comparison=Exists(Comparison.objects.filter(example=OuterRef("pk"), status=FeedbackStatus.SUBMITTED)),
        )
        .filter(n_responses=N_RESPONSES, has_feedback=True, has_comparison=True)
        .order_by("position")
    )


def feedback_records_for(dataset: Dataset | str | int, split: str) -> list[dict]:
    """The split as feedback-format records (keys in file order), complete examples only, by position.

    Each record uses the most recently submitted fine-grained feedback on
    response 1 and the most recently submitted comparison of its example, so
    re-annotation supersedes imported feedback. A fixed number of queries,
    whatever the size of the split.
    """
    latest_feedback = (
        FineGrainedFeedback.objects.filter(
            response__number=FINE_GRAINED_RESPONSE_NUMBER, status=FeedbackStatus.SUBMITTED
        )
        .order_by(*_LATEST)
        .prefetch_related(
            Prefetch("errors", queryset=ErrorSpan.objects.order_by("position")),
            Prefetch("missing_info", queryset=MissingInfo.objects.order_by("position")),
        )
    )
    examples = feedback_complete_examples(dataset, split).prefetch_related(
        Prefetch("passages", queryset=Passage.objects.order_by("number")),
        Prefetch(
            "responses",
            queryset=Response.objects.filter(number__lte=N_RESPONSES)
            .order_by("number")
            .prefetch_related(Prefetch("feedback", queryset=latest_feedback, to_attr="submitted_feedback")),
        ),
        Prefetch(
            "comparisons",
            queryset=Comparison.objects.filter(status=FeedbackStatus.SUBMITTED).order_by(*_LATEST),
            to_attr="submitted_comparisons",
        ),
    )
    records = []
    for example in examples:
        responses = list(example.responses.all())
        feedback = responses[0].submitted_feedback[0]
        records.append(
            qa_format.feedback_record(
                question=example.question,
                passages=[[passage.title, *passage.sentences] for passage in example.passages.all()],
                gold=_gold(example),
                predictions=[response.text for response in responses],
                errors=[
                    {"error type": e.error_type, "explanation": e.explanation, "start": e.start, "end": e.end}
                    for e in feedback.errors.all()
                ],
                missing_info=[
                    {"error type": m.error_type, "passage_id": m.passage_id, "sentence_id": m.sentence_ids}
                    for m in feedback.missing_info.all()
                ],
                corrected_prediction=feedback.corrected_prediction,
                preference=example.submitted_comparisons[0].preference,
            )
        )
    return records


def _gold(example: Example) -> str:
    # Examples imported only as policy inputs have no gold; their first reference answer stands in.
    if example.has_feedback_format or not example.answers:
        return example.gold
    return example.answers[0]


def input_records_for(dataset: Dataset | str | int, split: str) -> list[dict]:
    """The split as policy-input records (keys in file order), in inputs-file order."""
    dataset = dataset_resolve(dataset)
    examples = Example.objects.filter(dataset=dataset, split=split, has_input_format=True).order_by("input_position")
    return [
        qa_format.input_record(
            text=example.policy_text, answer=example.answers, passages=example.input_passages, question=example.question
        )
        for example in examples.only("policy_text", "answers", "input_passages", "question")
    ]


@dataclass(frozen=True)
class SplitStats:
    split: str
    examples: int
    feedback_format: int
    input_format: int
    exportable_feedback: int
    feedback_submitted: int
    feedback_imported: int
    comparisons_submitted: int
    comparisons_imported: int

    @property
    def feedback_by_annotators(self) -> int:
        return self.feedback_submitted - self.feedback_imported

    @property
    def comparisons_by_annotators(self) -> int:
        return self.comparisons_submitted - self.comparisons_imported


def dataset_split_stats(dataset: Dataset | str | int) -> list[SplitStats]:
    """Counts per split, in split-name order."""
    dataset = dataset_resolve(dataset)
    imported = Q(annotator__username__startswith=IMPORT_USER_PREFIX)
    examples = {
        row["split"]: row
        for row in Example.objects.filter(dataset=dataset)
        .values("split")
        .annotate(
            n=Count("id"),
            feedback_format=Count("id", filter=Q(has_feedback_format=True)),
            input_format=Count("id", filter=Q(has_input_format=True)),
        )
        .order_by()
    }
    feedback = {
        row["response__example__split"]: row
        for row in FineGrainedFeedback.objects.filter(
            response__example__dataset=dataset, status=FeedbackStatus.SUBMITTED
        )
        .values("response__example__split")
        .annotate(n=Count("id"), imported=Count("id", filter=imported))
        .order_by()
    }
    comparisons = {
        row["example__split"]: row
        for row in Comparison.objects.filter(example__dataset=dataset, status=FeedbackStatus.SUBMITTED)
        .values("example__split")
        .annotate(n=Count("id"), imported=Count("id", filter=imported))
        .order_by()
    }
    stats = []
    for split in sorted(examples):
        row = examples[split]
        stats.append(
            SplitStats(
                split=split,
                examples=row["n"],
                feedback_format=row["feedback_format"],
                input_format=row["input_format"],
                exportable_feedback=feedback_complete_examples(dataset, split).count(),
                feedback_submitted=feedback.get(split, {}).get("n", 0),
                feedback_imported=feedback.get(split, {}).get("imported", 0),
                comparisons_submitted=comparisons.get(split, {}).get("n", 0),
                comparisons_imported=comparisons.get(split, {}).get("imported", 0),
            )
        )
    return stats


@dataclass(frozen=True)
class DatasetRow:
    dataset: Dataset
    splits: list[tuple[str, int]]  # (split, examples)

    @property
    def examples(self) -> int:
        return sum(count for _, count in self.splits)


def dataset_list() -> list[DatasetRow]:
    """Every dataset with its splits and example counts (two queries)."""
    counts: dict[int, list[tuple[str, int]]] = {}
    for row in Example.objects.values("dataset_id", "split").annotate(n=Count("id")).order_by("dataset_id", "split"):
        counts.setdefault(row["dataset_id"], []).append((row["split"], row["n"]))
    return [DatasetRow(dataset=d, splits=counts.get(d.pk, [])) for d in Dataset.objects.order_by("name")]


def example_previews(dataset: Dataset | str | int, split: str, *, limit: int = 3) -> list[Example]:
    """The first examples of a split with their passages and responses, for a glance at the data."""
    dataset = dataset_resolve(dataset)
    return list(
        Example.objects.filter(dataset=dataset, split=split)
        .order_by("position")
        .prefetch_related(
            Prefetch("passages", queryset=Passage.objects.order_by("number")),
            Prefetch("responses", queryset=Response.objects.order_by("number")),
        )[:limit]
    )
