"""Writes for datasets: import and export qa-feedback files, streamed.

An import is all or nothing. The file is read one example at a time
(qa.format.RecordReader) and written in batches as it is read, all in one
transaction; the first bad example stops the writing, the reader lists the
problems it finds after it, and the refusal rolls everything back, so a bad
file leaves the database exactly as it was. Memory holds one batch of
examples, whatever the size of the file. On PostgreSQL the rows go in by
COPY and the tables' statistics are refreshed once the import commits.

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

An export streams too: records come from the database a chunk at a time and
are written as they come, so memory stays flat and the first byte goes out
at once.
"""

import os
import re
import tempfile
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from annotation.models import Dataset, Example
from annotation.qa import format as qa_format
from annotation.qa.errors import BadRequest, Conflict, NotFound
from annotation.qa.format import FEEDBACK, FORMATS, FormatError, Problem, shown
from annotation.selectors.datasets import (
    IMPORT_USER_PREFIX,
    dataset_resolve,
    feedback_records_count,
    input_records_count,
    iter_feedback_records,
    iter_input_records,
)
from annotation.services.bulk import row_sink
from annotation.services.example_rows import FeedbackRows, InputRows, limit_problems

# Examples per batch of writes: enough for COPY to pay, few enough to keep memory small.
BATCH = 1000


@dataclass(frozen=True)
class ImportProgress:
    examples: int  # written so far
    bytes_read: int
    bytes_total: int | None  # None when the source's size is not known


# An export reports (examples written, examples in all).
Progress = Callable[[int, int], None]
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
        message = f"{what} {shown(value)} must be 1-{max_length} letters, digits, hyphens or underscores"
        raise BadRequest(message, field=field)


def check_names(dataset_name: str, split: str) -> None:
    """Refuse (BadRequest) a dataset or split name that cannot be stored."""
    _check_name(dataset_name, "dataset name", _DATASET_MAX, field="dataset")
    _check_name(split, "split", _SPLIT_MAX, field="split")


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


def _no_progress(*args) -> None:
    pass


def dataset_import(
    *,
    path_or_file: str | Path | IO[bytes] | IO[str],
    dataset_name: str,
    split: str,
    user: AbstractBaseUser | None = None,
    progress: Callable[[ImportProgress], None] | None = None,
) -> ImportSummary:
    """Import a qa-feedback file (either format, told by its keys) into one split of a dataset.

    Raises FormatError (bad file, with example index and field), BadRequest
    (bad names, format already present in the split) or Conflict (the split
    changed under the import).
    """
    progress = progress or _no_progress
    began = time.perf_counter()
    check_names(dataset_name, split)
    try:
        with qa_format.RecordReader(path_or_file) as reader, transaction.atomic():
            fmt = reader.format
            sink = row_sink()
            dataset, _ = Dataset.objects.get_or_create(name=dataset_name, defaults={"created_by": user})
            # One import per dataset at a time: the join below reads the split and then rewrites it.
            Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
            join = _existing_split(dataset, split, fmt)
            limits = limit_problems(fmt)
            reader.check = limits if join is None else (lambda i, r: limits(i, r) or join.match(i, r))
            if fmt == FEEDBACK:
                rows = FeedbackRows(
                    sink, dataset=dataset, split=split, author=import_user_for(dataset_name), joined=join is not None
                )
            else:
                rows = InputRows(sink, dataset=dataset, split=split)
            try:
                for batch in _batches(reader):
                    rows.write(batch, None if join is None else join.take(len(batch)))
                    progress(ImportProgress(reader.count, reader.bytes_read, reader.bytes_total))
            except FormatError as exc:
                # Examples of the split that found no record are a problem too, once the whole file is read.
                left = join.unmatched() if join is not None and reader.finished else None
                raise exc if left is None else FormatError.joined(exc, left) from None
            if join is not None:
                left = join.unmatched()
                if left is not None:
                    raise FormatError(left[2], field=left[1])
            transaction.on_commit(sink.analyze)
    except IntegrityError as exc:
        raise Conflict(f"{dataset_name}/{split} changed during the import ({exc}); try again") from None

    return ImportSummary(
        dataset=dataset_name,
        split=split,
        format=fmt,
        examples=reader.count,
        created=reader.count if join is None else 0,
        joined=0 if join is None else reader.count,
        error_spans=rows.error_spans,
        missing_info=rows.missing_info,
        seconds=time.perf_counter() - began,
    )


def _batches(reader: qa_format.RecordReader) -> Iterator[list[tuple[int, dict]]]:
    batch: list[tuple[int, dict]] = []
    for item in reader:
        batch.append(item)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _existing_split(dataset: Dataset, split: str, fmt: str) -> "_Join | None":
    """How to join a file onto the split's examples, or None when the split is new.

    Refuses a format the split already holds.
    """
    existing = list(
        Example.objects.filter(dataset=dataset, split=split)
        .order_by("position")
        .values_list("id", "question", "has_feedback_format", "has_input_format")
    )
    flag = 2 if fmt == FEEDBACK else 3
    count = sum(1 for row in existing if row[flag])
    if count:
        raise BadRequest(
            f"{dataset.name}/{split} already holds the {fmt} format ({count} examples); "
            "import into a new split instead (existing examples may carry annotators' feedback)"
        )
    return _Join(existing, dataset.name, split, fmt) if existing else None


class _Join:
    """Matches a file's records to a split's existing examples by exact question, one to one.

    Repeated questions pair up in order (the k-th occurrence with the k-th).
    """

    def __init__(self, existing: Sequence[tuple[int, str, bool, bool]], dataset_name: str, split: str, fmt: str):
        self.where = f"{dataset_name}/{split}"
        self.fmt = fmt
        self.waiting: dict[str, deque[int]] = defaultdict(deque)
        for example_id, question, *_ in existing:
            self.waiting[question].append(example_id)
        self.matched: deque[int] = deque()

    def _hint(self, message: str) -> str:
        return message + f"; a {self.fmt}-format file joins an existing split only when it holds the same questions"

    def match(self, index: int, record: dict) -> list[Problem]:
        queue = self.waiting.get(record["question"])
        if queue:
            self.matched.append(queue.popleft())
            return []
        return [("question", self._hint(f"no example of {self.where} has this question ({shown(record['question'])})"))]

    def take(self, count: int) -> list[int]:
        return [self.matched.popleft() for _ in range(count)]

    def unmatched(self) -> tuple[None, str, str] | None:
        """The problem (index, field, message) of the split's examples that found no record, if any."""
        left = [(example_id, question) for question, queue in self.waiting.items() for example_id in queue]
        if not left:
            return None
        positions = dict(Example.objects.filter(id__in=[i for i, _ in left[:3]]).values_list("id", "position"))
        sample = "; ".join(f"example {positions[i] + 1}: {shown(q)}" for i, q in left[:3] if i in positions)
        return None, "question", self._hint(f"{len(left)} examples of {self.where} have no counterpart in the file ({sample})")


def dataset_export(
    *,
    dataset: Dataset | str | int,
    split: str,
    fmt: str,
    out: str | Path | IO[str],
    progress: Progress | None = None,
) -> ExportSummary:
    """Write one split in one format to a path (replaced atomically) or an open text file, streamed.

    The feedback format holds the examples whose four responses, latest
    submitted fine-grained feedback on response 1 and latest submitted
    comparison all exist; the inputs format holds the examples imported in it.
    Records are read a chunk at a time and written one by one, so memory does
    not grow with the split. Raises BadRequest for an unknown format and
    NotFound when there is nothing to write.
    """
    progress = progress or _no_progress
    began = time.perf_counter()
    if fmt not in FORMATS:
        raise BadRequest(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", field="fmt")
    dataset = dataset_resolve(dataset)
    total = feedback_records_count(dataset, split) if fmt == FEEDBACK else input_records_count(dataset, split)
    if not total:
        raise NotFound(f"{dataset.name}/{split} has no examples in the {fmt} format")
    written = 0

    def records() -> Iterator[dict]:
        nonlocal written
        rows = iter_feedback_records(dataset, split) if fmt == FEEDBACK else iter_input_records(dataset, split)
        for record in rows:
            written += 1
            progress(written, max(total, written))
            yield record

    def pieces() -> Iterator[str]:
        return qa_format.iter_dump(records(), fmt=fmt)

    if isinstance(out, (str, Path)):
        target = Path(out)
        # Write beside the target and rename, so a failed export never leaves half a file behind.
        handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
                stream.writelines(pieces())
            os.chmod(temp_name, 0o644)  # mkstemp's 0600 would make the export private to this account
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
    else:
        out.writelines(pieces())
    return ExportSummary(
        dataset=dataset.name, split=split, format=fmt, examples=written, seconds=time.perf_counter() - began
    )
