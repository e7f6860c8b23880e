"""Reads for the annotation pages."""

from dataclasses import dataclass

from django.db import connection

from annotation.models import Assignment, Comparison, Example, FineGrainedFeedback, Passage, Response
from annotation.qa.vocab import RESPONSES

# The qa-feedback format puts fine-grained feedback on `prediction 1`; campaign items use that response.
FINE_GRAINED_RESPONSE_NUMBER = RESPONSES[0]


# Kept on an example instance once read: its passages (example_passages) and responses (assignment_for_page).
_PASSAGES = "_granary_passages"
_RESPONSES = "_granary_responses"


def example_passages(example: Example) -> list[list[str]]:
    """Passages in the qa-feedback shape: [[title, sentence 1, sentence 2, ...], ...].

    Read once per example instance, when first asked for: a comparison's
    autosave and submit never ask, and read none.
    """
    loaded = getattr(example, _PASSAGES, None)
    if loaded is None:
        prefetched = getattr(example, "_prefetched_objects_cache", {}).get("passages")
        if prefetched is None:
            loaded = _passages_of(example.pk)
        else:
            loaded = [[passage.title, *passage.sentences] for passage in sorted(prefetched, key=lambda p: p.number)]
        setattr(example, _PASSAGES, loaded)
    return loaded


def example_responses(example: Example) -> list[Response]:
    """The example's responses by number (those assignment_for_page read with it, else a query)."""
    loaded = getattr(example, _RESPONSES, None)
    if loaded is not None:
        return loaded
    return sorted(example.responses.all(), key=lambda r: r.number)


def assignment_for_page(*, assignment_id: int) -> Assignment | None:
    """The assignment with everything its page shows, in as few queries as possible.

    The example's responses come with it; its passages when example_passages()
    first asks. Both are read with one short statement each rather than
    prefetch_related: on every annotation request the prefetch machinery and
    the compiling of its two queries cost about 1.7 ms of CPU against 0.4 ms
    this way (issue 9).
    """
    # get(), not first(): first() orders by Assignment's Meta.ordering, which joins and sorts for nothing here.
    try:
        assignment = Assignment.objects.select_related("campaign", "example", "example__dataset").get(pk=assignment_id)
    except Assignment.DoesNotExist:
        return None
    setattr(assignment.example, _RESPONSES, _responses_of(assignment.example))
    return assignment


def _responses_of(example: Example) -> list[Response]:
    # raw() converts each column as the ORM would (the JSON of reward_segments, dates on SQLite).
    responses = list(
        Response.objects.raw(f"SELECT * FROM {Response._meta.db_table} WHERE example_id = %s ORDER BY number", [example.pk])
    )
    for response in responses:
        response.example = example  # the instance in hand, not a query
    return responses


def _passages_of(example_id: int) -> list[list[str]]:
    sentences = Passage._meta.get_field("sentences")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT title, sentences FROM {Passage._meta.db_table} WHERE example_id = %s ORDER BY number", [example_id])
        rows = cursor.fetchall()
    return [[title, *sentences.from_db_value(value, None, connection)] for title, value in rows]


def response_of(example: Example, number: int) -> Response | None:
    for response in example_responses(example):
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
