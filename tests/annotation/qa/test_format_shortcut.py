"""The feedback validator's shortcut for the usual example: it may only say "valid" where the full rules agree."""

import copy
import json

import pytest

from annotation.qa import format as q


class Text(str):
    """A string of another type: the full validator accepts it, the shortcut leaves it to the full validator."""


REPLACEMENTS = (None, True, False, 0, 1, 2, 3, -1, 10**6, 1.5, "", " ", "x", "Irrelevant", [], [0], [""], {}, Text("t"))


def leaves(value, path=()):
    """(path, value) for every value inside `value`, containers included."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, (*path, i))


def replaced(record, path, new):
    mutant = copy.deepcopy(record)
    target = mutant
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return mutant


def removed(record, path):
    mutant = copy.deepcopy(record)
    target = mutant
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return mutant


def mutants(record):
    for path, value in leaves(record):
        if not path:
            continue
        for new in REPLACEMENTS:
            yield replaced(record, path, new)
        if isinstance(value, int) and not isinstance(value, bool):
            yield replaced(record, path, value + 1)
            yield replaced(record, path, value - 1)
        if isinstance(value, (dict, list)) and value:
            yield removed(record, path[:-1] + (path[-1],)) if isinstance(value, dict) else replaced(record, path, value[:-1])
        if isinstance(value, dict):
            yield replaced(record, path, {**value, "extra": 1})
            for key in value:
                yield removed(record, (*path, key))
    for key in record:
        yield removed(record, (key,))
    yield {**record, "extra": 1}
    # Grounding explanations pointing elsewhere.
    for i, error in enumerate(record["feedback"]["errors"]):
        for explanation in ('{"passage_id":1,"sentence_id":[1]}', '{"passage_id":9,"sentence_id":[1]}', "not json", "[]"):
            mutant = copy.deepcopy(record)
            mutant["feedback"]["errors"][i].update({"error type": q.WRONG_GROUNDING, "explanation": explanation})
            yield mutant


@pytest.fixture(scope="module")
def shared_records(qa_feedback_dir):
    return json.loads((qa_feedback_dir / "dev_feedback.json").read_text())


def test_the_shortcut_takes_every_shared_example(shared_records):
    assert all(q._plainly_valid_feedback(record) for record in shared_records)


def test_the_shortcut_never_passes_what_the_full_rules_refuse(shared_records):
    checked = refused = 0
    # Examples with grounding explanations, missing info and several errors come first in this sample.
    sample = sorted(shared_records, key=lambda r: -len(r["feedback"]["errors"]) - len(r["feedback"]["missing-info"]))[:12]
    for record in sample:
        for mutant in mutants(record):
            full = q._feedback_record_problems(mutant)
            if q._plainly_valid_feedback(mutant):
                assert full == [], (mutant, full)
            else:
                refused += 1
            assert q.validate_feedback_record(mutant) == full  # the messages never depend on the shortcut
            checked += 1
    assert checked > 5000 and refused > checked // 2
