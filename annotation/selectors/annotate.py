"""Reads for the annotation pages."""

import functools
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connection, connections

from annotation.models import Assignment, Campaign, Comparison, Dataset, Example, FineGrainedFeedback, Passage, Response
from annotation.qa.vocab import RESPONSES
from annotation.selectors.model_rows import ModelColumns, first_where, starts

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
    """The assignment with everything its page shows, in one statement.

    The campaign, the example with its dataset, and the example's responses
    (one row each, in number order) come with it; the passages when
    example_passages() first asks. Written out (model_rows.py) rather than
    select_related plus a second read: composing and compiling the joined
    queryset cost about 1 ms of CPU on every annotation request (issue 9).
    """
    database = connections[DEFAULT_DB_ALIAS]
    with database.cursor() as cursor:
        cursor.execute(_page_sql(database.vendor), [assignment_id])
        rows = cursor.fetchall()
    if not rows:
        return None
    first = rows[0]
    assignment = _ASSIGNMENT.build(first, _ASSIGNMENT_AT, database)
    campaign = _CAMPAIGN.build(first, _CAMPAIGN_AT, database)
    example = _EXAMPLE.build(first, _EXAMPLE_AT, database)
    dataset = _DATASET.build(first, _DATASET_AT, database)
    Example._meta.get_field("dataset").set_cached_value(example, dataset)
    Assignment._meta.get_field("campaign").set_cached_value(assignment, campaign)
    Assignment._meta.get_field("example").set_cached_value(assignment, example)
    responses = [response for row in rows if (response := _RESPONSE.build(row, _RESPONSE_AT, database)) is not None]
    for response in responses:
        Response._meta.get_field("example").set_cached_value(response, example)  # the instance in hand, not a query
    setattr(example, _RESPONSES, responses)
    return assignment


_ASSIGNMENT = ModelColumns(Assignment, "a")
_CAMPAIGN = ModelColumns(Campaign, "c")
_EXAMPLE = ModelColumns(Example, "e")
_DATASET = ModelColumns(Dataset, "d")
_RESPONSE = ModelColumns(Response, "r")
_JOINED = (_ASSIGNMENT, _CAMPAIGN, _EXAMPLE, _DATASET, _RESPONSE)
_ASSIGNMENT_AT, _CAMPAIGN_AT, _EXAMPLE_AT, _DATASET_AT, _RESPONSE_AT = starts(*_JOINED)


@functools.cache
def _page_sql(vendor: str) -> str:
    # One row per response (a row of NULLs for them when there is none), so the item costs one round trip.
    columns = ", ".join(each.select(connection) for each in _JOINED)
    return (
        f"SELECT {columns} FROM {_ASSIGNMENT.table} a"
        f" INNER JOIN {_CAMPAIGN.table} c ON c.id = a.campaign_id"
        f" INNER JOIN {_EXAMPLE.table} e ON e.id = a.example_id"
        f" INNER JOIN {_DATASET.table} d ON d.id = e.dataset_id"
        f" LEFT OUTER JOIN {_RESPONSE.table} r ON r.example_id = e.id"
        " WHERE a.id = %s ORDER BY r.number"
    )


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
    # One row at most (unique per response and annotator), read from its own table: Meta.ordering's sort would
    # join the response, its example and the dataset. Written out (model_rows.py): every page open asks.
    record = first_where(FineGrainedFeedback, response_id=response.pk, annotator_id=annotator.pk)
    if record is None:
        return None
    feedback = {
        "errors": [
            {"error type": e.error_type, "explanation": e.explanation, "start": e.start, "end": e.end}
            for e in record.errors.order_by("position")
        ],
        "missing-info": [
            {"error type": m.error_type, "passage_id": m.passage_id, "sentence_id": list(m.sentence_ids)}
            for m in record.missing_info.order_by("position")
        ],
        "corrected-prediction": record.corrected_prediction,
    }
    return StoredFineGrained(record, feedback)


def stored_comparison(*, example: Example, annotator) -> Comparison | None:
    return first_where(Comparison, example_id=example.pk, annotator_id=annotator.pk)  # unique; see above
