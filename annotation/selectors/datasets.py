"""Reads for datasets: qa-feedback records, split statistics, the example list and one example's annotations."""

import json
from collections.abc import Iterator
from dataclasses import dataclass

from django.core.exceptions import EmptyResultSet
from django.db.models import Count, Exists, F, IntegerField, Lookup, OuterRef, Prefetch, Q, QuerySet, Subquery, TextField
from django.db.models.functions import Cast, Coalesce, Left

from annotation.models import (
    Comparison,
    Dataset,
    ErrorSpan,
    ErrorType,
    Example,
    FeedbackStatus,
    FineGrainedFeedback,
    MissingInfo,
    Passage,
    Response,
)
from annotation.qa import format as qa_format
from annotation.qa.drafts import parse_grounding, response_segments
from annotation.qa.preferences import VALUE_ANSWERS
from annotation.qa.vocab import PREFERENCE_PAIRS, REDUNDANT, RESPONSES, WRONG_GROUNDING
from annotation.selectors.annotate import FINE_GRAINED_RESPONSE_NUMBER
from annotation.selectors.read_ahead import read_ahead

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


def feedback_complete_examples(
    dataset: Dataset | str | int, split: str, *, annotator: int | None = None
) -> QuerySet[Example]:
    """Examples that make a whole feedback-format record, in feedback-file order.

    Complete means: responses 1-4, a submitted fine-grained feedback on
    response 1 and a submitted comparison (by `annotator`, a user id, when given).
    """
    dataset = dataset_resolve(dataset)
    by = {} if annotator is None else {"annotator_id": annotator}
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
                    **by,
                )
            ),
            has_comparison=Exists(
                Comparison.objects.filter(example=OuterRef("pk"), status=FeedbackStatus.SUBMITTED, **by)
            ),
        )
        .filter(n_responses=N_RESPONSES, has_feedback=True, has_comparison=True)
        .order_by("position")
    )


def feedback_records_for(dataset: Dataset | str | int, split: str) -> list[dict]:
    """The split as feedback-format records, in a list; see iter_feedback_records."""
    return list(iter_feedback_records(dataset, split))


def feedback_records_count(dataset: Dataset | str | int, split: str, *, annotator: int | None = None) -> int:
    """How many records iter_feedback_records gives (one query)."""
    return feedback_complete_examples(dataset, split, annotator=annotator).count()


def feedback_records_exist(dataset: Dataset | str | int, split: str) -> bool:
    """Whether iter_feedback_records gives any record: stops at the first complete example."""
    return feedback_complete_examples(dataset, split).order_by().exists()


def split_examples_count(dataset: Dataset | str | int, split: str) -> int:
    """Examples in the split, whatever their formats (an index-only count)."""
    return Example.objects.filter(dataset=dataset_resolve(dataset), split=split).count()


# Examples read per round by the record iterators: memory holds one chunk, whatever the split's size.
FEEDBACK_CHUNK = 1000
INPUTS_CHUNK = 2000


def iter_feedback_records(
    dataset: Dataset | str | int, split: str, *, chunk_size: int | None = None, annotator: int | None = None
) -> Iterator[dict]:
    """The split as feedback-format records (keys in file order), complete examples only, by position.

    Each record uses the most recently submitted fine-grained feedback on
    response 1 and the most recently submitted comparison of its example, so
    re-annotation supersedes imported feedback; with `annotator` (a user id)
    only that annotator's work counts. Examples are read `chunk_size`
    at a time (seven queries a chunk: the examples keyed on position, their
    children on their parents' ids, each on an index), so memory holds one
    chunk whatever the size of the split; rows are read as plain values, not
    model objects.
    """
    dataset = dataset_resolve(dataset)
    chunk_size = chunk_size or FEEDBACK_CHUNK
    by = {} if annotator is None else {"annotator_id": annotator}

    def chunks() -> Iterator[_FeedbackChunk]:
        after = -1
        while True:
            examples = list(
                Example.objects.filter(dataset=dataset, split=split, position__gt=after)
                .order_by("position")
                .values_list("id", "position", "question", "gold", "has_feedback_format", _json_text("answers"))[
                    :chunk_size
                ]
            )
            if not examples:
                return
            after = examples[-1][1]
            yield _read_feedback_chunk(examples, by)

    # The next chunk's queries run while this one's records are written (see selectors.read_ahead).
    for chunk in read_ahead(chunks()):
        yield from chunk.records()


def _first_of_each(rows) -> dict:
    """{key: rest of the row} keeping the first row of each key (rows come newest first)."""
    first: dict = {}
    for row in rows:
        if row[0] not in first:
            first[row[0]] = row[1:]
    return first


def _grouped(rows) -> dict:
    """{key: [rest of each row]}, rows in the order they come (an export groups a million rows)."""
    grouped: dict = {}
    for row in rows:
        rest = row[1:]
        try:
            grouped[row[0]].append(rest)
        except KeyError:
            grouped[row[0]] = [rest]
    return grouped


class AnyOf(Lookup):
    """`column IN (ids)` for a chunk's ids, used as `filter(AnyOf(F("example_id"), ids))`.

    On PostgreSQL the ids go as one array literal (`= ANY('{1,2,...}'::bigint[])`):
    Django's `__in` would prepare, bind and quote a thousand parameters one by
    one, and the driver's list adapter is pure Python; both cost more CPU than
    the query itself.
    """

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        ids = [int(i) for i in self.rhs]
        if not ids:
            raise EmptyResultSet
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::bigint[])", [*params, "{" + ",".join(map(str, ids)) + "}"]
        return f"{lhs} IN ({', '.join(['%s'] * len(ids))})", [*params, *ids]


def _json_text(field: str) -> Cast:
    """A JSON column read as its text, for _loads: cheaper than Django's decoding, row by row."""
    return Cast(field, output_field=TextField())


_raw_decode = json.JSONDecoder().raw_decode


def _loads(text: str):
    """json.loads(text), without its two whitespace scans around the C scanner: databases write JSON without
    surrounding whitespace. Anything else goes to json.loads itself (which refuses what it must)."""
    try:
        value, end = _raw_decode(text)
    except json.JSONDecodeError:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


@dataclass
class _FeedbackChunk:
    """The rows of one chunk of examples that its records are made of (see _read_feedback_chunk)."""

    examples: list[tuple]
    responses: dict
    chosen: dict
    comparisons: dict
    passages: dict
    errors: dict
    missing: dict

    def records(self) -> Iterator[dict]:
        """The chunk's complete examples as feedback-format records, in order."""
        no_rows: list = []
        for example_id, _, question, gold, has_feedback_format, answers in self.examples:
            if example_id not in self.chosen:
                continue
            feedback_id, corrected = self.chosen[example_id]
            if not has_feedback_format:
                answers = _loads(answers)
                gold = answers[0] if answers else gold
            yield qa_format.feedback_record_of_rows(
                question=question,
                passages=[[title, *_loads(sentences)] for title, sentences in self.passages.get(example_id, no_rows)],
                gold=gold,
                predictions=[text for _, text in self.responses[example_id]],
                errors=self.errors.get(feedback_id, no_rows),
                missing_info=[(t, p, _loads(s)) for t, p, s in self.missing.get(feedback_id, no_rows)],
                corrected_prediction=corrected,
                preference=_loads(self.comparisons[example_id][0]),
            )


def _read_feedback_chunk(examples: list[tuple], by: dict) -> _FeedbackChunk:
    """The rows behind the records of one chunk of examples (rows of id, position, question, gold,
    has_feedback_format and the answers as JSON text).

    Children are selected by the ids of their parents (the chunk's examples,
    then its answers and chosen feedback), so each query is a scan of the
    child's foreign-key index, in the order it is read. Joining back to the
    examples' position range instead lets PostgreSQL's planner pick plans that
    scan the whole split (in parallel workers) for every chunk. Passages,
    spans and missing information are read for complete examples only.
    """
    responses = _grouped(
        Response.objects.filter(AnyOf(F("example_id"), [row[0] for row in examples]), number__in=RESPONSES)
        .order_by("example_id", "number")
        .values_list("example_id", "id", "text")
    )
    # Only examples with all four answers need their annotations; the first answer is the one annotated.
    first = {answered[0][0]: example_id for example_id, answered in responses.items() if len(answered) == N_RESPONSES}
    feedback = _first_of_each(
        FineGrainedFeedback.objects.filter(AnyOf(F("response_id"), first), status=FeedbackStatus.SUBMITTED, **by)
        .order_by("response_id", *_LATEST)
        .values_list("response_id", "id", "corrected_prediction")
    )
    comparisons = _first_of_each(
        Comparison.objects.filter(AnyOf(F("example_id"), [first[r] for r in feedback]), status=FeedbackStatus.SUBMITTED, **by)
        .order_by("example_id", *_LATEST)
        .values_list("example_id", _json_text("preference"))
    )
    # Complete: answers 1-4, a submitted feedback on answer 1, a submitted comparison.
    chosen = {first[r]: feedback_row for r, feedback_row in feedback.items() if first[r] in comparisons}
    passages = _grouped(
        Passage.objects.filter(AnyOf(F("example_id"), chosen))
        .order_by("example_id", "number")
        .values_list("example_id", "title", _json_text("sentences"))
    )
    feedback_ids = [feedback_id for feedback_id, _ in chosen.values()]
    errors = _grouped(
        ErrorSpan.objects.filter(AnyOf(F("feedback_id"), feedback_ids))
        .order_by("feedback_id", "position")
        .values_list("feedback_id", "error_type", "explanation", "start", "end")
    )
    missing = _grouped(
        MissingInfo.objects.filter(AnyOf(F("feedback_id"), feedback_ids))
        .order_by("feedback_id", "position")
        .values_list("feedback_id", "error_type", "passage_id", _json_text("sentence_ids"))
    )
    return _FeedbackChunk(examples, responses, chosen, comparisons, passages, errors, missing)


def input_records_for(dataset: Dataset | str | int, split: str) -> list[dict]:
    """The split as policy-input records, in a list; see iter_input_records."""
    return list(iter_input_records(dataset, split))


def _input_examples(dataset: Dataset | str | int, split: str) -> QuerySet[Example]:
    return Example.objects.filter(dataset=dataset_resolve(dataset), split=split, has_input_format=True)


def input_records_count(dataset: Dataset | str | int, split: str) -> int:
    return _input_examples(dataset, split).count()


def iter_input_records(dataset: Dataset | str | int, split: str, *, chunk_size: int | None = None) -> Iterator[dict]:
    """The split as policy-input records (keys in file order), in inputs-file order, read a chunk at a time."""
    rows = (
        _input_examples(dataset, split)
        .order_by("input_position")
        .values_list("policy_text", "answers", "input_passages", "question")
    )
    for text, answer, passages, question in rows.iterator(chunk_size=chunk_size or INPUTS_CHUNK):
        yield qa_format.input_record(text=text, answer=answer, passages=passages, question=question)


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
    # Who has submitted fine-grained feedback in the split, by username: whose own work can be exported.
    annotators: tuple[str, ...] = ()

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
    # Per split and annotator, in one pass: the split's totals, and whose own work can be exported.
    feedback: dict[str, dict[str, int]] = {}
    annotators: dict[str, list[str]] = {}
    for split, username, n in (
        FineGrainedFeedback.objects.filter(response__example__dataset=dataset, status=FeedbackStatus.SUBMITTED)
        .values_list("response__example__split", "annotator__username")
        .annotate(n=Count("id"))
        .order_by("response__example__split", "annotator__username")
    ):
        totals = feedback.setdefault(split, {"n": 0, "imported": 0})
        totals["n"] += n
        totals["imported"] += n if username.startswith(IMPORT_USER_PREFIX) else 0
        annotators.setdefault(split, []).append(username)
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
                annotators=tuple(annotators.get(split, ())),
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


# --- the example list and one example with its annotations ------------------------------


@dataclass(frozen=True)
class ExampleFilters:
    """What the dataset page's example list is narrowed to; empty values filter nothing.

    `feedback` is "yes" (a submitted fine-grained feedback on some response)
    or "no"; `error_type` keeps examples with a submitted span of that type;
    `round` keeps examples with a response of that round (`Response.round`).
    """

    split: str = ""
    text: str = ""
    feedback: str = ""
    error_type: str = ""
    round: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.split or self.text or self.feedback or self.error_type or self.round is not None)


@dataclass(frozen=True)
class ExampleFilterChoices:
    splits: list[str]
    rounds: list[int]
    error_types: list[tuple[str, str]]  # (value, label)


def example_filter_choices(dataset: Dataset | str | int) -> ExampleFilterChoices:
    """The splits and response rounds a dataset holds, and every error type."""
    dataset = dataset_resolve(dataset)
    splits = list(Example.objects.filter(dataset=dataset).values_list("split", flat=True).distinct().order_by("split"))
    rounds = list(
        Response.objects.filter(example__dataset=dataset).values_list("round", flat=True).distinct().order_by("round")
    )
    return ExampleFilterChoices(splits=splits, rounds=rounds, error_types=list(ErrorType.choices))


QUESTION_START = 200  # characters of each question the example list reads


def example_search(dataset: Dataset | str | int, filters: ExampleFilters) -> QuerySet[Example]:
    """The dataset's examples that pass `filters`, by split and then file order (unevaluated, for paging).

    The text search keeps questions holding every word given, in any case.
    """
    dataset = dataset_resolve(dataset)
    examples = Example.objects.filter(dataset=dataset)
    if filters.split:
        examples = examples.filter(split=filters.split)
    for word in filters.text.split():
        examples = examples.filter(question__icontains=word)
    submitted = FineGrainedFeedback.objects.filter(response__example=OuterRef("pk"), status=FeedbackStatus.SUBMITTED)
    if filters.feedback == "yes":
        examples = examples.filter(Exists(submitted))
    elif filters.feedback == "no":
        examples = examples.filter(~Exists(submitted))
    if filters.error_type:
        examples = examples.filter(
            Exists(
                ErrorSpan.objects.filter(
                    feedback__response__example=OuterRef("pk"),
                    feedback__status=FeedbackStatus.SUBMITTED,
                    error_type=filters.error_type,
                )
            )
        )
    if filters.round is not None:
        examples = examples.filter(Exists(Response.objects.filter(example=OuterRef("pk"), round=filters.round)))
    # A page shows the start of each question; a question may be megabytes long, so only that much is read.
    long_fields = ("question", "gold", "policy_text", "answers", "input_passages")
    return examples.defer(*long_fields).annotate(question_start=Left("question", QUESTION_START)).order_by("split", "position")


@dataclass(frozen=True)
class ExampleRow:
    example: Example
    responses: int
    feedback: int  # submitted fine-grained feedback, on any response
    comparisons: int  # submitted comparisons
    error_types: list[str]  # labels of the submitted spans' types, in ErrorType order


def example_rows(examples: list[Example]) -> list[ExampleRow]:
    """Counts for one page of the example list (four queries, whatever the page size)."""
    ids = [example.pk for example in examples]

    def counts(queryset, key: str) -> dict[int, int]:
        return dict(queryset.values_list(key).annotate(n=Count("id")).order_by())

    responses = counts(Response.objects.filter(example__in=ids), "example")
    feedback = counts(
        FineGrainedFeedback.objects.filter(response__example__in=ids, status=FeedbackStatus.SUBMITTED), "response__example"
    )
    comparisons = counts(Comparison.objects.filter(example__in=ids, status=FeedbackStatus.SUBMITTED), "example")
    types: dict[int, set[str]] = {}
    for example_id, error_type in (
        ErrorSpan.objects.filter(feedback__response__example__in=ids, feedback__status=FeedbackStatus.SUBMITTED)
        .values_list("feedback__response__example", "error_type")
        .distinct()
    ):
        types.setdefault(example_id, set()).add(error_type)
    return [
        ExampleRow(
            example=example,
            responses=responses.get(example.pk, 0),
            feedback=feedback.get(example.pk, 0),
            comparisons=comparisons.get(example.pk, 0),
            error_types=[label for value, label in ErrorType.choices if value in types.get(example.pk, ())],
        )
        for example in examples
    ]


@dataclass(frozen=True)
class SpanView:
    number: int  # 1-based, as the annotation page numbers spans
    error_type: str
    label: str
    text: str
    note: str  # what a Repetitive span repeats, or the sentences an Inconsistent Fact contradicts


@dataclass(frozen=True)
class MissingView:
    error_type: str
    label: str
    citation: str
    quotes: list[str]


@dataclass(frozen=True)
class FeedbackView:
    """One annotator's fine-grained feedback on one response, ready to show."""

    record: FineGrainedFeedback
    imported: bool
    segments: list[dict]  # the response in plain and marked runs (drafts.response_segments), marked ones with "span"
    spans: list[SpanView]
    missing: list[MissingView]


def _citation(passage_id: int, sentence_ids: list[int]) -> str:
    """ "passage 2, sentences 1, 3" — sentence 0 is the passage's title."""
    parts = ["title"] if 0 in sentence_ids else []
    numbered = [str(s) for s in sentence_ids if s != 0]
    if numbered:
        parts.append(f"sentence{'s' if len(numbered) > 1 else ''} {', '.join(numbered)}")
    return f"passage {passage_id}, " + ", ".join(parts)


def _span_view(number: int, error: ErrorSpan, text: str) -> SpanView:
    note = ""
    if error.error_type == REDUNDANT and error.explanation:
        note = f"repeats “{error.explanation}”"
    elif error.error_type == WRONG_GROUNDING:
        grounding = parse_grounding(error.explanation)
        note = f"contradicts {_citation(*grounding)}" if grounding else "no sentence cited"
    return SpanView(number, error.error_type, error.get_error_type_display(), text[error.start : error.end], note)


def _missing_view(entry: MissingInfo, passages: list[Passage]) -> MissingView:
    by_number = {passage.number: passage for passage in passages}
    passage = by_number.get(entry.passage_id)
    quotes = []
    if passage is not None:
        lines = [passage.title, *passage.sentences]
        quotes = [lines[s] for s in entry.sentence_ids if 0 <= s < len(lines)]
    return MissingView(entry.error_type, entry.get_error_type_display(), _citation(entry.passage_id, entry.sentence_ids), quotes)


@dataclass(frozen=True)
class ResponseView:
    response: Response
    feedback: list[FeedbackView]


@dataclass(frozen=True)
class ComparisonView:
    record: Comparison
    imported: bool
    answers: list[tuple[int, int, str]]  # (a, b, "a > b" / "b > a" / "a = b" / "") per pair, in the qa-feedback order


@dataclass(frozen=True)
class ExampleAnnotations:
    example: Example
    passages: list[Passage]
    responses: list[ResponseView]
    comparisons: list[ComparisonView]
    previous: int | None  # numbers of the neighbouring examples of the split
    next: int | None


def _answer(a: int, b: int, value: int | None) -> str:
    return {"first": f"{a} > {b}", "second": f"{b} > {a}", "equal": f"{a} = {b}"}.get(VALUE_ANSWERS.get(value, ""), "")


def clip_segments(segments: list[dict], limit: int | None) -> list[dict]:
    """The first `limit` characters of a response cut into runs (all of it when limit is None)."""
    if limit is None:
        return segments
    kept, room = [], limit
    for segment in segments:
        if len(segment["text"]) > room:
            # The run that passes the limit ends the list, cut, and says so.
            kept.append({**segment, "text": segment["text"][:room] + "…", "clipped": True})
            break
        room -= len(segment["text"])
        kept.append(segment)
    return kept


def example_annotations(
    dataset: Dataset | str | int, split: str, number: int, *, clip: int | None = None
) -> ExampleAnnotations | None:
    """Example `number` (1-based) of a split with everything recorded on it, newest first; None if absent.

    `clip` keeps only that many characters of each highlighted response (the page links to the whole).
    """
    dataset = dataset_resolve(dataset)
    feedback = FineGrainedFeedback.objects.select_related("annotator").prefetch_related(
        Prefetch("errors", queryset=ErrorSpan.objects.order_by("position")),
        Prefetch("missing_info", queryset=MissingInfo.objects.order_by("position")),
    )
    example = (
        Example.objects.filter(dataset=dataset, split=split, position=number - 1)
        .select_related("dataset")
        .prefetch_related(
            Prefetch("passages", queryset=Passage.objects.order_by("number")),
            Prefetch(
                "responses",
                queryset=Response.objects.order_by("number").prefetch_related(
                    Prefetch("feedback", queryset=feedback.order_by(*_LATEST))
                ),
            ),
            Prefetch("comparisons", queryset=Comparison.objects.select_related("annotator").order_by(*_LATEST)),
        )
        .first()
    )
    if example is None:
        return None

    def imported(record) -> bool:
        return record.annotator.username.startswith(IMPORT_USER_PREFIX)

    passages = list(example.passages.all())
    responses = []
    for response in example.responses.all():
        views = []
        for record in response.feedback.all():
            spans = [_span_view(number, e, response.text) for number, e in enumerate(record.errors.all(), start=1)]
            segments = clip_segments(
                response_segments(response.text, [{"start": e.start, "end": e.end} for e in record.errors.all()]), clip
            )
            for segment in segments:
                if segment["index"] is not None:
                    segment["span"] = spans[segment["index"]]
            missing = [_missing_view(entry, passages) for entry in record.missing_info.all()]
            views.append(FeedbackView(record, imported(record), segments, spans, missing))
        responses.append(ResponseView(response, views))
    comparisons = [
        ComparisonView(
            record,
            imported(record),
            [(a, b, _answer(a, b, value)) for (a, b), value in zip(PREFERENCE_PAIRS, record.preference)],
        )
        for record in example.comparisons.all()
    ]
    neighbours = Example.objects.filter(dataset=dataset, split=split)
    previous = neighbours.filter(position__lt=example.position).order_by("-position").values_list("position", flat=True).first()
    following = neighbours.filter(position__gt=example.position).order_by("position").values_list("position", flat=True).first()
    return ExampleAnnotations(
        example=example,
        passages=passages,
        responses=responses,
        comparisons=comparisons,
        previous=None if previous is None else previous + 1,
        next=None if following is None else following + 1,
    )
