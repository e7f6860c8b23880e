"""Writes for datasets: import and export qa-feedback files.

An import is all or nothing: the whole file is parsed and validated before
anything is written, and the writes happen in one transaction, so a bad file
leaves the database exactly as it was.

A split holds each format at most once. The first import of a split creates
its examples; importing the other format later joins it question by question
(the shared dev.json and dev_feedback.json hold the same questions in
different orders), and each format keeps its own order (`position` for the
feedback file, `input_position` for the inputs file) so both export byte for
byte. Re-importing a format a split already holds is refused rather than
merged or replaced: annotators' feedback hangs off those examples, and a
silent replace would throw it away. Import into a new split instead.

Imported fine-grained feedback and preferences need an author. They belong to
one inactive system account per dataset, `import@<dataset>` (no usable
password, cannot log in), so that they stay apart from what annotators submit.
"""

import io
import os
import re
import tempfile
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
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
from annotation.qa import format as qa_format
from annotation.qa.errors import BadRequest, Conflict, NotFound
from annotation.qa.format import FEEDBACK, FORMATS, FormatError
from annotation.qa.vocab import PREDICTION_KEYS, RESPONSES
from annotation.selectors.datasets import IMPORT_USER_PREFIX, dataset_resolve, feedback_records_for, input_records_for
from annotation.services.feedback import feedback_detail_rows

# (stage, done, total); stages are "validate", "write" and "export".
Progress = Callable[[str, int, int], None]

# Rows per bulk insert round; small enough to report progress, large enough to stay fast.
CHUNK = 100
_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
_SPLIT_MAX = Example._meta.get_field("split").max_length
_DATASET_MAX = Dataset._meta.get_field("name").max_length


@dataclass(frozen=True)
class ImportSummary:
    dataset: str
    split: str
    format: str
    examples: int
    created: int  # new examples
    joined: int  # existing examples that gained this format
    error_spans: int
    missing_info: int
    seconds: float

    def __str__(self) -> str:
        how = f"joined to {self.joined} existing examples" if self.joined else f"{self.created} new"
        text = f"Imported {self.examples} examples ({self.format} format, {how}) into {self.dataset}/{self.split}"
        if self.format == FEEDBACK:
            text += f" with {self.error_spans} error spans and {self.missing_info} missing-info entries"
        return f"{text} in {self.seconds:.2f} s."


@dataclass(frozen=True)
class ExportSummary:
    dataset: str
    split: str
    format: str
    examples: int
    seconds: float


def _check_name(value: str, what: str, max_length: int, *, field: str) -> None:
    if not value or not _NAME.match(value) or len(value) > max_length:
        message = f"{what} {value!r} must be 1-{max_length} letters, digits, hyphens or underscores"
        raise BadRequest(message, field=field)


def import_user_for(dataset_name: str) -> AbstractBaseUser:
    """The inactive account that owns a dataset's imported feedback (created on first use)."""
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=f"{IMPORT_USER_PREFIX}{dataset_name}", defaults={"is_active": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def _noop(stage: str, done: int, total: int) -> None:
    pass


def dataset_import(
    *,
    path_or_file: str | Path | IO[bytes] | IO[str],
    dataset_name: str,
    split: str,
    user: AbstractBaseUser | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import a qa-feedback file (either format, told by its keys) into one split of a dataset.

    Raises FormatError (bad file, with example index and field), BadRequest
    (bad names, format already present in the split) or Conflict (the split
    changed under the import).
    """
    progress = progress or _noop
    began = time.perf_counter()
    _check_name(dataset_name, "dataset name", _DATASET_MAX, field="dataset")
    _check_name(split, "split", _SPLIT_MAX, field="split")
    parsed = qa_format.read_file(path_or_file, progress=lambda done, total: progress("validate", done, total))
    records, fmt = parsed.records, parsed.format

    try:
        with transaction.atomic():
            dataset, _ = Dataset.objects.get_or_create(name=dataset_name, defaults={"created_by": user})
            # One import per dataset at a time: the join below reads the split and then rewrites it.
            Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
            existing = list(
                Example.objects.filter(dataset=dataset, split=split)
                .order_by("position")
                .values_list("id", "question", "has_feedback_format", "has_input_format")
            )
            flag = 2 if fmt == FEEDBACK else 3
            if any(row[flag] for row in existing):
                count = sum(1 for row in existing if row[flag])
                raise BadRequest(
                    f"{dataset_name}/{split} already holds the {fmt} format ({count} examples); "
                    "import into a new split instead (existing examples may carry annotators' feedback)"
                )
            example_ids = _join_by_question(existing, records, dataset_name, split, fmt) if existing else None
            if fmt == FEEDBACK:
                counts = _write_feedback(dataset, split, records, example_ids, progress)
            else:
                counts = _write_inputs(dataset, split, records, example_ids, progress)
    except IntegrityError as exc:
        raise Conflict(f"{dataset_name}/{split} changed during the import ({exc}); try again") from None

    return ImportSummary(
        dataset=dataset_name,
        split=split,
        format=fmt,
        examples=len(records),
        created=len(records) if example_ids is None else 0,
        joined=0 if example_ids is None else len(records),
        error_spans=counts[0],
        missing_info=counts[1],
        seconds=time.perf_counter() - began,
    )


def _join_by_question(
    existing: Sequence[tuple[int, str, bool, bool]], records: list[dict], dataset_name: str, split: str, fmt: str
) -> list[int]:
    """The existing example id for each record, matched by exact question; the match must be one to one.

    Repeated questions pair up in order (the k-th occurrence with the k-th).
    """
    waiting: dict[str, deque[int]] = defaultdict(deque)
    for example_id, question, *_ in existing:
        waiting[question].append(example_id)
    ids = []
    problems: list[tuple[int | None, str | None, str]] = []
    for index, record in enumerate(records):
        queue = waiting.get(record["question"])
        if queue:
            ids.append(queue.popleft())
        else:
            problems.append(
                (index, "question", f"no example of {dataset_name}/{split} has this question ({record['question']!r})")
            )
    left = [(example_id, question) for question, queue in waiting.items() for example_id in queue]
    if left:
        positions = dict(Example.objects.filter(id__in=[i for i, _ in left[:3]]).values_list("id", "position"))
        sample = "; ".join(f"example {positions[i] + 1}: {q!r}" for i, q in left[:3] if i in positions)
        problems.append(
            (
                None,
                "question",
                f"{len(left)} examples of {dataset_name}/{split} have no counterpart in the file ({sample})",
            )
        )
    if problems:
        index, where, message = problems[0]
        raise FormatError(
            message + f"; a {fmt}-format file joins an existing split only when it holds the same questions",
            index=index,
            field=where,
            problems=problems[: qa_format.MAX_PROBLEMS],
        )
    return ids


def _write_inputs(
    dataset: Dataset, split: str, records: list[dict], example_ids: list[int] | None, progress: Progress
) -> tuple[int, int]:
    total = len(records)
    if example_ids is None:
        for begin in range(0, total, CHUNK):
            Example.objects.bulk_create(
                Example(
                    dataset=dataset,
                    split=split,
                    position=index,
                    question=record["question"],
                    policy_text=record["text"],
                    answers=record["answer"],
                    input_passages=record["passages"],
                    has_input_format=True,
                    input_position=index,
                )
                for index, record in enumerate(records[begin : begin + CHUNK], start=begin)
            )
            progress("write", min(begin + CHUNK, total), total)
        return 0, 0
    examples = [
        Example(
            id=example_id,
            policy_text=record["text"],
            answers=record["answer"],
            input_passages=record["passages"],
            has_input_format=True,
            input_position=index,
        )
        for index, (example_id, record) in enumerate(zip(example_ids, records, strict=True))
    ]
    for begin in range(0, total, CHUNK):
        Example.objects.bulk_update(
            examples[begin : begin + CHUNK],
            ["policy_text", "answers", "input_passages", "has_input_format", "input_position"],
        )
        progress("write", min(begin + CHUNK, total), total)
    return 0, 0


def _renumber_for_feedback(dataset: Dataset, split: str, example_ids: list[int]) -> None:
    """Give joined examples their feedback-file positions.

    Unique constraints are checked row by row on PostgreSQL, so positions are
    first moved clear of every current value and then set.
    """
    rows = Example.objects.filter(dataset=dataset, split=split)
    offset = (rows.aggregate(top=Max("position"))["top"] or 0) + 1
    rows.update(position=F("position") + offset)
    Example.objects.bulk_update(
        [Example(id=example_id, position=index) for index, example_id in enumerate(example_ids)],
        ["position"],
        batch_size=500,
    )


def _write_feedback(
    dataset: Dataset, split: str, records: list[dict], example_ids: list[int] | None, progress: Progress
) -> tuple[int, int]:
    author = import_user_for(dataset.name)
    now = timezone.now()
    total = len(records)
    error_count = missing_count = 0
    if example_ids is not None:
        _renumber_for_feedback(dataset, split, example_ids)
    for begin in range(0, total, CHUNK):
        chunk = records[begin : begin + CHUNK]
        if example_ids is None:
            examples = Example.objects.bulk_create(
                Example(
                    dataset=dataset,
                    split=split,
                    position=index,
                    question=record["question"],
                    gold=record["gold"],
                    has_feedback_format=True,
                )
                for index, record in enumerate(chunk, start=begin)
            )
        else:
            examples = [
                Example(id=example_id, gold=record["gold"], has_feedback_format=True)
                for example_id, record in zip(example_ids[begin : begin + CHUNK], chunk, strict=True)
            ]
            Example.objects.bulk_update(examples, ["gold", "has_feedback_format"])

        Passage.objects.bulk_create(
            Passage(example=example, number=number, title=passage[0], sentences=passage[1:])
            for example, record in zip(examples, chunk, strict=True)
            for number, passage in enumerate(record["passages"], start=1)
        )
        responses = Response.objects.bulk_create(
            Response(example=example, number=number, text=record[key])
            for example, record in zip(examples, chunk, strict=True)
            for number, key in zip(RESPONSES, PREDICTION_KEYS, strict=True)
        )
        first_responses = responses[:: len(PREDICTION_KEYS)]
        feedbacks = FineGrainedFeedback.objects.bulk_create(
            FineGrainedFeedback(
                response=response,
                annotator=author,
                corrected_prediction=record["feedback"]["corrected-prediction"],
                status=FeedbackStatus.SUBMITTED,
                submitted_at=now,
            )
            for response, record in zip(first_responses, chunk, strict=True)
        )
        span_rows: list[ErrorSpan] = []
        missing_rows: list[MissingInfo] = []
        for feedback, record in zip(feedbacks, chunk, strict=True):
            spans, missing_entries = feedback_detail_rows(feedback, record["feedback"])
            span_rows += spans
            missing_rows += missing_entries
        errors = ErrorSpan.objects.bulk_create(span_rows)
        missing = MissingInfo.objects.bulk_create(missing_rows)
        Comparison.objects.bulk_create(
            Comparison(
                example=example,
                annotator=author,
                preference=record["preference"],
                status=FeedbackStatus.SUBMITTED,
                submitted_at=now,
            )
            for example, record in zip(examples, chunk, strict=True)
        )
        error_count += len(errors)
        missing_count += len(missing)
        progress("write", begin + len(chunk), total)
    return error_count, missing_count


def dataset_export(
    *,
    dataset: Dataset | str | int,
    split: str,
    fmt: str,
    out: str | Path | IO[str],
    progress: Progress | None = None,
) -> ExportSummary:
    """Write one split in one format to a path (replaced atomically) or an open text file.

    The feedback format holds the examples whose four responses, latest
    submitted fine-grained feedback on response 1 and latest submitted
    comparison all exist; the inputs format holds the examples imported in it.
    Raises BadRequest for an unknown format and NotFound when there is nothing to write.
    """
    progress = progress or _noop
    began = time.perf_counter()
    if fmt not in FORMATS:
        raise BadRequest(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", field="fmt")
    dataset = dataset_resolve(dataset)
    records = feedback_records_for(dataset, split) if fmt == FEEDBACK else input_records_for(dataset, split)
    if not records:
        raise NotFound(f"{dataset.name}/{split} has no examples in the {fmt} format")

    def chunks():
        for done, chunk in enumerate(qa_format.iter_dump(records, fmt=fmt)):
            yield chunk
            progress("export", min(done + 1, len(records)), len(records))

    if isinstance(out, (str, Path)):
        target = Path(out)
        # Write beside the target and rename, so a failed export never leaves half a file behind.
        handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
                stream.writelines(chunks())
            os.chmod(temp_name, 0o644)  # mkstemp's 0600 would make the export private to this account
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
    else:
        out.writelines(chunks())
    return ExportSummary(
        dataset=dataset.name, split=split, format=fmt, examples=len(records), seconds=time.perf_counter() - began
    )


def dataset_dumps(*, dataset: Dataset | str | int, split: str, fmt: str) -> str:
    """The export as one string (for downloads)."""
    buffer = io.StringIO()
    dataset_export(dataset=dataset, split=split, fmt=fmt, out=buffer)
    return buffer.getvalue()
