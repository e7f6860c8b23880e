"""Reads for several annotators' work: every annotation of each example, one record per example by a rule,
and the disagreement-preserving lines.

The rules (qa.agreement.RULES):

- `latest`: today's rule, the most recently submitted fine-grained feedback
  on prediction 1 and comparison of each example (selectors.datasets'
  iter_feedback_records, unchanged);
- `adjudicated`: the reviewer's gold version (`Adjudication` rows of both
  kinds, fine-grained and comparison); examples without one are left out;
- `majority`: qa.agreement.majority over the example's annotators.

Each rule counts the examples it leaves out, by reason, into the `left_out`
Counter it is given; the export and build summaries print them.
Examples are read a chunk at a time (a fixed number of queries per chunk).
"""

from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from annotation.models import (
    Adjudication,
    AssignmentKind,
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
from annotation.qa import agreement as qa_agreement
from annotation.qa import format as qa_format
from annotation.qa.agreement import ADJUDICATED, LATEST, MAJORITY, RULES
from annotation.qa.errors import BadRequest
from annotation.qa.vocab import PREDICTION_KEYS, RESPONSES
from annotation.selectors.annotate import FINE_GRAINED_RESPONSE_NUMBER
from annotation.selectors.datasets import dataset_resolve, iter_feedback_records

CHUNK = 500
N_RESPONSES = len(RESPONSES)

# Why an example was left out, as summaries say it.
NO_ANSWERS = "without four answers"
NOT_ANNOTATED = "without a submitted fine-grained feedback and a submitted comparison"
NOT_ADJUDICATED = "without a gold version of both kinds (fine-grained and comparison)"
NOBODY = "without any submitted annotation"
NOBODY = "without any submitted annotation"


@dataclass
class AnnotatedExample:
    """One example with every annotator's submitted work on it (and the gold version, when read)."""

    example_id: int
    number: int  # 1-based
    question: str
    passages: list[list[str]]
    gold: str
    predictions: list[str]
    # annotator -> {"feedback": qa-feedback block or None, "preference": [6] or None,
    #               "submitted": (fine-grained submitted_at, comparison submitted_at)}
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)
    # {"feedback": block or None, "preference": [6] or None}, or None without any adjudication
    adjudication: dict[str, Any] | None = None

    def record(self, feedback: dict, preference: list[int]) -> dict:
        return qa_format.feedback_record(
            question=self.question,
            passages=self.passages,
            gold=self.gold,
            predictions=self.predictions,
            errors=feedback["errors"],
            missing_info=feedback["missing-info"],
            corrected_prediction=feedback["corrected-prediction"],
            preference=preference,
        )

    def agreement_item(self) -> dict[str, dict[str, Any]]:
        """The example as a qa.agreement item."""
        return {
            name: {
                "prediction": self.predictions[0] if self.predictions else "",
                "errors": None if a["feedback"] is None else qa_agreement.spans_of(a["feedback"]["errors"]),
                "preference": a["preference"],
            }
            for name, a in self.annotations.items()
        }


def _block(errors: list[tuple], missing: list[tuple], corrected: str) -> dict[str, Any]:
    return {
        "errors": [{"error type": t, "explanation": x, "start": a, "end": b} for t, x, a, b in errors],
        "missing-info": [{"error type": t, "passage_id": p, "sentence_id": s} for t, p, s in missing],
        "corrected-prediction": corrected,
    }


def _grouped(rows) -> dict:
    grouped: dict = {}
    for key, *rest in rows:
        grouped.setdefault(key, []).append(rest)
    return grouped


def _annotations(ids: list[int], who: dict) -> dict[int, dict[str, dict[str, Any]]]:
    """example id -> annotator -> annotation, for the examples `ids` (five queries)."""
    submitted = {"response__example__in": ids, "response__number": FINE_GRAINED_RESPONSE_NUMBER}
    submitted["status"] = FeedbackStatus.SUBMITTED
    feedback = list(
        FineGrainedFeedback.objects.filter(**submitted, **who).values_list(
            "id", "response__example_id", "annotator__username", "corrected_prediction", "submitted_at"
        )
    )
    details = {f"feedback__{key}": value for key, value in submitted.items()}
    details.update({f"feedback__{key}": value for key, value in who.items()})
    errors = _grouped(
        ErrorSpan.objects.filter(**details)
        .order_by("feedback_id", "position")
        .values_list("feedback_id", "error_type", "explanation", "start", "end")
    )
    missing = _grouped(
        MissingInfo.objects.filter(**details)
        .order_by("feedback_id", "position")
        .values_list("feedback_id", "error_type", "passage_id", "sentence_ids")
    )
    result: dict[int, dict[str, dict[str, Any]]] = {}

    def entry(example_id: int, username: str) -> dict[str, Any]:
        return result.setdefault(example_id, {}).setdefault(
            username, {"feedback": None, "preference": None, "submitted": [None, None]}
        )

    for feedback_id, example_id, username, corrected, at in feedback:
        annotation = entry(example_id, username)
        annotation["feedback"] = _block(errors.get(feedback_id, []), missing.get(feedback_id, []), corrected)
        annotation["submitted"][0] = at
    for example_id, username, preference, at in Comparison.objects.filter(
        example__in=ids, status=FeedbackStatus.SUBMITTED, **who
    ).values_list("example_id", "annotator__username", "preference", "submitted_at"):
        annotation = entry(example_id, username)
        annotation["preference"] = preference
        annotation["submitted"][1] = at
    return {e: dict(sorted(by_name.items())) for e, by_name in result.items()}


def _adjudications(ids: list[int]) -> dict[int, dict[str, Any]]:
    result: dict[int, dict[str, Any]] = {}
    for example_id, kind, errors, missing, corrected, preference in Adjudication.objects.filter(
        example__in=ids
    ).values_list("example_id", "kind", "errors", "missing_info", "corrected_prediction", "preference"):
        gold = result.setdefault(example_id, {"feedback": None, "preference": None})
        if kind == AssignmentKind.FINE_GRAINED:
            gold["feedback"] = {"errors": errors, "missing-info": missing, "corrected-prediction": corrected}
        else:
            gold["preference"] = preference
    return result


_EXAMPLE_FIELDS = ("id", "position", "question", "gold", "has_feedback_format", "answers")


def iter_annotated_examples(
    dataset: Dataset | str | int,
    split: str,
    *,
    annotators: Collection[str] | None = None,
    adjudications: bool = False,
    chunk_size: int = CHUNK,
) -> Iterator[AnnotatedExample]:
    """Every example of the split by position, with every annotator's (or only `annotators`') submitted work,
    and with `adjudications` its gold version; read `chunk_size` examples at a time (seven queries a chunk,
    eight with `adjudications`)."""
    dataset = dataset_resolve(dataset)
    after = -1
    while True:
        examples = list(
            Example.objects.filter(dataset=dataset, split=split, position__gt=after)
            .order_by("position")
            .values_list(*_EXAMPLE_FIELDS)[:chunk_size]
        )
        if not examples:
            return
        after = examples[-1][1]
        yield from _annotated(examples, annotators, adjudications)


def annotated_example(*, example_id: int, annotators: Collection[str] | None = None) -> AnnotatedExample | None:
    """One example with every annotator's (or only `annotators`') submitted work and its gold version
    (`adjudication`), for a review page; None when there is no such example. Eight queries."""
    examples = list(Example.objects.filter(pk=example_id).values_list(*_EXAMPLE_FIELDS))
    return next(_annotated(examples, annotators, True), None)


def _annotated(
    examples: list[tuple], annotators: Collection[str] | None, adjudications: bool
) -> Iterator[AnnotatedExample]:
    """The examples (rows of _EXAMPLE_FIELDS) with their passages, answers, annotations and gold versions."""
    if not examples:
        return
    who = {} if annotators is None else {"annotator__username__in": list(annotators)}
    ids = [row[0] for row in examples]
    passages = _grouped(
        Passage.objects.filter(example__in=ids)
        .order_by("example_id", "number")
        .values_list("example_id", "title", "sentences")
    )
    responses = _grouped(
        Response.objects.filter(example__in=ids, number__in=RESPONSES)
        .order_by("example_id", "number")
        .values_list("example_id", "text")
    )
    annotations = _annotations(ids, who)
    gold_versions = _adjudications(ids) if adjudications else {}
    for example_id, position, question, gold, has_feedback_format, answers in examples:
        yield AnnotatedExample(
            example_id=example_id,
            number=position + 1,
            question=question,
            passages=[[title, *sentences] for title, sentences in passages.get(example_id, [])],
            gold=gold if has_feedback_format or not answers else answers[0],
            predictions=[text for (text,) in responses.get(example_id, [])],
            annotations=annotations.get(example_id, {}),
            adjudication=gold_versions.get(example_id),
        )


def annotated_examples_count(dataset: Dataset | str | int, split: str) -> int:
    """Examples of the split with at least one submitted fine-grained feedback or comparison (two queries)."""
    dataset = dataset_resolve(dataset)
    submitted = {"status": FeedbackStatus.SUBMITTED}
    with_feedback = FineGrainedFeedback.objects.filter(
        response__example__dataset=dataset, response__example__split=split, **submitted
    ).values_list("response__example_id", flat=True)
    with_comparison = Comparison.objects.filter(example__dataset=dataset, example__split=split, **submitted).values_list(
        "example_id", flat=True
    )
    return len(set(with_feedback) | set(with_comparison))


def check_rule(rule: str) -> None:
    if rule not in RULES:
        raise BadRequest(f"unknown aggregation rule {rule!r}; use one of {', '.join(RULES)}", field="aggregate")


def _latest(example: AnnotatedExample) -> dict[str, Any]:
    """The latest rule on one example's annotations: the newest fine-grained feedback and comparison."""

    def newest(slot: int, key: str):
        dated = [(a["submitted"][slot], name) for name, a in example.annotations.items() if a[key] is not None]
        if not dated:
            return None
        _, name = max(dated, key=lambda pair: (pair[0] is not None, pair[0] or 0, pair[1]))
        return example.annotations[name][key]

    return {"feedback": newest(0, "feedback"), "preference": newest(1, "preference")}


def aggregate_example(example: AnnotatedExample, rule: str) -> dict[str, Any] | None:
    """{"feedback", "preference"} of one example under `rule` (either may be None), or None with nothing."""
    if rule == ADJUDICATED:
        return example.adjudication
    if not example.annotations:
        return None
    if rule == MAJORITY:
        prediction = example.predictions[0] if example.predictions else ""
        return qa_agreement.majority(prediction, example.annotations)
    return _latest(example)


def iter_rule_records(
    dataset: Dataset | str | int, split: str, *, rule: str, left_out: Counter | None = None
) -> Iterator[dict]:
    """The split as feedback-format records, one per example under `rule`, by position.

    Examples the rule leaves out are counted by reason into `left_out`.
    """
    check_rule(rule)
    left_out = Counter() if left_out is None else left_out
    if rule == LATEST:
        written = 0
        for record in iter_feedback_records(dataset, split):
            written += 1
            yield record
        missing = Example.objects.filter(dataset=dataset_resolve(dataset), split=split).count() - written
        if missing:
            left_out[NOT_ANNOTATED] += missing
        return
    for example in iter_annotated_examples(dataset, split, adjudications=rule == ADJUDICATED):
        if len(example.predictions) != N_RESPONSES:
            left_out[NO_ANSWERS] += 1
            continue
        chosen = aggregate_example(example, rule)
        if chosen is None or chosen["feedback"] is None or chosen["preference"] is None:
            left_out[NOT_ADJUDICATED if rule == ADJUDICATED else NOT_ANNOTATED] += 1
            continue
        yield example.record(chosen["feedback"], chosen["preference"])


def iter_disagreement_lines(
    dataset: Dataset | str | int, split: str, *, rule: str = MAJORITY, left_out: Counter | None = None
) -> Iterator[dict]:
    """One dict per (example, annotator) that keeps every annotator's work, for soft labels or studies:

    {"example": N, "question", "prediction 1".."prediction 4", "annotator",
     "feedback": the annotator's qa-feedback block or null, "preference": [6] or null,
     "aggregated": {"rule", "feedback", "preference"} (nulls where the rule has none),
     "agreement": the example's qa.agreement.item_agreement figures}.
    Examples nobody annotated give no line (counted into `left_out`).
    """
    check_rule(rule)
    left_out = Counter() if left_out is None else left_out
    for example in iter_annotated_examples(dataset, split, adjudications=rule == ADJUDICATED):
        if not example.annotations:
            left_out[NOBODY] += 1
            continue
        chosen = aggregate_example(example, rule) or {}
        aggregated = {"rule": rule, "feedback": chosen.get("feedback"), "preference": chosen.get("preference")}
        figures = qa_agreement.item_agreement(example.agreement_item())
        predictions = dict(zip(PREDICTION_KEYS, example.predictions, strict=False))
        for name, annotation in example.annotations.items():
            yield {
                "example": example.number,
                "question": example.question,
                **predictions,
                "annotator": name,
                "feedback": annotation["feedback"],
                "preference": annotation["preference"],
                "aggregated": aggregated,
                "agreement": figures,
            }
