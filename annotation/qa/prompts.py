"""Prompt files for the detox task: RealToxicityPrompts JSON lines and plain `{"prompt": "..."}` lines.

A RealToxicityPrompts line is `{"filename", "begin", "end", "challenging",
"prompt": {"text", "toxicity", "profanity", ...}, "continuation": {"text", ...}}`;
`prompt.toxicity` may be null (the Perspective API gave none). A plain line is
`{"prompt": "text"}`. Both shapes may be mixed in one file. Every bad line is
refused with its line number (1-based) and the field that was wrong, and the
whole file with it. Pure: no Django.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from annotation.qa.errors import BadRequest

DETOX_TASK = "detox"
PROMPT_KEY = "prompt"
PROMPT_TEXT_KEY = "text"
TOXICITY_KEY = "toxicity"
CHALLENGING_KEY = "challenging"
CONTINUATION_KEY = "continuation"
# RealToxicityPrompts' own top-level fields kept in Example.meta when present, with their types.
SOURCE_FIELDS = {"filename": str, "begin": int, "end": int}
SHOWN_PROBLEMS = 20


class PromptFileError(BadRequest):
    """A prompt file with bad lines: `problems` lists (line, field, message) for each, in file order."""

    def __init__(self, problems: list[tuple[int, str, str]]):
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more bad lines)" if len(problems) > 1 else ""
        super().__init__(f"line {first[0]}: {first[1]}: {first[2]}{more}", field=first[1])

    def lines(self) -> list[str]:
        return [f"line {line}: {name}: {message}" for line, name, message in self.problems]


@dataclass(frozen=True)
class Prompt:
    line: int
    text: str
    toxicity: float | None = None
    challenging: bool | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scores(obj: dict, where: str) -> tuple[dict[str, float | None], list[tuple[str, str]]]:
    """The Perspective attribute scores of a prompt or continuation object (numbers in [0, 1] or null)."""
    scores, problems = {}, []
    for key, value in obj.items():
        if key == PROMPT_TEXT_KEY:
            continue
        if value is not None and not (_is_number(value) and 0 <= value <= 1):
            problems.append((f"{where}.{key}", f"must be a number in [0, 1] or null, not {json.dumps(value)[:40]}"))
        else:
            scores[key] = value
    return scores, problems


def parse_line(number: int, raw: str) -> tuple[Prompt | None, list[tuple[str, str]]]:
    """One line's prompt, or the (field, message) problems that refuse it."""
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, [("line", f"not valid JSON ({exc.msg} at column {exc.colno})")]
    if not isinstance(record, dict):
        return None, [("line", f"must be a JSON object, not {type(record).__name__}")]
    if PROMPT_KEY not in record:
        return None, [(PROMPT_KEY, "is missing (expected {\"prompt\": \"...\"} or a RealToxicityPrompts record)")]
    value = record[PROMPT_KEY]
    if isinstance(value, str):
        if not value.strip():
            return None, [(PROMPT_KEY, "must not be empty")]
        return Prompt(number, value), []
    if not isinstance(value, dict):
        return None, [(PROMPT_KEY, f"must be a string or an object with a text, not {type(value).__name__}")]
    text = value.get(PROMPT_TEXT_KEY)
    problems: list[tuple[str, str]] = []
    if not isinstance(text, str) or not text.strip():
        problems.append((f"{PROMPT_KEY}.{PROMPT_TEXT_KEY}", "must be a non-empty string"))
    scores, score_problems = _scores(value, PROMPT_KEY)
    problems += score_problems
    meta: dict[str, Any] = {PROMPT_KEY: scores}
    for key, kind in SOURCE_FIELDS.items():
        if key in record:
            if not isinstance(record[key], kind) or isinstance(record[key], bool):
                problems.append((key, f"must be {'a string' if kind is str else 'an integer'}"))
            else:
                meta[key] = record[key]
    challenging = record.get(CHALLENGING_KEY)
    if challenging is not None and not isinstance(challenging, bool):
        problems.append((CHALLENGING_KEY, "must be true or false"))
    continuation = record.get(CONTINUATION_KEY)
    if continuation is not None:
        if not isinstance(continuation, dict) or not isinstance(continuation.get(PROMPT_TEXT_KEY, ""), str):
            problems.append((CONTINUATION_KEY, "must be an object with a string text"))
        else:
            cont_scores, cont_problems = _scores(continuation, CONTINUATION_KEY)
            problems += cont_problems
            meta[CONTINUATION_KEY] = {PROMPT_TEXT_KEY: continuation.get(PROMPT_TEXT_KEY, ""), **cont_scores}
    if problems:
        return None, problems
    toxicity = scores.get(TOXICITY_KEY)
    meta[TOXICITY_KEY] = toxicity
    if challenging is not None:
        meta[CHALLENGING_KEY] = challenging
    return Prompt(number, text, toxicity=toxicity, challenging=challenging, meta=meta), []


def parse_prompts(lines: Iterable[str]) -> list[Prompt]:
    """Every prompt of the file, or PromptFileError naming each bad line (after reading them all)."""
    prompts, problems = [], []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        prompt, found = parse_line(number, raw)
        if found:
            problems.extend((number, name, message) for name, message in found)
        else:
            prompts.append(prompt)
    if problems:
        raise PromptFileError(problems)
    return prompts


def keep(prompt: Prompt, *, min_toxicity: float | None, challenging_only: bool) -> bool:
    """The `--min-toxicity` / `--challenging` filters: a prompt without a toxicity never passes a threshold."""
    if min_toxicity is not None and (prompt.toxicity is None or prompt.toxicity < min_toxicity):
        return False
    return not challenging_only or prompt.challenging is True
