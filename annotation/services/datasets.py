"""Writes for datasets: import and export qa-feedback files, streamed.

An import is all or nothing. The file is read one example at a time
(qa.format.RecordReader) and written in batches as it is read, all in one
transaction; the first bad example stops the writing, the reader lists the
problems it finds after it, and the refusal rolls everything back, so a bad
file leaves the database exactly as it was. Memory holds one batch of
examples, whatever the size of the file. On PostgreSQL the rows go in by
COPY and the tables' statistics are refreshed once the import commits. A new
split's rows reference only rows the import creates or locks, so where the
database role may, its per-row foreign key checks are skipped
(bulk.CopySink.trusted_references). The file is read in the transaction's
own thread: a second reading thread was measured on a quiet machine (50k
examples) at 2.2 s more CPU for the lock handovers and 0.9 s more wall time.

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

An attributed import (`annotator=NAME`) makes them NAME's submitted work
instead, creating the account (without a usable password) if needed. The
first feedback file of a split creates its examples as above; a later one
attaches NAME's feedback and preferences to the same examples, matched by
exact question, and is refused, naming the example, when a record's
predictions (or gold answer) differ from the stored ones, or when NAME
already has work on the split. Exported for NAME (in the split's order),
the file comes back byte for byte.

An export streams too: records come from the database a chunk at a time and
are written as they come, so memory stays flat and the first byte goes out
at once.
"""

import gc
import hashlib
import itertools
import json
import os
import re
import tempfile
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from annotation.models import Comparison, Dataset, Example, FineGrainedFeedback, Response
from annotation.qa import format as qa_format
from annotation.qa.errors import BadRequest, Conflict, NotFound
from annotation.qa.agreement import LATEST, MAJORITY
from annotation.qa.format import FEEDBACK, FORMATS, INPUTS, FormatError, Problem, shown
from annotation.qa.vocab import PREDICTION_KEYS, RESPONSES
from annotation.selectors.aggregate import check_rule, iter_disagreement_lines, iter_rule_records
from annotation.selectors.datasets import (
    IMPORT_USER_PREFIX,
    dataset_resolve,
    feedback_records_count,
    input_records_count,
    iter_feedback_records,
    iter_input_records,
    split_examples_count,
)
from annotation.services.bulk import row_sink
from annotation.services.example_rows import AttachedFeedbackRows, FeedbackRows, InputRows, limit_problems

# The export-only format that keeps every annotator's work (JSON lines), beside the two qa-feedback formats.
DISAGREEMENT = "disagreement"
EXPORT_FORMATS = (*FORMATS, DISAGREEMENT)

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
    annotator: str | None = None  # whose annotations the file's feedback became (None: the import account)
    attached: int = 0  # existing examples that gained the annotator's feedback

    def __str__(self) -> str:
        if self.attached:
            how = f"attached to {self.attached} existing examples"
        else:
            how = f"joined to {self.joined} existing examples" if self.joined else f"{self.created} new"
        text = f"Imported {self.examples} examples ({self.format} format, {how}) into {self.dataset}/{self.split}"
        if self.annotator is not None:
            text += f" as {self.annotator}'s annotations"
        if self.format == FEEDBACK:
            text += f" with {self.error_spans} error spans and {self.missing_info} missing-info entries"
        return f"{text} in {self.seconds:.2f} s."


@dataclass(frozen=True)
class ExportSummary:
    dataset: str
    split: str
    format: str
    examples: int  # examples written
    seconds: float
    rule: str | None = None  # the aggregation rule (None for the inputs format)
    annotator: str | None = None  # whose work alone was exported
    left_out: dict[str, int] = field(default_factory=dict)  # examples the rule left out, by reason
    lines: int | None = None  # the disagreement format: lines written (one per example and annotator)

    def describe(self) -> str:
        """What was written and how, in one line (without the destination)."""
        text = f"{self.examples} examples ({self.format} format) of {self.dataset}/{self.split}"
        if self.lines is not None:
            text = f"{self.lines} lines for {text}"
        if self.annotator is not None:
            text += f", {self.annotator}'s annotations"
        elif self.rule is not None:
            left = ", ".join(f"{count} {why}" for why, count in self.left_out.items()) or "none"
            text += f", rule {self.rule}; left out: {left}"
        return text


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


def check_annotator_name(username: str) -> str:
    """The name an attributed import would write for, stripped; BadRequest when no annotator account can have it."""
    User = get_user_model()
    username = username.strip()
    longest = User._meta.get_field("username").max_length
    try:
        User.username_validator(username)
    except ValidationError:
        username_ok = False
    else:
        username_ok = 0 < len(username) <= longest
    if not username_ok:
        raise BadRequest(
            f"annotator {shown(username)} is not a valid username (1-{longest} letters, digits and @ . + - _)",
            field="annotator",
        )
    if username.startswith(IMPORT_USER_PREFIX):
        raise BadRequest(
            f"annotator {shown(username)}: names starting {IMPORT_USER_PREFIX!r} belong to the import accounts",
            field="annotator",
        )
    return username


def annotator_user_for(username: str) -> AbstractBaseUser:
    """The annotator account an attributed import writes for (created, without a usable password, if missing)."""
    user, created = get_user_model().objects.get_or_create(username=check_annotator_name(username))
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
    annotator: str | None = None,
) -> ImportSummary:
    """Import a qa-feedback file (either format, told by its keys) into one split of a dataset.

    With `annotator` (a username; feedback format only) the file's feedback
    and preferences become that annotator's submitted work, attached to the
    split's examples when it already holds the feedback format (see the
    module's docstring). Raises FormatError (bad file, or a record that does
    not match the stored example, with example index and field), BadRequest
    (bad names, format already present in the split, annotator already
    imported) or Conflict (the split changed under the import).
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
            attach = _attach_to(dataset, split, fmt, annotator)
            join = attach or _existing_split(dataset, split, fmt)
            limits = limit_problems(fmt)
            reader.check = limits if join is None else (lambda i, r: limits(i, r) or join.match(i, r))
            # The rows of a new split reference only rows this import creates, plus these.
            references = [(Dataset, dataset.pk)]
            if attach is not None:
                rows = AttachedFeedbackRows(
                    sink, dataset=dataset, split=split, author=attach.author, first_response=attach.first_response
                )
            elif fmt == FEEDBACK:
                author = import_user_for(dataset_name) if annotator is None else annotator_user_for(annotator)
                rows = FeedbackRows(sink, dataset=dataset, split=split, author=author, joined=join is not None)
                references.append((get_user_model(), author.pk))
            else:
                rows = InputRows(sink, dataset=dataset, split=split)
            try:
                if join is None:
                    # A new split: checked foreign keys are not needed (see CopySink.trusted_references),
                    # and its rows are stored while the next batch is read (CopySink.pipelined).
                    with sink.trusted_references(references), _older_objects_frozen(), sink.pipelined():
                        for batch, done in _progressing(reader):
                            rows.write(batch)
                            progress(done)
                else:
                    # Rows that reference existing examples and responses keep every check.
                    for batch, done in _progressing(reader):
                        rows.write(batch, join.take(len(batch)))
                        progress(done)
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
        joined=0 if join is None or attach is not None else reader.count,
        error_spans=rows.error_spans,
        missing_info=rows.missing_info,
        seconds=time.perf_counter() - began,
        annotator=annotator.strip() if annotator is not None else None,
        attached=reader.count if attach is not None else 0,
    )


@contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Keep the garbage collector's full passes off the objects that existed before the import.

    Reading a file creates millions of lists and dicts; each batch lives long
    enough to reach the oldest generation, so full collections keep coming,
    and each one walks every object of the process (Django's, the driver's...)
    to find none of them garbage: for 50,000 examples, 1.1 s of full passes
    against 0.5 s with them frozen (about a tenth of the import's CPU).
    Frozen objects are skipped; garbage made during the import is still
    collected. `unfreeze` puts them back under the collector afterwards.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No automatic garbage collection inside the block (an export's); what is left is collected after it.

    An export makes millions of rows, lists and dicts and frees each chunk's
    as it goes, with no reference cycles among them: the collector's passes
    find nothing, yet they cost a fifth of an export's CPU (50,000 examples:
    12.3 s with them, 9.9 s without). Cycles made meanwhile (Django's own,
    a few per query) wait until the block ends, when collection resumes
    where it was. The objects from before are frozen as for an import.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with _older_objects_frozen():
            yield
    finally:
        if was_enabled:
            gc.enable()


def _progressing(reader: qa_format.RecordReader) -> Iterator[tuple[list[tuple[int, dict]], ImportProgress]]:
    """Batches of BATCH examples, each with the progress of the reading once it was read."""
    batch: list[tuple[int, dict]] = []
    for item in reader:
        batch.append(item)
        if len(batch) == BATCH:
            yield batch, ImportProgress(reader.count, reader.bytes_read, reader.bytes_total)
            batch = []
    if batch:
        yield batch, ImportProgress(reader.count, reader.bytes_read, reader.bytes_total)


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


def _attach_to(dataset: Dataset, split: str, fmt: str, annotator: str | None) -> "_Attach | None":
    """How an attributed import attaches to the split's examples; None when it creates or joins them as usual.

    Refuses `annotator` with a policy-input file, and an annotator who already has work on the split.
    """
    if annotator is None:
        return None
    if fmt != FEEDBACK:
        raise BadRequest(
            f"--annotator applies to feedback-format files; this one is in the {fmt} format", field="annotator"
        )
    author = annotator_user_for(annotator)
    if not Example.objects.filter(dataset=dataset, split=split, has_feedback_format=True).exists():
        return None
    in_split = {"dataset": dataset, "split": split}
    done = len(
        set(
            FineGrainedFeedback.objects.filter(annotator=author, **_within_examples(in_split, "response__example"))
            .values_list("response__example", flat=True)
        )
        | set(
            Comparison.objects.filter(annotator=author, **_within_examples(in_split, "example"))
            .values_list("example", flat=True)
        )
    )
    if done:
        raise BadRequest(
            f"{author.get_username()} already has annotations on {done} examples of {dataset.name}/{split}; "
            "an annotator's file is imported once per split",
            field="annotator",
        )
    return _Attach(dataset, split, author)


def _answers_digest(predictions: list[str], gold: str) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for text in (*predictions, gold):
        encoded = text.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.digest()


def _within_examples(span: dict, path: str) -> dict:
    return {f"{path}__{key}": value for key, value in span.items()}


class _Attach(_Join):
    """Matches an annotator's file to the split's examples by exact question, and checks its answers.

    Each record must carry the stored predictions and gold answer of its
    example (so the annotator's spans point into the same text); the file
    may hold fewer examples than the split. The stored answers are kept as
    one digest per example, so memory stays small whatever the split's size;
    the texts are read again only to name what differs.
    """

    def __init__(self, dataset: Dataset, split: str, author: AbstractBaseUser):
        examples = list(
            Example.objects.filter(dataset=dataset, split=split).order_by("position").values_list("id", "question")
        )
        super().__init__(examples, dataset.name, split, FEEDBACK)
        self.author = author
        self.first_response: dict[int, int] = {}
        texts: dict[int, list[str]] = defaultdict(list)
        responses = (
            Response.objects.filter(example__dataset=dataset, example__split=split, number__in=RESPONSES)
            .order_by("example_id", "number")
            .values_list("example_id", "number", "id", "text", "example__gold")
        )
        self.digests: dict[int, bytes] = {}
        for example_id, number, response_id, text, gold in responses.iterator(chunk_size=2000):
            texts[example_id].append(text)
            if number == RESPONSES[0]:
                self.first_response[example_id] = response_id
            if len(texts[example_id]) == len(RESPONSES):
                self.digests[example_id] = _answers_digest(texts.pop(example_id), gold)

    def match(self, index: int, record: dict) -> list[Problem]:
        problems = super().match(index, record)
        if problems:
            return problems
        example_id = self.matched[-1]
        if self.digests.get(example_id) == _answers_digest([record[key] for key in PREDICTION_KEYS], record["gold"]):
            return []
        example = Example.objects.get(pk=example_id)
        where = f"example {example.number} of {self.where}"
        texts = example.responses.order_by("number").values_list("text", flat=True)
        stored = dict(zip(PREDICTION_KEYS, texts, strict=False))
        for key in PREDICTION_KEYS:
            if record[key] != stored.get(key):
                message = f"differs from {key} of {where} ({shown(stored.get(key))})"
                return [(key, message + "; an annotator's file must hold the stored predictions")]
        return [("gold", f"differs from the gold answer of {where} ({shown(example.gold)})")]

    def _hint(self, message: str) -> str:
        return message + "; an annotator's file attaches only to the split's questions"

    def unmatched(self) -> None:
        # An annotator may have annotated part of the split.
        return None


def dataset_export(
    *,
    dataset: Dataset | str | int,
    split: str,
    fmt: str,
    out: str | Path | IO[str],
    progress: Progress | None = None,
    annotator: str | None = None,
    aggregate: str | None = None,
) -> ExportSummary:
    """Write one split in one format to a path (replaced atomically) or an open text file, streamed.

    The feedback format holds one record per example under the `aggregate`
    rule (selectors.aggregate): by default (`latest`) the examples whose four
    responses, latest submitted fine-grained feedback on response 1 and
    latest submitted comparison all exist; with `annotator` (a username) only
    that annotator's work, byte for byte as it was imported. The inputs
    format holds the examples imported in it. The `disagreement` format
    writes JSON lines, one per (example, annotator), with the aggregated
    record and the example's agreement (selectors.aggregate.iter_disagreement_lines).
    `aggregate` defaults to `latest`, and to `majority` for the disagreement
    format. Records are read a chunk at a time and written one by one, so
    memory does not grow with the split. Raises BadRequest for an unknown
    format, rule or annotator and NotFound when there is nothing to write.
    """
    progress = progress or _no_progress
    began = time.perf_counter()
    aggregate = aggregate or (MAJORITY if fmt == DISAGREEMENT else LATEST)
    if fmt not in EXPORT_FORMATS:
        raise BadRequest(f"unknown format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}", field="fmt")
    check_rule(aggregate)
    dataset = dataset_resolve(dataset)
    author = export_annotator(annotator, fmt, aggregate)
    if fmt == INPUTS:
        total = input_records_count(dataset, split)
    elif author is not None:
        # Exact: one annotator's work may be a small part of the split.
        total = feedback_records_count(dataset, split, annotator=author.pk)
    else:
        # A bound, cheap to take: counting the complete examples first costs PostgreSQL about 0.9 s at 50k
        # examples, 40% of what reading them takes. The bar is made exact once the last record is out.
        total = split_examples_count(dataset, split)
    whose = f" by {author.get_username()}" if author is not None else ""
    nothing = NotFound(f"{dataset.name}/{split} has no examples in the {fmt} format{whose}")
    if not total:
        raise nothing
    written = 0
    lines_written = 0
    left_out: Counter = Counter()

    def records() -> Iterator[dict]:
        nonlocal written
        if fmt == INPUTS:
            rows = iter_input_records(dataset, split)
        elif author is not None:
            rows = iter_feedback_records(dataset, split, annotator=author.pk)
        else:
            rows = iter_rule_records(dataset, split, rule=aggregate, left_out=left_out)
        for record in rows:
            written += 1
            progress(written, max(total, written))
            yield record

    def lines() -> Iterator[dict]:
        nonlocal written, lines_written
        seen = None
        for line in iter_disagreement_lines(dataset, split, rule=aggregate, left_out=left_out):
            if line["example"] != seen:
                written, seen = written + 1, line["example"]
                progress(written, max(total, written))
            lines_written += 1
            yield line

    items = lines() if fmt == DISAGREEMENT else records()
    if fmt == FEEDBACK and aggregate == LATEST:
        # No complete example, no file: the first record tells, before anything is written.
        first = next(items, None)
        if first is None:
            raise nothing
        items = itertools.chain([first], items)

    def write(stream: IO[str]) -> None:
        with _collector_paused():
            stream.writelines(_json_lines(items) if fmt == DISAGREEMENT else qa_format.iter_dump(items, fmt=fmt))

    if isinstance(out, (str, Path)):
        target = Path(out)
        # Write beside the target and rename, so a failed export never leaves half a file behind.
        handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
                write(stream)
            os.chmod(temp_name, 0o644)  # mkstemp's 0600 would make the export private to this account
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
    else:
        write(out)
    if written != total:
        progress(written, written)
    return ExportSummary(
        dataset=dataset.name,
        split=split,
        format=fmt,
        examples=written,
        seconds=time.perf_counter() - began,
        rule=None if fmt == INPUTS else aggregate,
        annotator=None if author is None else author.get_username(),
        left_out=dict(left_out),
        lines=lines_written if fmt == DISAGREEMENT else None,
    )


def export_annotator(annotator: str | None, fmt: str, aggregate: str) -> AbstractBaseUser | None:
    """The account whose own work an export writes (None: no annotator asked for); BadRequest or NotFound."""
    if annotator is None:
        return None
    if fmt != FEEDBACK or aggregate != LATEST:
        raise BadRequest("an annotator's export is in the feedback format, with no aggregation rule", field="annotator")
    user = get_user_model().objects.filter(username=annotator.strip()).first()
    if user is None:
        raise NotFound(f"no annotator named {shown(annotator)}", field="annotator")
    return user


def _json_lines(items: Iterator[dict]) -> Iterator[str]:
    for item in items:
        yield json.dumps(item, ensure_ascii=False, default=str) + "\n"
