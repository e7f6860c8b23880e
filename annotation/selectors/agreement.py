"""Reads for agreement: every annotator's submitted work on a split, as the plain items of qa.agreement.

Four queries per call, whatever the size of the split (prediction 1 of each
example, the submitted fine-grained feedback on it, their spans, the
submitted comparisons), read as plain values; the figures are computed by
annotation.qa.agreement. Annotators are named by username; imported feedback
without `--annotator` belongs to `import@<dataset>`, which counts as one
annotator like any other.
"""

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from annotation.models import Campaign, Comparison, Dataset, ErrorSpan, FeedbackStatus, FineGrainedFeedback, Response
from annotation.qa import agreement as qa_agreement
from annotation.selectors.annotate import FINE_GRAINED_RESPONSE_NUMBER
from annotation.selectors.datasets import dataset_resolve


@dataclass(frozen=True)
class SplitItem:
    example_id: int
    number: int  # 1-based, as the pages number examples
    item: dict[str, dict[str, Any]]  # annotator -> {"prediction", "errors", "preference"} (qa.agreement.Item)


def split_items(
    *, dataset: Dataset | str | int, split: str, annotators: Collection[str] | None = None
) -> list[SplitItem]:
    """Every example of the split with at least one submitted annotation, by position.

    `annotators` (usernames) keeps only their work; None keeps everyone's.
    An annotator with only a comparison has errors None; one with only
    fine-grained feedback has preference None.
    """
    dataset = dataset_resolve(dataset)
    in_split = {"example__dataset": dataset, "example__split": split}
    who = {} if annotators is None else {"annotator__username__in": list(annotators)}
    predictions, positions = {}, {}
    for example_id, text, position in Response.objects.filter(
        **in_split, number=FINE_GRAINED_RESPONSE_NUMBER
    ).values_list("example_id", "text", "example__position"):
        predictions[example_id], positions[example_id] = text, position
    submitted = {
        "response__example__dataset": dataset,
        "response__example__split": split,
        "response__number": FINE_GRAINED_RESPONSE_NUMBER,
        "status": FeedbackStatus.SUBMITTED,
    }
    feedback = {
        feedback_id: (example_id, username)
        for feedback_id, example_id, username in FineGrainedFeedback.objects.filter(**submitted, **who).values_list(
            "id", "response__example_id", "annotator__username"
        )
    }
    spans: dict[int, list[tuple[int, int, str]]] = {feedback_id: [] for feedback_id in feedback}
    details = {f"feedback__{key}": value for key, value in submitted.items()}
    for feedback_id, start, end, error_type in (
        ErrorSpan.objects.filter(**details).order_by("feedback_id", "position").values_list(
            "feedback_id", "start", "end", "error_type"
        )
    ):
        if feedback_id in spans:
            spans[feedback_id].append((start, end, error_type))
    items: dict[int, dict[str, dict[str, Any]]] = {}
    for feedback_id, (example_id, username) in feedback.items():
        entry = items.setdefault(example_id, {}).setdefault(
            username, {"prediction": predictions.get(example_id, ""), "errors": None, "preference": None}
        )
        entry["errors"] = spans[feedback_id]
    for example_id, username, preference in Comparison.objects.filter(
        **in_split, **who, status=FeedbackStatus.SUBMITTED
    ).values_list("example_id", "annotator__username", "preference"):
        entry = items.setdefault(example_id, {}).setdefault(
            username, {"prediction": predictions.get(example_id, ""), "errors": None, "preference": None}
        )
        entry["preference"] = preference
    known = [e for e in items if e in positions]
    return [
        SplitItem(example_id=e, number=positions[e] + 1, item=items[e]) for e in sorted(known, key=positions.__getitem__)
    ]


def dataset_agreement(*, dataset: Dataset | str | int, split: str) -> dict[str, Any]:
    """The agreement figures of one split, over everyone's work (the shape of `manage.py agreement --json`):

    {"items", "annotators", "preference": {"alpha"}, "errors": {"alpha", "per_type", "span_f1_exact"}}.
    """
    return qa_agreement.agreement([row.item for row in split_items(dataset=dataset, split=split)])


def campaign_annotators(campaign: Campaign) -> list[str]:
    return sorted(campaign.annotators.values_list("username", flat=True))


def campaign_agreement(*, campaign: Campaign) -> dict[str, Any]:
    """The figures of dataset_agreement restricted to the campaign's dataset/split and its annotators, plus
    "per_annotator": each annotator against the others (qa.agreement.annotator_agreement)."""
    rows = split_items(dataset=campaign.dataset_id, split=campaign.split, annotators=campaign_annotators(campaign))
    items = [row.item for row in rows]
    return {**qa_agreement.agreement(items), "per_annotator": qa_agreement.annotator_agreement(items)}


@dataclass(frozen=True)
class ItemDisagreement:
    example_id: int
    number: int
    figures: dict[str, Any]  # qa.agreement.item_agreement: annotators, *_agreement, span_f1_exact, disagreement


def item_disagreement(
    *, dataset: Dataset | str | int, split: str, annotators: Collection[str] | None = None, shared_only: bool = True
) -> list[ItemDisagreement]:
    """The split's items with their own agreement, most disagreement first (a review queue's order).

    `annotators` restricts to their work (a campaign's: campaign_annotators);
    `shared_only` keeps the items two or more of them annotated. Items whose
    disagreement is undefined come last, in file order.
    """
    rows = split_items(dataset=dataset, split=split, annotators=annotators)
    if shared_only:
        rows = [row for row in rows if len(row.item) >= 2]
    scored = qa_agreement.disagreement_order((row, qa_agreement.item_agreement(row.item)) for row in rows)
    return [ItemDisagreement(example_id=row.example_id, number=row.number, figures=figures) for row, figures in scored]


def campaign_item_disagreement(*, campaign: Campaign) -> list[ItemDisagreement]:
    """item_disagreement over a campaign's dataset/split and annotators."""
    return item_disagreement(
        dataset=campaign.dataset_id, split=campaign.split, annotators=campaign_annotators(campaign)
    )
