"""Reads for reward-model file builds: the job list and how many items have several annotations."""

from pathlib import Path

from django.db.models import Count, QuerySet

from annotation.models import Comparison, Dataset, Example, FeedbackStatus, FineGrainedFeedback, RmDataBuild
from annotation.qa.rm_files import OUTPUT_NAMES, output_paths
from annotation.selectors.annotate import FINE_GRAINED_RESPONSE_NUMBER
from annotation.selectors.datasets import dataset_resolve

RECENT_BUILDS = 20


def rm_data_builds(*, limit: int = RECENT_BUILDS) -> QuerySet[RmDataBuild]:
    """The most recent builds first."""
    return RmDataBuild.objects.select_related("dataset", "created_by").order_by("-created_at", "-id")[:limit]


def rm_data_builds_active() -> bool:
    return RmDataBuild.objects.filter(status__in=[RmDataBuild.Status.QUEUED, RmDataBuild.Status.RUNNING]).exists()


def rm_data_split_counts(*, dataset: Dataset | str | int, split: str) -> dict[str, int]:
    """Examples in the split, and how many have more than one submitted annotation of each kind."""
    dataset = dataset_resolve(dataset)
    in_split = {"response__example__dataset": dataset, "response__example__split": split}
    several_feedback = (
        FineGrainedFeedback.objects.filter(
            **in_split, response__number=FINE_GRAINED_RESPONSE_NUMBER, status=FeedbackStatus.SUBMITTED
        )
        .values("response")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    several_comparisons = (
        Comparison.objects.filter(example__dataset=dataset, example__split=split, status=FeedbackStatus.SUBMITTED)
        .values("example")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    return {
        "examples_in_split": Example.objects.filter(dataset=dataset, split=split).count(),
        "items_with_several_feedback": several_feedback,
        "items_with_several_comparisons": several_comparisons,
    }


def dataset_split_choices() -> list[tuple[str, str]]:
    """(dataset name, split) for every split that has examples, for the build form."""
    rows = Example.objects.order_by("dataset__name", "split").values_list("dataset__name", "split").distinct()
    return list(rows)


def rm_data_build_file(*, build: RmDataBuild, name: str) -> Path | None:
    """The path of one output of a finished build, or None when it has none of that name."""
    if name not in OUTPUT_NAMES or build.status != RmDataBuild.Status.SUCCEEDED or not build.out_dir:
        return None
    path = output_paths(build.out_dir, build.split)[name]
    return path if path.is_file() else None
