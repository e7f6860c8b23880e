"""Suggester runs and hand-placed suggestions for the model-in-the-loop tests (plain functions, like annotate_data)."""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from annotation.models import Campaign, Response, Suggestion
from annotation.qa import suggestions as sq
from annotation.qa.vocab import F_ERR, NF_ERR, NO_ERROR
from tests.annotation.annotate_data import offsets_of
from training.models import Artifact, RunStatus, TrainingRun

KINDS = {sq.RELEVANCE: "rm_relevance", sq.FACTUALITY: "rm_factuality", "preference": "rm_preference"}
ERROR_LABEL = {sq.RELEVANCE: NF_ERR, sq.FACTUALITY: F_ERR}


def suggester_run(role: str, model_dir: Path | None = None) -> TrainingRun:
    """A succeeded run of the role's kind; with `model_dir`, its model copied under MODEL_ROOT as the run's model."""
    run = TrainingRun.objects.create(kind=KINDS[role], status=RunStatus.SUCCEEDED, finished_at=timezone.now(), name=f"tiny {role}")
    if model_dir is not None:
        relative = Path("runs") / f"run-{run.pk}" / "model"
        shutil.copytree(model_dir, Path(settings.MODEL_ROOT) / relative)
        Artifact.objects.create(run=run, kind=Artifact.Kind.MODEL, name="model", path=str(relative))
    return run


def add_suggestion(campaign: Campaign, response: Response, suggester: str, phrase: str, *, p: float = 0.9,
                   occurrence: int = 1, position: int | None = None, label: str | None = None) -> Suggestion:
    start, end = offsets_of(response.text, phrase, occurrence)
    if position is None:
        position = Suggestion.objects.filter(campaign=campaign, response=response, suggester=suggester).count()
    if label is None:
        label = ERROR_LABEL[suggester] if p >= 0.5 else NO_ERROR
    return Suggestion.objects.create(campaign=campaign, response=response, suggester=suggester, position=position,
                                     start=start, end=end, label=label, probability=p)
