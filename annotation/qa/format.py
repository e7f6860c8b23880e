"""The qa-feedback JSON formats: detect, parse, validate, write (byte-exact).

Two formats describe the same questions (FINE_GRAINED_RLHF.md section 1):

- feedback (`dev_feedback.json`): question, passages as [title, sentence...],
  gold, four predictions, fine-grained feedback on prediction 1 and six
  pairwise preferences; written with `json.dumps(records, indent=2)`.
- inputs (`dev.json`): the policy prompt `text`, reference `answer`s,
  raw passages and the question; written with `json.dumps(records, indent=4)`.

Writers rebuild every object in the key order of the shared files, so a
record read from any source (a JSONField that reorders keys, a dict built by
hand) writes back byte for byte. Pure module: no ORM.
"""

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from annotation.qa import jsonstream
from annotation.qa.errors import BadRequest
from annotation.qa.spans import span_problem_items
from annotation.qa.vocab import (
    ERROR_TYPES,
    FIRST_PREDICTION,
    MISSING_INFO_TYPES,
    PREDICTION_KEYS,
    PREFERENCE_PAIRS,
    PREFERENCE_VALUES,
    WRONG_GROUNDING,
)

FEEDBACK = "feedback"
INPUTS = "inputs"
FORMATS = (FEEDBACK, INPUTS)

FEEDBACK_KEYS = ("question", "passages", "gold", *PREDICTION_KEYS, "feedback", "preference")
FEEDBACK_BLOCK_KEYS = ("errors", "missing-info", "corrected-prediction")
ERROR_KEYS = ("error type", "explanation", "start", "end")
MISSING_INFO_KEYS = ("error type", "passage_id", "sentence_id")
INPUT_KEYS = ("text", "answer", "passages", "question")
INPUT_PASSAGE_KEYS = ("content", "wikipage")

FEEDBACK_INDENT = 2
INPUTS_INDENT = 4
# Enough to fix a file in one go without flooding a page or a terminal.
MAX_PROBLEMS = 50

Problem = tuple[str, str]  # (field, message)


class FormatError(BadRequest):
    """A file (or a record in it) that does not follow the format.

    `index` is the 0-based example index (None for whole-file problems),
    `field` the path inside the example (e.g. `feedback.errors[2].end`),
    `problems` every problem found as (index, field, message), first one first.
    A bad request: the upload page answers 400 and lists every problem.
    """

    def __init__(
        self,
        message: str,
        *,
        index: int | None = None,
        field: str | None = None,
        problems: list[tuple[int | None, str | None, str]] | None = None,
    ):
        self.index = index
        self.detail = message
        self.problems = problems if problems is not None else [(index, field, message)]
        super().__init__(_locate(index, field, message), field=field)

    def __str__(self) -> str:
        text = _locate(self.index, self.field, self.detail)
        extra = len(self.problems) - 1
        if extra > 0:
            text += f" (and {extra} more problem{'s' if extra > 1 else ''})"
        return text

    @classmethod
    def joined(cls, first: "FormatError", problem: tuple[int | None, str | None, str]) -> "FormatError":
        """`first` with one more problem after its own."""
        index, field, message = first.problems[0]
        return cls(message, index=index, field=field, problems=[*first.problems, problem][:MAX_PROBLEMS])

    def lines(self) -> list[str]:
        """Every problem as one located line, for pages and terminals."""
        return [_locate(index, field, message) for index, field, message in self.problems]


def _locate(index: int | None, field: str | None, message: str) -> str:
    where = []
    if index is not None:
        # 1-based, as the dataset and annotation pages number examples.
        where.append(f"example {index + 1}")
    if field:
        where.append(f"field {field}")
    return f"{', '.join(where)}: {message}" if where else message


def shown(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut short: a message that quotes what was wrong must stay a line, not a megabyte."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _is_int(value: Any) -> bool:
    # JSON true/false arrive as bool, which Python counts as int; the format never means them as numbers.
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), "null" if value is None else type(value).__name__)


_key_set = lru_cache(maxsize=64)(frozenset)


def _key_problems(obj: Any, keys: tuple[str, ...], where: str) -> list[Problem]:
    """Missing and unexpected keys. Unknown keys are refused: an export could not give them back."""
    if not isinstance(obj, dict):
        return [(where, f"must be an object, not {_type_name(obj)}")]
    if obj.keys() == _key_set(keys):  # the usual case, one set comparison in C
        return []
    prefix = f"{where}." if where else ""
    problems = [(f"{prefix}{key}", "missing key") for key in keys if key not in obj]
    problems += [(f"{prefix}{jsonstream.short_key(key)}", "unexpected key") for key in obj if key not in keys]
    return problems


def _str_problem(value: Any, where: str) -> list[Problem]:
    return [] if isinstance(value, str) else [(where, f"must be a string, not {_type_name(value)}")]


def grounding_explanation(passage_id: int, sentence_ids: Iterable[int]) -> str:
    """The explanation of a WRONG_GROUNDING error (an inconsistent fact), spelled as in the shared data."""
    return json.dumps({"passage_id": passage_id, "sentence_id": list(sentence_ids)}, separators=(",", ":"))


def _sentence_ref_problems(
    passage_id: Any, sentence_ids: Any, passages: list[list[str]], where_passage: str, where_sentences: str
) -> list[Problem]:
    if not _is_int(passage_id):
        return [(where_passage, f"must be a whole number, not {_type_name(passage_id)}")]
    if not 1 <= passage_id <= len(passages):
        have = f"passages 1-{len(passages)}" if passages else "no passages"
        return [(where_passage, f"passage {passage_id} does not exist (the example has {have})")]
    if not isinstance(sentence_ids, list):
        return [(where_sentences, f"must be a list of sentence numbers, not {_type_name(sentence_ids)}")]
    if not sentence_ids:
        return [(where_sentences, "must name at least one sentence")]
    # Sentence ids are 1-based after the title, but 0 (the title line) is accepted: three
    # missing-info entries and two WRONG_GROUNDING explanations in dev_feedback.json use it.
    last = len(passages[passage_id - 1]) - 1
    problems = []
    for k, sentence_id in enumerate(sentence_ids):
        if not _is_int(sentence_id):
            problems.append((f"{where_sentences}[{k}]", f"must be a whole number, not {_type_name(sentence_id)}"))
        elif not 0 <= sentence_id <= last:
            problems.append(
                (
                    f"{where_sentences}[{k}]",
                    f"sentence {sentence_id} does not exist in passage {passage_id} (it has sentences 1-{last})",
                )
            )
    return problems


def validate_feedback_block(feedback: Any, *, prediction: str, passages: list[list[str]]) -> list[Problem]:
    """Problems with one `feedback` object, as (field, message); empty when it is valid.

    Fields are paths from the record (`feedback.errors[2].end`), so the same
    check serves imports (which add the example index) and the annotation
    editor (which has none). `prediction` is the text the spans point into
    (prediction 1); `passages` are the example's [title, sentence, ...] lists.
    The explanation of a WRONG_GROUNDING error, when given, must be the JSON
    written by `grounding_explanation` and name sentences that exist.
    """
    problems = _key_problems(feedback, FEEDBACK_BLOCK_KEYS, "feedback")
    if not isinstance(feedback, dict):
        return problems

    errors = feedback.get("errors", [])
    if not isinstance(errors, list):
        problems.append(("feedback.errors", f"must be a list, not {_type_name(errors)}"))
        errors = []
    spans: list[tuple[int, int]] = []
    span_owner: list[int] = []
    for i, error in enumerate(errors):
        where = f"feedback.errors[{i}]"
        item_problems = _key_problems(error, ERROR_KEYS, where)
        if not isinstance(error, dict):
            problems += item_problems
            continue
        error_type = error.get("error type")
        if "error type" in error and error_type not in ERROR_TYPES:
            item_problems.append((f"{where}.error type", f"{shown(error_type)} is not one of {', '.join(ERROR_TYPES)}"))
        if "explanation" in error:
            item_problems += _str_problem(error["explanation"], f"{where}.explanation")
            if error_type == WRONG_GROUNDING and isinstance(error["explanation"], str) and error["explanation"]:
                item_problems += _grounding_problems(error["explanation"], passages, f"{where}.explanation")
        bounds_ok = True
        for key in ("start", "end"):
            if key in error and not _is_int(error[key]):
                item_problems.append((f"{where}.{key}", f"must be a whole number, not {_type_name(error[key])}"))
                bounds_ok = False
        problems += item_problems
        if bounds_ok and "start" in error and "end" in error:
            spans.append((error["start"], error["end"]))
            span_owner.append(i)
    for problem in span_problem_items(prediction, spans):
        # Spans are numbered among the well-typed errors; name them by their index in the error list.
        owner = span_owner[problem.index]
        where = f"feedback.errors[{owner}]" + (f".{problem.attribute}" if problem.attribute else "")
        message = problem.message.replace("the text", FIRST_PREDICTION)
        if problem.other is not None:
            message = message.replace("{other}", f"error {span_owner[problem.other]}")
        problems.append((where, message))

    missing = feedback.get("missing-info", [])
    if not isinstance(missing, list):
        problems.append(("feedback.missing-info", f"must be a list, not {_type_name(missing)}"))
        missing = []
    for i, item in enumerate(missing):
        where = f"feedback.missing-info[{i}]"
        item_problems = _key_problems(item, MISSING_INFO_KEYS, where)
        if isinstance(item, dict):
            if "error type" in item and item["error type"] not in MISSING_INFO_TYPES:
                item_problems.append(
                    (f"{where}.error type", f"{shown(item['error type'])} is not one of {', '.join(MISSING_INFO_TYPES)}")
                )
            if "passage_id" in item:
                item_problems += _sentence_ref_problems(
                    item["passage_id"],
                    item.get("sentence_id", [0]),
                    passages,
                    f"{where}.passage_id",
                    f"{where}.sentence_id",
                )
        problems += item_problems

    if "corrected-prediction" in feedback:
        problems += _str_problem(feedback["corrected-prediction"], "feedback.corrected-prediction")
    return problems


def _grounding_problems(explanation: str, passages: list[list[str]], where: str) -> list[Problem]:
    try:
        ref = json.loads(explanation)
    except ValueError:
        ref = None
    if not isinstance(ref, dict) or set(ref) != {"passage_id", "sentence_id"}:
        return [(where, f'a {WRONG_GROUNDING} explanation must look like {{"passage_id":2,"sentence_id":[4]}}')]
    # The ids live inside one string, so every problem is reported on the explanation itself.
    return [
        (where, message)
        for _, message in _sentence_ref_problems(ref["passage_id"], ref["sentence_id"], passages, where, where)
    ]


def validate_preference(preference: Any) -> list[Problem]:
    """Problems with a preference list: six values, one per pair (1-2, 1-3, 1-4, 2-3, 2-4, 3-4), each 0, 1 or 2."""
    if not isinstance(preference, list):
        return [("preference", f"must be a list of 6 numbers, not {_type_name(preference)}")]
    if len(preference) != len(PREFERENCE_PAIRS):
        return [
            (
                "preference",
                f"must hold {len(PREFERENCE_PAIRS)} values (one per pair of predictions), not {len(preference)}",
            )
        ]
    return [
        (f"preference[{k}]", f"{shown(value)} is not 0, 1 or 2 (pair {a}-{b})")
        for k, (value, (a, b)) in enumerate(zip(preference, PREFERENCE_PAIRS, strict=True))
        if not (_is_int(value) and value in PREFERENCE_VALUES)
    ]


def _passages_problems(passages: Any) -> list[Problem]:
    if not isinstance(passages, list):
        return [("passages", f"must be a list, not {_type_name(passages)}")]
    problems = []
    for p, passage in enumerate(passages):
        if not isinstance(passage, list) or not passage:
            problems.append((f"passages[{p}]", "must be a non-empty list: a title, then its sentences"))
            continue
        problems += [
            (f"passages[{p}][{s}]", f"must be a string, not {_type_name(text)}")
            for s, text in enumerate(passage)
            if not isinstance(text, str)
        ]
    return problems


_FEEDBACK_KEY_SET = frozenset(FEEDBACK_KEYS)
_BLOCK_KEY_SET = frozenset(FEEDBACK_BLOCK_KEYS)
_ERROR_KEY_SET = frozenset(ERROR_KEYS)
_MISSING_INFO_KEY_SET = frozenset(MISSING_INFO_KEYS)
_TEXT_KEYS = ("question", "gold", *PREDICTION_KEYS)


def _plainly_valid_feedback(record: Any) -> bool:
    """True only for a record that `validate_feedback_record` finds nothing wrong with.

    The shortcut an import takes for the usual example: the same rules, checked
    without building a path or a message for each field, in about a third of
    the time. False means "look closer", not "invalid": anything unusual (a
    type's subclass, a grounding explanation to parse) goes to the full
    validator, which names the problems, so messages do not depend on it.
    """
    if type(record) is not dict or record.keys() != _FEEDBACK_KEY_SET:
        return False
    for key in _TEXT_KEYS:
        if type(record[key]) is not str:
            return False
    passages = record["passages"]
    if type(passages) is not list:
        return False
    for passage in passages:
        if type(passage) is not list or not passage:
            return False
        try:
            "".join(passage)  # in C: a TypeError unless every item is a string
        except TypeError:
            return False
    preference = record["preference"]
    if type(preference) is not list or len(preference) != len(PREFERENCE_PAIRS):
        return False
    for value in preference:
        if type(value) is not int or value not in PREFERENCE_VALUES:
            return False
    feedback = record["feedback"]
    if type(feedback) is not dict or feedback.keys() != _BLOCK_KEY_SET:
        return False
    if type(feedback["corrected-prediction"]) is not str:
        return False
    errors, missing = feedback["errors"], feedback["missing-info"]
    if type(errors) is not list or type(missing) is not list:
        return False
    text = record[FIRST_PREDICTION]
    spans = []
    for error in errors:
        if type(error) is not dict or error.keys() != _ERROR_KEY_SET:
            return False
        explanation, start, end = error["explanation"], error["start"], error["end"]
        if error["error type"] not in ERROR_TYPES or type(explanation) is not str:
            return False
        if error["error type"] == WRONG_GROUNDING and explanation and _grounding_problems(explanation, passages, ""):
            return False
        if type(start) is not int or type(end) is not int:
            return False
        spans.append((start, end))
    # The span rules of spans.span_problem_items: in bounds, on word boundaries, no overlap.
    furthest = 0
    for start, end in sorted(spans):
        if not (0 <= start < end <= len(text)) or start < furthest:
            return False
        if text[start].isspace() or (start and not text[start - 1].isspace()):
            return False
        if text[end - 1].isspace() or (end < len(text) and not text[end].isspace()):
            return False
        furthest = end
    for item in missing:
        if type(item) is not dict or item.keys() != _MISSING_INFO_KEY_SET:
            return False
        passage_id, sentence_ids = item["passage_id"], item["sentence_id"]
        if item["error type"] not in MISSING_INFO_TYPES or type(passage_id) is not int:
            return False
        if not 1 <= passage_id <= len(passages) or type(sentence_ids) is not list or not sentence_ids:
            return False
        last = len(passages[passage_id - 1]) - 1
        for sentence_id in sentence_ids:
            if type(sentence_id) is not int or not 0 <= sentence_id <= last:
                return False
    return True


def validate_feedback_record(record: Any) -> list[Problem]:
    """Problems with one example of the feedback format."""
    if _plainly_valid_feedback(record):
        return []
    return _feedback_record_problems(record)


def _feedback_record_problems(record: Any) -> list[Problem]:
    problems = _key_problems(record, FEEDBACK_KEYS, "")
    if not isinstance(record, dict):
        return problems
    for key in ("question", "gold", *PREDICTION_KEYS):
        if key in record:
            problems += _str_problem(record[key], key)
    passage_problems = _passages_problems(record.get("passages", []))
    problems += passage_problems
    if "preference" in record:
        problems += validate_preference(record["preference"])
    prediction = record.get(FIRST_PREDICTION)
    # Span and id checks need a sound prediction and passages to point into.
    if "feedback" in record and isinstance(prediction, str) and not passage_problems:
        problems += validate_feedback_block(
            record["feedback"], prediction=prediction, passages=record.get("passages", [])
        )
    return problems


def validate_input_record(record: Any) -> list[Problem]:
    """Problems with one example of the policy-input format."""
    problems = _key_problems(record, INPUT_KEYS, "")
    if not isinstance(record, dict):
        return problems
    for key in ("text", "question"):
        if key in record:
            problems += _str_problem(record[key], key)
    answer = record.get("answer", [])
    if not isinstance(answer, list):
        problems.append(("answer", f"must be a list of strings, not {_type_name(answer)}"))
    else:
        problems += [
            (f"answer[{k}]", f"must be a string, not {_type_name(a)}")
            for k, a in enumerate(answer)
            if not isinstance(a, str)
        ]
    passages = record.get("passages", [])
    if not isinstance(passages, list):
        problems.append(("passages", f"must be a list, not {_type_name(passages)}"))
    else:
        for p, passage in enumerate(passages):
            where = f"passages[{p}]"
            passage_problems = _key_problems(passage, INPUT_PASSAGE_KEYS, where)
            if isinstance(passage, dict):
                for key in INPUT_PASSAGE_KEYS:
                    if key in passage:
                        passage_problems += _str_problem(passage[key], f"{where}.{key}")
            problems += passage_problems
    return problems


VALIDATORS: dict[str, Callable[[Any], list[Problem]]] = {
    FEEDBACK: validate_feedback_record,
    INPUTS: validate_input_record,
}


def _format_of(first: Any) -> str:
    """FEEDBACK or INPUTS, told by the keys of a file's first example."""
    if not isinstance(first, dict):
        raise FormatError(f"must be an object, not {_type_name(first)}", index=0)
    keys = set(first)
    if keys & {FIRST_PREDICTION, "feedback", "preference", "gold"}:
        return FEEDBACK
    if keys & {"text", "answer"}:
        return INPUTS
    raise FormatError(
        "cannot tell the format: a feedback-format example has the keys "
        f"{', '.join(FEEDBACK_KEYS)}; a policy-input example has {', '.join(INPUT_KEYS)}",
        index=0,
    )


def detect_format(records: Any) -> str:
    """FEEDBACK or INPUTS, told by the keys of the first example."""
    if not isinstance(records, list):
        raise FormatError(f"the file must hold a list of examples, not {_type_name(records)}")
    if not records:
        raise FormatError("the file holds no examples")
    return _format_of(records[0])


def _refusal(found: list[tuple[int | None, str | None, str]]) -> FormatError:
    index, where, message = found[0]
    return FormatError(message, index=index, field=where, problems=found[:MAX_PROBLEMS])


# A further check of one valid example (index, record), e.g. against the database's limits.
Check = Callable[[int, dict], list[Problem]]


class RecordReader:
    """A qa-feedback file read and checked one example at a time, in constant memory.

    Iterating gives (index, record) for each example while every example so
    far is valid. At the first problem it stops giving examples, reads on
    only to list further problems (up to MAX_PROBLEMS), and raises
    FormatError: a caller that writes as it reads refuses the whole file by
    letting that error end its transaction. `format` is known once the first
    example is read (`open()` reads it); `check` adds problems of its own.
    """

    def __init__(self, source: str | Path | IO[bytes] | IO[str], *, fmt: str | None = None, check: Check | None = None):
        self.source = source
        self.expected = fmt
        self.check = check
        self.format: str | None = None
        self.count = 0  # valid examples given so far
        self.finished = False  # the whole file was read
        self.bytes_total: int | None = None
        self._stream: IO[bytes] | IO[str] | None = None
        self._owned = False
        self._reader: jsonstream.ArrayReader | None = None
        self._elements: Iterator[Any] | None = None
        self._first: list[Any] = []

    @property
    def bytes_read(self) -> int:
        return self._reader.bytes_read if self._reader else 0

    def open(self) -> "RecordReader":
        """Open the source and read the first example, which tells the format."""
        if isinstance(self.source, (str, Path)):
            try:
                self._stream = open(self.source, "rb")  # noqa: SIM115 (closed by close())
            except OSError as exc:
                raise FormatError(f"cannot read {self.source}: {exc.strerror or exc}") from None
            self._owned = True
        else:
            self._stream = self.source
        self.bytes_total = _size_of(self._stream)
        self._reader = jsonstream.ArrayReader(self._stream)
        self._elements = iter(self._reader)
        first = self._next_element()
        if first is _END:
            raise FormatError("the file holds no examples")
        self._first = [first]
        self.format = _format_of(first)
        if self.expected is not None and self.expected != self.format:
            raise FormatError(f"expected the {self.expected} format but the file is in the {self.format} format")
        return self

    def close(self) -> None:
        if self._owned and self._stream is not None:
            self._stream.close()

    def __enter__(self) -> "RecordReader":
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _next_element(self) -> Any:
        try:
            return next(self._elements, _END)
        except jsonstream.NotAList as exc:
            raise FormatError(f"the file must hold a list of examples, not {exc.kind}") from None
        except jsonstream.JsonProblem as exc:
            raise FormatError(exc.message, index=exc.index, field=exc.path) from None

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        if self._elements is None:
            self.open()
        validate = VALIDATORS[self.format]
        found: list[tuple[int | None, str | None, str]] = []
        index = -1
        while len(found) < MAX_PROBLEMS:
            try:
                record = self._first.pop() if self._first else self._next_element()
            except FormatError as exc:
                found += exc.problems
                break
            if record is _END:
                self.finished = True
                break
            index += 1
            problems = validate(record)
            if not problems and self.check is not None:
                problems = self.check(index, record)
            found += [(index, where or None, message) for where, message in problems]
            if not found:
                self.count += 1
                yield index, record
        if found:
            raise _refusal(found)


_END = object()


def _size_of(stream: IO[bytes] | IO[str]) -> int | None:
    """The size in bytes of a file on disk or an uploaded file, if known."""
    size = getattr(stream, "size", None)
    if isinstance(size, int):
        return size
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


@dataclass
class ParsedFile:
    format: str
    records: list[dict] = field(default_factory=list)


def parse_records(data: Any, *, fmt: str | None = None) -> ParsedFile:
    """Validate decoded JSON; raise FormatError listing the problems (up to MAX_PROBLEMS)."""
    detected = detect_format(data)
    if fmt is not None and fmt != detected:
        raise FormatError(f"expected the {fmt} format but the file is in the {detected} format")
    validate = VALIDATORS[detected]
    found: list[tuple[int | None, str | None, str]] = []
    for index, record in enumerate(data):
        found += [(index, where or None, message) for where, message in validate(record)]
        if len(found) >= MAX_PROBLEMS:
            break
    if found:
        raise _refusal(found)
    return ParsedFile(format=detected, records=data)


def read_file(source: str | Path | IO[bytes] | IO[str], *, fmt: str | None = None) -> ParsedFile:
    """Read and validate a whole qa-feedback file (a path or an open binary or text file) into memory.

    For small files and tests; imports stream with RecordReader instead.
    """
    with RecordReader(source, fmt=fmt) as reader:
        records = [record for _, record in reader]
        return ParsedFile(format=reader.format, records=records)


# ---------------------------------------------------------------------------
# Writing


def feedback_record(
    *,
    question: str,
    passages: list[list[str]],
    gold: str,
    predictions: list[str],
    errors: list[dict],
    missing_info: list[dict],
    corrected_prediction: str,
    preference: list[int],
) -> dict:
    """One feedback-format example, keys in the order of the shared files."""
    return feedback_record_of_rows(
        question=question,
        passages=[list(p) for p in passages],
        gold=gold,
        predictions=predictions,
        errors=[tuple(error[key] for key in ERROR_KEYS) for error in errors],
        missing_info=[tuple(item[key] for key in MISSING_INFO_KEYS) for item in missing_info],
        corrected_prediction=corrected_prediction,
        preference=list(preference),
    )


def feedback_record_of_rows(
    *,
    question: str,
    passages: list[list[str]],
    gold: str,
    predictions: list[str],
    errors: Iterable[tuple],
    missing_info: Iterable[tuple],
    corrected_prediction: str,
    preference: list[int],
) -> dict:
    """feedback_record from database rows: errors as (error type, explanation, start, end) and missing
    information as (error type, passage_id, sentence ids) tuples, in ERROR_KEYS and MISSING_INFO_KEYS order.

    The passages and preference lists become the record's own (not copied): an export builds tens of
    thousands of records from fresh rows.
    """
    if len(predictions) != len(PREDICTION_KEYS):
        raise ValueError(f"a feedback record needs {len(PREDICTION_KEYS)} predictions, not {len(predictions)}")
    p1, p2, p3, p4 = predictions
    return {
        "question": question,
        "passages": passages,
        "gold": gold,
        PREDICTION_KEYS[0]: p1,
        PREDICTION_KEYS[1]: p2,
        PREDICTION_KEYS[2]: p3,
        PREDICTION_KEYS[3]: p4,
        "feedback": {
            "errors": [{"error type": t, "explanation": x, "start": a, "end": b} for t, x, a, b in errors],
            "missing-info": [{"error type": t, "passage_id": p, "sentence_id": s} for t, p, s in missing_info],
            "corrected-prediction": corrected_prediction,
        },
        "preference": preference,
    }


def input_record(*, text: str, answer: list[str], passages: list[dict], question: str) -> dict:
    """One policy-input example, keys in the order of the shared files."""
    return {
        "text": text,
        "answer": list(answer),
        "passages": [{key: passage[key] for key in INPUT_PASSAGE_KEYS} for passage in passages],
        "question": question,
    }


def join_passage_sentences(sentences: list[str]) -> str:
    """A passage's text from its feedback-format sentences: joined by one space, none after a sentence that
    already ends in whitespace (a title line ends in a blank line: `Title\n\n`)."""
    text = ""
    for sentence in sentences:
        if text and not text[-1].isspace():
            text += " "
        text += sentence
    return text


def policy_prompt(question: str, passages: list[dict]) -> str:
    """The policy prompt of the inputs format: `question: Q context: wikipage: T text: C | wikipage: ...`."""
    context = " | ".join(f"wikipage: {p['wikipage']} text: {p['content']}" for p in passages)
    return f"question: {question} context: {context}"


def input_record_from_feedback(*, question: str, passages: list[list[str]], gold: str) -> dict:
    """The policy-input record of a feedback-format example: passages `[title, sentence, ...]` become
    `{"content", "wikipage"}` (the title line is the first sentence of the text, as in dev.json), `text`
    is built from them as the inputs format builds it, and the one reference answer is `gold` (stripped).

    It equals the inputs file's record wherever the feedback file's sentences keep the passage's whitespace
    (the sentence splitter drops it in a few places, e.g. `studio...I` split after `...`).
    """
    built = [{"content": join_passage_sentences(list(p[1:])), "wikipage": p[0]} for p in passages if p]
    return input_record(text=policy_prompt(question, built), answer=[gold.strip()], passages=built, question=question)


def canonical(record: dict, fmt: str) -> dict:
    """The record with the shared files' key order, whatever order it came in."""
    if fmt == FEEDBACK:
        return feedback_record(
            question=record["question"],
            passages=record["passages"],
            gold=record["gold"],
            predictions=[record[key] for key in PREDICTION_KEYS],
            errors=record["feedback"]["errors"],
            missing_info=record["feedback"]["missing-info"],
            corrected_prediction=record["feedback"]["corrected-prediction"],
            preference=record["preference"],
        )
    if fmt == INPUTS:
        return input_record(
            text=record["text"], answer=record["answer"], passages=record["passages"], question=record["question"]
        )
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def indent_for(fmt: str) -> int:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return FEEDBACK_INDENT if fmt == FEEDBACK else INPUTS_INDENT


def _encode(value: Any, step: str, pad: str) -> str:
    """`json.dumps(value, indent=len(step))` for a value nested at indentation `pad`, for the format's types.

    The standard library writes indented JSON with its pure-Python encoder;
    this does the same with fewer calls (lists of strings in one join of the
    C string encoder) and gives the same bytes, which the tests check
    against json.dumps. Anything but str, int, bool, None, list and dict
    (with string keys) goes to json.dumps itself.
    """
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, list):
        if not value:
            return "[]"
        inner = pad + step
        separator = ",\n" + inner
        try:
            body = separator.join(map(_encode_string, value))
        except TypeError:  # not all strings
            body = separator.join([_encode(item, step, inner) for item in value])
        return f"[\n{inner}{body}\n{pad}]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = pad + step
        if not all(isinstance(key, str) for key in value):
            return _reindent(json.dumps(value, indent=len(step)), pad)
        body = (",\n" + inner).join(
            [f"{_encode_string(key)}: {_encode(item, step, inner)}" for key, item in value.items()]
        )
        return f"{{\n{inner}{body}\n{pad}}}"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return int.__repr__(value)
    return _reindent(json.dumps(value, indent=len(step)), pad)


def _reindent(text: str, pad: str) -> str:
    return text.replace("\n", "\n" + pad)


_encode_string = json.encoder.encode_basestring_ascii


def _feedback_text(record: dict, step: str, pad: str) -> str:
    """One feedback-format record as `_encode(canonical(record))` writes it, without the generic walk.

    Exports write tens of thousands of these; knowing the shape saves most of
    the time: the fixed parts are literal text, each string goes through the C
    encoder once. Raises KeyError/TypeError on a record of another shape (the
    caller falls back to the generic encoder).
    """
    enc = _encode_string
    # Line breaks with the indentation of each level: the record's keys, the passages (and the feedback's
    # keys), the sentences (and the errors), the errors' keys, the sentence ids.
    n0 = "\n" + pad
    n1 = n0 + step
    n2 = n1 + step
    n3 = n2 + step
    n4 = n3 + step
    n5 = n4 + step
    passages = record["passages"]
    if passages:
        between = "," + n3
        passages_text = (
            f"[{n2}"
            + f",{n2}".join([f"[{n3}{between.join(map(enc, p))}{n2}]" if p else "[]" for p in passages])
            + f"{n1}]"
        )
    else:
        passages_text = "[]"
    feedback = record["feedback"]
    errors = feedback["errors"]
    if errors:
        parts = []
        for e in errors:
            start, end = e["start"], e["end"]
            if type(start) is not int or type(end) is not int:
                raise TypeError("span offsets that are not ints")
            parts.append(
                f'{{{n4}"error type": {enc(e["error type"])},{n4}"explanation": {enc(e["explanation"])},'
                f'{n4}"start": {start},{n4}"end": {end}{n3}}}'
            )
        errors_text = f"[{n3}" + f",{n3}".join(parts) + f"{n2}]"
    else:
        errors_text = "[]"
    missing = feedback["missing-info"]
    if missing:
        parts = []
        for m in missing:
            passage_id, ids = m["passage_id"], m["sentence_id"]
            if type(passage_id) is not int:
                raise TypeError("a passage id that is not an int")
            ids_text = f"[{n5}{_ints(ids, ',' + n5)}{n4}]" if ids else "[]"
            parts.append(
                f'{{{n4}"error type": {enc(m["error type"])},{n4}"passage_id": {passage_id},'
                f'{n4}"sentence_id": {ids_text}{n3}}}'
            )
        missing_text = f"[{n3}" + f",{n3}".join(parts) + f"{n2}]"
    else:
        missing_text = "[]"
    preference = record["preference"]
    preference_text = f"[{n2}{_ints(preference, ',' + n2)}{n1}]" if preference else "[]"
    predictions = "".join([f"{n1}{key}: {enc(record[name])}," for name, key in _PREDICTION_KEYS_TEXT])
    return (
        f'{{{n1}"question": {enc(record["question"])},{n1}"passages": {passages_text},'
        f'{n1}"gold": {enc(record["gold"])},{predictions}'
        f'{n1}"feedback": {{{n2}"errors": {errors_text},{n2}"missing-info": {missing_text},'
        f'{n2}"corrected-prediction": {enc(feedback["corrected-prediction"])}{n1}}},'
        f'{n1}"preference": {preference_text}{n0}}}'
    )


_PREDICTION_KEYS_TEXT = [(key, _encode_string(key)) for key in PREDICTION_KEYS]


def _ints(values: list, between: str) -> str:
    """Ints joined as json.dumps writes them; TypeError for anything else (a bool, a float, a string)."""
    for value in values:
        if type(value) is not int:
            raise TypeError(f"not an int: {value!r}")
    return between.join(map(int.__repr__, values))


def _record_text(record: dict, fmt: str, step: str) -> str:
    if fmt == FEEDBACK and len(record) == len(FEEDBACK_KEYS) and len(record.get("feedback", ())) == 3:
        try:
            return _feedback_text(record, step, step)
        except (KeyError, TypeError):
            pass  # not the usual shape: the generic encoder below says it exactly as json.dumps would
    return _encode(canonical(record, fmt), step, step)


def iter_dump(records: Iterable[dict], *, fmt: str) -> Iterator[str]:
    """Pieces whose concatenation equals `json.dumps(list(records), indent=...)`, one example per piece.

    Streaming one example at a time lets exports report progress and keeps
    memory flat; the text is identical to dumping the whole list at once.
    """
    step = " " * indent_for(fmt)
    first = True
    for record in records:
        yield ("[\n" if first else ",\n") + step + _record_text(record, fmt, step)
        first = False
    yield "[]" if first else "\n]"


def dumps(records: Iterable[dict], *, fmt: str) -> str:
    """The whole file as text: indent 2 (feedback) or 4 (inputs), ASCII escapes, no trailing newline."""
    return "".join(iter_dump(records, fmt=fmt))
