"""The rows an imported example becomes, written a batch of examples at a time through a RowSink.

A feedback-format example becomes one Example, its Passages, four
Responses, the import account's FineGrainedFeedback on response 1 with its
ErrorSpans and MissingInfo, and one Comparison. A policy-input example
becomes one Example. When the split already holds the other format, the
examples exist: they are updated instead of created (the caller matched
them by question and passes their ids).

Also here: the database's own limits, checked on each example before any
row is written, so a record that cannot be stored is refused by name like
any other bad record instead of failing in the database.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import F, Max
from django.utils import timezone

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
from annotation.qa.format import FEEDBACK, Problem
from annotation.qa.vocab import PREDICTION_KEYS, RESPONSES
from annotation.services.bulk import RowSink

Batch = list[tuple[int, dict]]  # (index in the file, record)


def _largest(model, field_name: str) -> int:
    # The portable range of the field's type, whatever this database enforces (SQLite enforces none):
    # a split must move to PostgreSQL intact.
    field = model._meta.get_field(field_name)
    return BaseDatabaseOperations.integer_field_ranges[field.get_internal_type()][1]


def limit_problems(fmt: str):
    """A check of one valid record against what the database can hold (counts stored in small columns)."""
    if fmt != FEEDBACK:
        return lambda index, record: []
    most_passages = _largest(Passage, "number")
    most_errors = _largest(ErrorSpan, "position")
    most_missing = _largest(MissingInfo, "position")

    def check(index: int, record: dict) -> list[Problem]:
        problems = []
        for where, items, most in (
            ("passages", record["passages"], most_passages),
            ("feedback.errors", record["feedback"]["errors"], most_errors),
            ("feedback.missing-info", record["feedback"]["missing-info"], most_missing),
        ):
            if len(items) > most:
                problems.append((where, f"holds {len(items)} entries; the database stores at most {most}"))
        return problems

    return check


class FeedbackRows:
    """Writes feedback-format examples: new ones, or onto existing examples (`joined`)."""

    def __init__(self, sink: RowSink, *, dataset: Dataset, split: str, author: AbstractBaseUser, joined: bool):
        self.sink = sink
        self.dataset_id = dataset.pk
        self.split = split
        self.author_id = author.pk
        self.now = timezone.now()
        self.error_spans = 0
        self.missing_info = 0
        if joined:
            _move_positions_clear(dataset, split)

    def write(self, batch: Batch, example_ids: list[int] | None = None) -> None:
        records = [record for _, record in batch]
        if example_ids is None:
            example_ids = self.sink.insert(
                Example,
                ("dataset_id", "split", "position", "question", "gold", "has_feedback_format"),
                [(self.dataset_id, self.split, i, r["question"], r["gold"], True) for i, r in batch],
                ids=True,
            )
        else:
            self.sink.update(
                Example,
                ("id", "position", "gold", "has_feedback_format"),
                [(e, i, r["gold"], True) for e, (i, r) in zip(example_ids, batch, strict=True)],
            )
        pairs = list(zip(example_ids, records, strict=True))
        self.sink.insert(
            Passage,
            ("example_id", "number", "title", "sentences"),
            [(e, n, p[0], p[1:]) for e, r in pairs for n, p in enumerate(r["passages"], start=1)],
        )
        (first, first_key), *others = zip(RESPONSES, PREDICTION_KEYS, strict=True)
        columns = ("example_id", "number", "text")
        first_ids = self.sink.insert(Response, columns, [(e, first, r[first_key]) for e, r in pairs], ids=True)
        self.sink.insert(Response, columns, [(e, n, r[key]) for e, r in pairs for n, key in others])
        self.write_annotations(example_ids, first_ids, records)

    def write_annotations(self, example_ids: list[int], first_ids: list[int], records: list[dict]) -> None:
        """The author's submitted feedback on response 1 (ids `first_ids`) and comparison of each example."""
        pairs = list(zip(example_ids, records, strict=True))
        submitted = (FeedbackStatus.SUBMITTED, self.now)
        feedback_ids = self.sink.insert(
            FineGrainedFeedback,
            ("response_id", "annotator_id", "corrected_prediction", "status", "submitted_at"),
            [
                (response_id, self.author_id, r["feedback"]["corrected-prediction"], *submitted)
                for response_id, r in zip(first_ids, records, strict=True)
            ],
            ids=True,
        )
        self._write_details(list(zip(feedback_ids, records, strict=True)))
        self.sink.insert(
            Comparison,
            ("example_id", "annotator_id", "preference", "status", "submitted_at"),
            [(e, self.author_id, r["preference"], *submitted) for e, r in pairs],
        )

    def _write_details(self, pairs: list[tuple[int, dict]]) -> None:
        spans = [
            (f, n, e["error type"], e["explanation"], e["start"], e["end"])
            for f, r in pairs
            for n, e in enumerate(r["feedback"]["errors"])
        ]
        missing = [
            (f, n, m["error type"], m["passage_id"], list(m["sentence_id"]))
            for f, r in pairs
            for n, m in enumerate(r["feedback"]["missing-info"])
        ]
        self.sink.insert(ErrorSpan, ("feedback_id", "position", "error_type", "explanation", "start", "end"), spans)
        self.sink.insert(MissingInfo, ("feedback_id", "position", "error_type", "passage_id", "sentence_ids"), missing)
        self.error_spans += len(spans)
        self.missing_info += len(missing)


class AttachedFeedbackRows(FeedbackRows):
    """Writes only an annotator's feedback and comparison onto examples and responses that exist.

    The caller matched each record to an example (`example_ids`) and checked
    its predictions against the stored responses; `first_response` maps an
    example id to its response 1.
    """

    def __init__(
        self, sink: RowSink, *, dataset: Dataset, split: str, author: AbstractBaseUser, first_response: dict[int, int]
    ):
        super().__init__(sink, dataset=dataset, split=split, author=author, joined=False)
        self.first_response = first_response

    def write(self, batch: Batch, example_ids: list[int] | None = None) -> None:
        assert example_ids is not None, "attached rows go onto existing examples"
        first_ids = [self.first_response[e] for e in example_ids]
        self.write_annotations(example_ids, first_ids, [record for _, record in batch])


def _move_positions_clear(dataset: Dataset, split: str) -> None:
    """Move every position of a split past its current largest, so the feedback file's can be set.

    Unique constraints are checked row by row on PostgreSQL; the new
    positions (below the count) then never meet an old one.
    """
    rows = Example.objects.filter(dataset=dataset, split=split)
    offset = (rows.aggregate(top=Max("position"))["top"] or 0) + 1
    rows.update(position=F("position") + offset)


class InputRows:
    """Writes policy-input examples: new ones, or onto existing examples."""

    error_spans = missing_info = 0
    FIELDS = ("policy_text", "answers", "input_passages", "has_input_format", "input_position")

    def __init__(self, sink: RowSink, *, dataset: Dataset, split: str):
        self.sink = sink
        self.dataset_id = dataset.pk
        self.split = split

    def write(self, batch: Batch, example_ids: list[int] | None = None) -> None:
        fields = [(r["text"], r["answer"], r["passages"], True, i) for i, r in batch]
        if example_ids is None:
            self.sink.insert(
                Example,
                ("dataset_id", "split", "position", "question", *self.FIELDS),
                [(self.dataset_id, self.split, i, r["question"], *f) for (i, r), f in zip(batch, fields, strict=True)],
            )
        else:
            self.sink.update(Example, ("id", *self.FIELDS), [(e, *f) for e, f in zip(example_ids, fields, strict=True)])
