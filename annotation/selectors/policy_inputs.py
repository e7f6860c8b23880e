"""Policy inputs (the dev.json format) of a split, read from its inputs file or derived from its feedback.

A split imported in the policy-input format gives its records as imported
(`iter_input_records`). A split that holds only the feedback format gives
records derived from it (`annotation.qa.format.input_record_from_feedback`):
the prompt built from the question and passages as the inputs format builds
`text`, the reference answer from `gold`. So SFT and PPO can train on a split
whose only file is dev_feedback.json.
"""

from __future__ import annotations

from collections.abc import Iterator

from annotation.models import Dataset, Example, Passage
from annotation.qa import format as qa_format
from annotation.selectors.datasets import dataset_resolve, input_records_count, iter_input_records

# Where a split's policy inputs come from.
FROM_INPUTS = "inputs"
FROM_FEEDBACK = "feedback"
CHUNK = 1000


def _feedback_examples(dataset: Dataset, split: str):
    return Example.objects.filter(dataset=dataset, split=split, has_feedback_format=True)


def policy_inputs_source(dataset: Dataset | str | int, split: str) -> str | None:
    """FROM_INPUTS when the split holds the inputs format, FROM_FEEDBACK when only feedback, None when neither."""
    dataset = dataset_resolve(dataset)
    if input_records_count(dataset, split):
        return FROM_INPUTS
    if _feedback_examples(dataset, split).exists():
        return FROM_FEEDBACK
    return None


def policy_inputs_count(dataset: Dataset | str | int, split: str) -> int:
    dataset = dataset_resolve(dataset)
    return input_records_count(dataset, split) or _feedback_examples(dataset, split).count()


def iter_policy_input_records(dataset: Dataset | str | int, split: str) -> Iterator[dict]:
    """The split's policy-input records: the inputs file's when it has one, else derived from its feedback
    examples (in the feedback file's order), a chunk at a time."""
    dataset = dataset_resolve(dataset)
    if policy_inputs_source(dataset, split) == FROM_INPUTS:
        yield from iter_input_records(dataset, split)
        return
    after = -1
    while True:
        examples = list(
            _feedback_examples(dataset, split).filter(position__gt=after).order_by("position")
            .values_list("id", "position", "question", "gold")[:CHUNK]
        )
        if not examples:
            return
        passages: dict[int, list[list[str]]] = {}
        rows = (
            Passage.objects.filter(example_id__in=[e[0] for e in examples])
            .order_by("example_id", "number").values_list("example_id", "title", "sentences")
        )
        for example_id, title, sentences in rows:
            passages.setdefault(example_id, []).append([title, *sentences])
        for example_id, _, question, gold in examples:
            yield qa_format.input_record_from_feedback(question=question, passages=passages.get(example_id, []), gold=gold)
        after = examples[-1][1]
