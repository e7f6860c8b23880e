"""The worker side of annotation suggestions: score a campaign's responses with its suggester runs.

Runs in the `training.score_suggestions` task on the `gpu` queue. The models
run in this process (they are small next to a training run, and scoring is
minutes at most); the pure scoring is training/ml/suggest.py, and the results
are stored by annotation/services/suggestions.py.
"""

from __future__ import annotations

import logging

from annotation.models import Response, SuggestionJob
from annotation.qa.suggestions import FACTUALITY, RELEVANCE
from annotation.qa.text import load_splitter
from annotation.selectors.annotate import example_passages
from annotation.selectors.suggestions import SUGGESTER_RUN_FIELDS, campaign_example_ids
from annotation.services.suggestions import (
    item_scores_refresh,
    suggestion_job_finish,
    suggestion_job_progress,
    suggestion_job_start,
    suggestions_store,
)
from training.selectors import run_model_path

logger = logging.getLogger(__name__)

# Responses scored and stored per step (progress is written after each).
CHUNK = 256


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_models(campaign) -> tuple[dict, dict[str, int | None]]:
    from training.ml.reward_models import PreferenceRewardModel, TokenRewardModel

    loaders = {RELEVANCE: TokenRewardModel, FACTUALITY: TokenRewardModel, "preference": PreferenceRewardModel}
    models, run_ids = {}, {}
    for role, field in SUGGESTER_RUN_FIELDS.items():
        run = getattr(campaign, field)
        run_ids[role] = run.pk if run else None
        if run is None:
            continue
        path = run_model_path(run)
        if path is None:
            raise FileNotFoundError(f"run {run.pk} ({run.kind}) has no saved model to score with")
        models[role] = loaders[role].load(path, device=_device())
    return models, run_ids


def suggestion_job_run(*, job_id: int) -> SuggestionJob:
    """Score every response of the job's campaign; progress and outcome go to the job's row."""
    from training.ml.suggest import ResponseInput, score_responses

    job = SuggestionJob.objects.select_related("campaign").get(pk=job_id)
    if job.status != SuggestionJob.Status.QUEUED:
        return job
    campaign = job.campaign
    try:
        responses = list(
            Response.objects.filter(example_id__in=campaign_example_ids(campaign))
            .select_related("example")
            .prefetch_related("example__passages")
            .order_by("example__position", "number")
        )
        suggestion_job_start(job=job, total=len(responses))
        models, run_ids = _load_models(campaign)
        nlp, _name = load_splitter()
        for begin in range(0, len(responses), CHUNK):
            chunk = responses[begin : begin + CHUNK]
            inputs = [ResponseInput(r.example.question, example_passages(r.example) or None, r.text) for r in chunk]
            results = score_responses(
                inputs, nlp=nlp, relevance=models.get(RELEVANCE), factuality=models.get(FACTUALITY),
                preference=models.get("preference"),
            )
            scores = {
                r.pk: {
                    RELEVANCE: [(s.start, s.end, s.label, s.probability) for s in result.relevance],
                    FACTUALITY: [(s.start, s.end, s.label, s.probability) for s in result.factuality],
                    "preference": result.preference,
                }
                for r, result in zip(chunk, results)
            }
            suggestions_store(campaign=campaign, scores=scores, runs=run_ids)
            suggestion_job_progress(job=job, done=begin + len(chunk))
        item_scores_refresh(campaign=campaign)
    except Exception as exc:  # the job's row says what went wrong; the worker lives on
        logger.exception("scoring suggestions for campaign %s failed", campaign.pk)
        suggestion_job_finish(job=job, error=f"{type(exc).__name__}: {exc}")
        return job
    suggestion_job_finish(job=job)
    return job
