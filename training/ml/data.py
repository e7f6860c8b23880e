"""Policy-input files: the qa-feedback `dev.json` format, read and checked once at the edge.

A file is a JSON list of `{"text", "answer": [str, ...], "question", "passages":
[{"wikipage", "content"}, ...]}`. `text` is the policy prompt; `answer[0]` is the
SFT target (every answer is a ROUGE reference); `question` and `passages` feed
the reward models. A bad record is refused with its position and field, so a
run fails in its first second rather than hours in.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


class DataError(ValueError):
    """A policy-input file that cannot be used."""


@dataclass(frozen=True)
class Example:
    text: str
    answers: tuple[str, ...]
    question: str
    passages: tuple[tuple[str, str], ...] = field(default=())  # (wikipage, content)

    @property
    def target(self) -> str:
        return self.answers[0] if self.answers else ""


def _fail(path: Path, index: int, message: str) -> DataError:
    return DataError(f"{path}: record {index}: {message}")


def parse_examples(records: object, *, path: Path, need_answer: bool) -> list[Example]:
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    examples = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise _fail(path, i, "is not an object")
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _fail(path, i, "'text' must be a non-empty string")
        answers = record.get("answer", [])
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise _fail(path, i, "'answer' must be a list of strings")
        if need_answer and not answers:
            raise _fail(path, i, "'answer' is empty; SFT and evaluation need a reference answer")
        question = record.get("question", "")
        if not isinstance(question, str):
            raise _fail(path, i, "'question' must be a string")
        passages = record.get("passages", []) or []
        if not isinstance(passages, list):
            raise _fail(path, i, "'passages' must be a list")
        parsed = []
        for j, passage in enumerate(passages):
            if not isinstance(passage, dict) or not isinstance(passage.get("wikipage", ""), str) or not isinstance(passage.get("content", ""), str):
                raise _fail(path, i, f"passage {j} must be an object with string 'wikipage' and 'content'")
            parsed.append((passage.get("wikipage", ""), passage.get("content", "")))
        examples.append(Example(text=text, answers=tuple(answers), question=question, passages=tuple(parsed)))
    if not examples:
        raise DataError(f"{path}: the file holds no records")
    return examples


def load_examples(path: str | os.PathLike, *, need_answer: bool = False, limit: int = 0) -> list[Example]:
    """Read a policy-input file; `limit` > 0 keeps only the first `limit` records."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if limit > 0 and isinstance(records, list):
        records = records[:limit]
    return parse_examples(records, path=path, need_answer=need_answer)
