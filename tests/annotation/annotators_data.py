"""Crafted annotators' files: the shared dev feedback with seeded, valid variations (spans dropped or
retyped, preferences and corrections changed), as another annotator of the same examples would give."""

import copy
import random

from annotation.qa.format import FEEDBACK, dumps
from annotation.qa.vocab import FACTUAL_ERROR_TYPES, NON_FACTUAL_ERROR_TYPES, PREFERENCE_VALUES

# Types whose explanation is free text: retyping among them keeps a record valid.
FREE_TYPES = sorted(NON_FACTUAL_ERROR_TYPES)


def variant(records: list[dict], seed: int) -> list[dict]:
    """A copy of `records` as annotator `seed` might have labelled them (same questions and answers)."""
    rng = random.Random(seed)
    varied = copy.deepcopy(records)
    for record in varied:
        feedback = record["feedback"]
        kept = []
        for error in feedback["errors"]:
            roll = rng.random()
            if roll < 0.25:
                continue  # not seen by this annotator
            if roll < 0.5 and error["error type"] not in FACTUAL_ERROR_TYPES:
                error["error type"] = rng.choice(FREE_TYPES)
            kept.append(error)
        feedback["errors"] = kept
        if rng.random() < 0.3:
            feedback["corrected-prediction"] += " (checked)"
        if rng.random() < 0.3:
            feedback["missing-info"] = []
        record["preference"] = [
            rng.choice([v for v in PREFERENCE_VALUES if v != value]) if rng.random() < 0.2 else value
            for value in record["preference"]
        ]
    return varied


def feedback_text(records: list[dict]) -> str:
    """The file's text as an export writes it (the shared files' layout)."""
    return dumps(records, fmt=FEEDBACK)
