"""Reads for the annotation pages."""

from dataclasses import dataclass

from django.db.models import Prefetch

from annotation.models import Assignment, Comparison, Example, FineGrainedFeedback, Passage, Response
from annotation.qa.vocab import RESPONSES

# The qa-feedback format puts fine-grained feedback on `prediction 1`; campaign items use that response.
FINE_GRAINED_RESPONSE_NUMBER = RESPONSES[0]


def example_passages(example: Example) -> list[list[str]]:
    """Passages in the qa-feedback shape: [[title, sentence 1, sentence 2, ...], ...]."""
    passages = getattr(example, "_prefetched_objects_cache", {}).get("passages")
    if passages is None:
        passages = example.passages.all()
    return [[passage.title, *passage.sentences] for passage in sorted(passages, key=lambda p: p.number)]


def assignment_for_page(*, assignment_id: int) -> Assignment | None:
    """The assignment with everything its page shows, in as few queries as possible."""
    # get(), not first(): first() orders by Assignment's Meta.ordering, which joins and sorts for nothing here.
    try:
        return (
            Assignment.objects.select_related("campaign", "example", "example__dataset")
            .prefetch_related(
                Prefetch("example__passages", queryset=Passage.objects.order_by("number")),
                Prefetch("example__responses", queryset=Response.objects.order_by("number")),
            )
            .get(pk=assignment_id)
        )
    except Assignment.DoesNotExist:
        return None


def response_of(example: Example, number: int) -> Response | None:
    for response in example.responses.all():
        if response.number == number:
            return response
    return None


@dataclass(frozen=True)
class StoredFineGrained:
    record: FineGrainedFeedback
    feedback: dict


def stored_fine_grained(*, response: Response, annotator) -> StoredFineGrained | None:
    """An annotator's own submitted feedback on a response, as a qa-feedback block."""
    # One row at most (unique per response and annotator); order_by() drops Meta.ordering, whose sort joins
    # the response, its example and the dataset.
    record = (
        FineGrainedFeedback.objects.filter(response=response, annotator=annotator)
        .order_by()
        .prefetch_related("errors", "missing_info")
        .first()
    )
    if record is None:
        return None
    feedback = {
        "errors": [
            {"error type": e.error_type, "explanation": e.explanation, "start": e.start, "end": e.end}
            for e in sorted(record.errors.all(), key=lambda e: e.position)
        ],
        "missing-info": [
            {"error type": m.error_type, "passage_id": m.passage_id, "sentence_id": list(m.sentence_ids)}
            for m in sorted(record.missing_info.all(), key=lambda m: m.position)
        ],
        "corrected-prediction": record.corrected_prediction,
    }
    return StoredFineGrained(record, feedback)


def stored_comparison(*, example: Example, annotator) -> Comparison | None:
    return Comparison.objects.filter(example=example, annotator=annotator).order_by().first()  # unique; see above
