"""Writes for the model in the loop: campaign suggester settings, scoring jobs, stored scores, annotators' answers.

The scoring itself runs on the `gpu` queue (training/suggestions.py, sent by
task name: annotation never imports training); it hands its results to
`suggestions_store` here. Definitions of the keys and the control group are in
annotation/qa/suggestions.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.models import (
    Assignment,
    Campaign,
    CampaignOrder,
    ItemScore,
    Response,
    Suggestion,
    SuggestionEvent,
    SuggestionJob,
)
from annotation.qa import suggestions as sq
from annotation.qa.errors import BadRequest, Conflict, NotFound
from annotation.selectors.suggestions import (
    SUGGESTER_RUN_FIELDS,
    acted_suggestion_ids,
    campaign_example_ids,
    suggester_run_problem,
)
from config.celery import app as celery_app

SUGGEST_TASK = "training.score_suggestions"
REWARD_SOURCE = "suggestions"  # marks the reward_segments entries this module wrote


def _suggest_queue() -> str:
    return settings.TRAINING_QUEUE


def campaign_suggest_settings_save(
    *,
    campaign: Campaign,
    runs: Mapping[str, int | None],
    no_suggestion_share: float,
    order: str,
    order_seed: int,
) -> Campaign:
    """Set the suggesters (`runs`: relevance / factuality / preference -> run id or None), the share and the order."""
    errors = []
    if not 0 <= no_suggestion_share <= 1:
        errors.append(BadRequest("the share without suggestions must lie between 0 and 1", field="no_suggestion_share"))
    if order not in CampaignOrder.values:
        errors.append(BadRequest(f"{order!r} is not an order; choose one of {', '.join(CampaignOrder.values)}", field="order"))
    if order_seed < 0:
        errors.append(BadRequest("the seed must be 0 or more", field="order_seed"))
    for role, run_id in runs.items():
        if role not in SUGGESTER_RUN_FIELDS:
            errors.append(BadRequest(f"unknown suggester {role!r}", field="runs"))
        elif run_id is not None:
            problem = suggester_run_problem(role, run_id)
            if problem:
                errors.append(BadRequest(problem, field=SUGGESTER_RUN_FIELDS[role]))
    if errors:
        raise errors[0]
    for role, run_id in runs.items():
        setattr(campaign, f"{SUGGESTER_RUN_FIELDS[role]}_id", run_id)
    campaign.no_suggestion_share = no_suggestion_share
    campaign.order = order
    campaign.order_seed = order_seed
    with transaction.atomic():
        campaign.save()
        item_scores_refresh(campaign=campaign)
    return campaign


def _enqueue(job_id: int) -> None:
    celery_app.signature(SUGGEST_TASK, args=[job_id], queue=_suggest_queue()).apply_async()


def suggestion_job_request(*, campaign: Campaign, user=None) -> SuggestionJob:
    """Store a queued scoring of the campaign's responses and send it to the `gpu` queue after commit."""
    if not any(getattr(campaign, f"{field}_id") for field in SUGGESTER_RUN_FIELDS.values()):
        raise BadRequest("choose at least one reward-model run as a suggester first", field="suggest_relevance_run")
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.suggestion_jobs.filter(status__in=[SuggestionJob.Status.QUEUED, SuggestionJob.Status.RUNNING]).exists():
            raise Conflict("this campaign's responses are already being scored", field="campaign")
        job = SuggestionJob.objects.create(campaign=locked, created_by=user)
        transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def suggestion_job_start(*, job: SuggestionJob, total: int) -> None:
    job.status, job.total, job.done, job.started_at = SuggestionJob.Status.RUNNING, total, 0, timezone.now()
    job.save(update_fields=["status", "total", "done", "started_at"])


def suggestion_job_progress(*, job: SuggestionJob, done: int) -> None:
    SuggestionJob.objects.filter(pk=job.pk).update(done=done)
    job.done = done


def suggestion_job_finish(*, job: SuggestionJob, error: str = "") -> None:
    job.status = SuggestionJob.Status.FAILED if error else SuggestionJob.Status.SUCCEEDED
    job.error = error
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "finished_at"])


def _reward_segments(response: Response, scored: Mapping[str, Sequence[tuple[int, int, str, float]]],
                     runs: Mapping[str, int | None]) -> list[dict]:
    kept = [s for s in response.reward_segments or [] if s.get("source") != REWARD_SOURCE]
    if kept:
        return response.reward_segments  # rewards from elsewhere (a policy's round) stay as they are
    out = []
    for suggester, segments in scored.items():
        positive, negative = sq.REWARD_WEIGHTS[suggester]
        name = sq.SUGGESTER_SHORT[suggester] + (f" (run {runs[suggester]})" if runs.get(suggester) else "")
        for start, end, label, _p in segments:
            reward = negative if sq.is_error(label) else positive
            out.append({"start": start, "end": end, "reward": reward, "label": label, "model": name, "source": REWARD_SOURCE})
    return out


def suggestions_store(
    *,
    campaign: Campaign,
    scores: Mapping[int, Mapping[str, object]],
    runs: Mapping[str, int | None],
) -> int:
    """Replace the stored scores of these responses.

    `scores`: response id -> {"relevance": [(start, end, label, p), ...],
    "factuality": [...], "preference": float | None}. Fills each response's
    `reward_segments` when nothing else did. Returns the suggestions stored.
    """
    responses = {r.pk: r for r in Response.objects.filter(pk__in=list(scores))}
    rows = []
    changed = []
    with transaction.atomic():
        Suggestion.objects.filter(campaign=campaign, response_id__in=list(responses)).delete()
        for response_id, result in scores.items():
            response = responses.get(response_id)
            if response is None:
                continue
            segments = {s: result.get(s) or [] for s in sq.SUGGESTERS if result.get(s)}
            for suggester, found in segments.items():
                for position, (start, end, label, p) in enumerate(found):
                    rows.append(Suggestion(campaign=campaign, response=response, run_id=runs.get(suggester), suggester=suggester,
                                           position=position, start=start, end=end, label=label,
                                           probability=min(1.0, max(0.0, float(p)))))
            new = _reward_segments(response, segments, runs)
            if new != response.reward_segments:
                response.reward_segments = new
                changed.append(response)
        Suggestion.objects.bulk_create(rows, batch_size=1000)
        Response.objects.bulk_update(changed, ["reward_segments"], batch_size=500)
        _store_preference(campaign, responses, scores)
    return len(rows)


def _store_preference(campaign: Campaign, responses: Mapping[int, Response], scores: Mapping[int, Mapping]) -> None:
    by_example: dict[int, dict[str, float]] = defaultdict(dict)
    for response_id, result in scores.items():
        response = responses.get(response_id)
        if response is not None and result.get("preference") is not None:
            by_example[response.example_id][str(response.number)] = float(result["preference"])
    existing = {s.example_id: s for s in ItemScore.objects.filter(campaign=campaign, example_id__in=list(by_example))}
    create, update = [], []
    for example_id, preference in by_example.items():
        row = existing.get(example_id)
        if row is None:
            create.append(ItemScore(campaign=campaign, example_id=example_id, scores={"preference": preference}))
        else:
            row.scores = {**row.scores, "preference": {**row.scores.get("preference", {}), **preference}}
            update.append(row)
    ItemScore.objects.bulk_create(create, batch_size=500)
    ItemScore.objects.bulk_update(update, ["scores"], batch_size=500)


def item_scores_refresh(*, campaign: Campaign) -> int:
    """Recompute every item's order keys from the stored suggestions and preference scores."""
    example_ids = campaign_example_ids(campaign)
    probabilities: dict[int, list[float]] = defaultdict(list)
    expected: dict[int, dict[int, list[tuple[str, float]]]] = defaultdict(lambda: defaultdict(list))
    for example_id, number, suggester, p in Suggestion.objects.filter(campaign=campaign).values_list(
        "response__example_id", "response__number", "suggester", "probability"
    ):
        probabilities[example_id].append(p)
        expected[example_id][number].append((suggester, p))
    existing = {s.example_id: s for s in ItemScore.objects.filter(campaign=campaign)}
    create, update = [], []
    for example_id in example_ids:
        row = existing.get(example_id) or ItemScore(campaign=campaign, example_id=example_id, scores={})
        preference = {int(k): v for k, v in (row.scores.get("preference") or {}).items()}
        fine = {n: sq.expected_reward(segs) for n, segs in expected[example_id].items()}
        numbers = sorted(set(fine) & set(preference))
        row.uncertainty = sq.uncertainty_key(probabilities[example_id], [preference[n] for n in sorted(preference)])
        row.disagreement = sq.disagreement_key([fine[n] for n in numbers], [preference[n] for n in numbers])
        row.random_key = sq.random_key(example_id, seed=campaign.order_seed)
        row.scores = {**row.scores, "fine_grained": {str(n): v for n, v in fine.items()}}
        (update if row.pk else create).append(row)
    ItemScore.objects.bulk_create(create, batch_size=500)
    ItemScore.objects.bulk_update(update, ["uncertainty", "disagreement", "random_key", "scores"], batch_size=500)
    return len(create) + len(update)


def suggestion_event_record(
    *,
    assignment: Assignment,
    suggestion_id: int,
    action: str,
    error_type: str = "",
    start: int | None = None,
    end: int | None = None,
) -> SuggestionEvent:
    """Record an annotator's accept, trim or dismiss of a suggestion shown on their item."""
    if action not in sq.ACTIONS:
        raise BadRequest(f"{action!r} is not an answer to a suggestion; use {', '.join(sq.ACTIONS)}", field="action")
    suggestion = Suggestion.objects.filter(
        pk=suggestion_id, campaign_id=assignment.campaign_id, response__example_id=assignment.example_id
    ).first()
    if suggestion is None:
        raise NotFound(f"suggestion {suggestion_id} is not one of this item's", field="suggestion")
    if suggestion_id in acted_suggestion_ids(assignment=assignment):
        raise Conflict(f"suggestion {suggestion_id} was already answered", field="suggestion")
    return SuggestionEvent.objects.create(
        suggestion=suggestion,
        assignment=assignment,
        annotator_id=assignment.annotator_id,
        action=action,
        error_type=error_type,
        start=start,
        end=end,
    )


def suggestion_check_answer(*, suggestion: Suggestion, action: str, error_type: str, start: int | None, end: int | None) -> None:
    """Refuse a type the suggester does not propose, and a trim that leaves the suggestion's words."""
    if action == sq.DISMISS:
        return
    allowed = sq.SUGGESTER_TYPES[suggestion.suggester]
    if error_type not in allowed:
        names = " or ".join(sorted(allowed))
        raise BadRequest(
            f"{sq.SUGGESTER_NAMES[suggestion.suggester]} suggests {names} errors, not {error_type!r}", field="type"
        )
    if action == sq.TRIM and (start is None or end is None or not suggestion.start <= start < end <= suggestion.end):
        raise BadRequest("a trimmed span must lie inside its suggestion", field="start")

