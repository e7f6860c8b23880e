"""New annotation rounds from a policy run: the writes (request, execute, store) behind the run page's
button and `manage.py generate_round`.

A round is a NEW SPLIT of the run's dataset, `<split>-round<R>`: its examples
copy the question, passages, gold and policy inputs of the source examples,
and their responses are the K answers the policy sampled (numbers 1..K,
`round` R, `source_run` the run, `reward_segments` from the run's reward
models). A campaign is opened over it (`source_run` set): fine-grained
feedback on answer 1, and with K = 4 the comparison of the four. Annotated,
the split exports in the qa-feedback format like any other and feeds the
next pipeline; unannotated, it already exports as policy inputs.

The web request only queues a RoundJob; the `training.generate_round` task
on the gpu queue runs `round_execute`, which samples (training/ml/rounds.py,
in the worker's process) and writes. The command runs the same function
inline.

A round can be cancelled (`round_cancel`): a queued one at once; a running
one stops after the batch of answers in hand (the worker looks at the job's
row after each batch, and once more, under the row's lock, before it stores
anything). A cancelled round stores nothing.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotation.models import CampaignTask, Dataset, Example, Passage, Response
from annotation.qa import format as qa_format
from annotation.qa.errors import BadRequest, Conflict, NotFound
from annotation.qa.vocab import RESPONSES
from annotation.roles import ANNOTATOR
from annotation.services.campaigns import campaign_create
from config.celery import app as celery_app
from training.ml.data import Example as PolicyExample
from training.models import RoundJob, RunStatus, TrainingRun
from training.selectors import run_model_path

logger = logging.getLogger(__name__)

ROUND_TASK = "training.generate_round"
# Kinds whose saved model is a policy that can answer questions.
POLICY_KINDS = ("sft", "ppo_fine_grained", "ppo_holistic")
# A running round reports after each batch of answers; this long without a report, its worker is taken for dead.
ROUND_STALE_S = 600
SPLIT_MAX = Example._meta.get_field("split").max_length
_ROUND_SUFFIX = re.compile(r"-round\d+$")


# ---------------------------------------------------------------- asking for a round


def round_check(*, run: TrainingRun, dataset: Dataset | None, split: str, samples: int) -> tuple[Dataset, str]:
    """(dataset, split) a round of `run` would sample from; BadRequest/Conflict names what is wrong."""
    if run.kind not in POLICY_KINDS:
        raise BadRequest(f"run #{run.pk} is a {run.kind} run; new rounds come from SFT or PPO policies", field="run")
    if run.status != RunStatus.SUCCEEDED:
        raise Conflict(f"run #{run.pk} is {run.status}; only a succeeded run's policy can answer a new round", field="run")
    if run_model_path(run) is None:
        raise Conflict(f"run #{run.pk} saved no model to sample from", field="run")
    if not 1 <= samples <= len(RESPONSES):
        raise BadRequest(f"samples must be 1 to {len(RESPONSES)} (an example holds at most four answers); got {samples}",
                         field="samples")
    dataset = dataset or run.dataset
    if dataset is None:
        raise BadRequest(f"run #{run.pk} was trained on uploaded files; name a dataset to sample questions from", field="dataset")
    split = (split or run.eval_split or run.train_split).strip()
    if not Example.objects.filter(dataset=dataset, split=split).exists():
        raise BadRequest(f"dataset {dataset.name} has no examples in split {split!r}", field="split")
    if not _annotators().exists():
        raise Conflict("there is no annotator account to open the round's campaign for; add one first", field="annotators")
    return dataset, split


def _annotators():
    return get_user_model().objects.filter(groups__name=ANNOTATOR, is_active=True).distinct().order_by("pk")


def round_request(*, run: TrainingRun, dataset: Dataset | None = None, split: str = "", samples: int = 4, limit: int = 0,
                  campaign_name: str = "", user=None) -> RoundJob:
    """Queue a new round of `run` on the gpu queue (after commit); the run page follows the job."""
    dataset, split = round_check(run=run, dataset=dataset, split=split, samples=samples)
    with transaction.atomic():
        job = RoundJob.objects.create(
            run=run, dataset=dataset, source_split=split, samples=samples, limit=max(0, limit),
            campaign_name=campaign_name.strip()[:200],
            created_by=user if user is not None and user.is_authenticated else None,
        )
        job_id = job.pk
        transaction.on_commit(lambda: _enqueue(job_id))
    return job


def _enqueue(job_id: int) -> None:
    if celery_app.conf.task_always_eager:
        celery_app.loader.import_default_modules()
        celery_app.tasks[ROUND_TASK].apply(args=[job_id])
        return
    celery_app.send_task(ROUND_TASK, args=[job_id], queue=settings.TRAINING_QUEUE, task_id=str(uuid.uuid4()))


def round_generate(*, run: TrainingRun, dataset: Dataset | None = None, split: str = "", samples: int = 4, limit: int = 0,
                   campaign_name: str = "", user=None, progress=None) -> RoundJob:
    """The same round, done here and now (the command line): returns the finished job."""
    dataset, split = round_check(run=run, dataset=dataset, split=split, samples=samples)
    job = RoundJob.objects.create(run=run, dataset=dataset, source_split=split, samples=samples, limit=max(0, limit),
                                  campaign_name=campaign_name.strip()[:200], created_by=user)
    return round_execute(job_id=job.pk, progress=progress)


def round_cancel(*, job_id: int) -> RoundJob:
    """Cancel a round: a queued one is cancelled now, a running one is asked to stop (see the module's docstring).

    Raises Conflict for a round that has already finished.
    """
    with transaction.atomic():
        job = RoundJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            raise NotFound(f"no round job #{job_id}", field="job")
        if job.status == RoundJob.Status.QUEUED:
            job.status, job.finished_at = RoundJob.Status.CANCELLED, timezone.now()
            job.save(update_fields=["status", "finished_at"])
        elif job.status == RoundJob.Status.RUNNING:
            job.cancel_requested = True
            job.save(update_fields=["cancel_requested"])
        else:
            raise Conflict(f"round job #{job_id} has already {job.status}; there is nothing to cancel", field="job")
    return job


class RoundCancelled(Exception):
    """Raised in the worker when the round was cancelled while it sampled."""


# ---------------------------------------------------------------- doing it (the worker)


def source_examples(*, dataset: Dataset, split: str, limit: int = 0) -> list[Example]:
    rows = Example.objects.filter(dataset=dataset, split=split).prefetch_related("passages").order_by("position")
    return list(rows[:limit] if limit else rows)


def _passage_rows(example: Example) -> list[tuple[str, list[str]]]:
    """(title, sentences) of each passage: the feedback format's, else the policy input's (one sentence each)."""
    passages = sorted(example.passages.all(), key=lambda p: p.number)
    if passages:
        return [(p.title, list(p.sentences)) for p in passages]
    return [(p.get("wikipage", ""), [p.get("content", "")]) for p in example.input_passages or []]


def policy_prompt(example: Example) -> str:
    """The policy's prompt: the inputs format's `text` when the example has it, else built the same way
    (annotation.qa.format, as pipelines derive policy inputs from feedback-only splits)."""
    if example.has_input_format and example.policy_text:
        return example.policy_text
    passages = [{"content": qa_format.join_passage_sentences(sentences), "wikipage": title}
                for title, sentences in _passage_rows(example)]
    return qa_format.policy_prompt(example.question, passages)


def _policy_example(example: Example) -> PolicyExample:
    answers = tuple(example.answers or ([example.gold] if example.gold else []))
    passages = tuple((title, qa_format.join_passage_sentences(sentences)) for title, sentences in _passage_rows(example))
    return PolicyExample(text=policy_prompt(example), answers=answers, question=example.question, passages=passages)


def round_execute(*, job_id: int, progress=None) -> RoundJob:
    """Claim a queued round, sample and score the answers, store them and open the campaign."""
    now = timezone.now()
    claimed = RoundJob.objects.filter(pk=job_id, status=RoundJob.Status.QUEUED).update(
        status=RoundJob.Status.RUNNING, started_at=now, heartbeat_at=now)
    job = RoundJob.objects.select_related("run", "dataset").get(pk=job_id)
    if not claimed:
        return job
    # The policy and reward models (torch) are loaded here, in the worker that samples: never in a web process.
    from training.ml import rounds as ml_rounds

    try:
        examples = source_examples(dataset=job.dataset, split=job.source_split, limit=job.limit)
        config = job.run.config

        def report(done: int, total: int) -> None:
            RoundJob.objects.filter(pk=job_id).update(progress_done=done, progress_total=total, heartbeat_at=timezone.now())
            if RoundJob.objects.filter(pk=job_id, cancel_requested=True).exists():
                raise RoundCancelled
            if progress is not None:
                progress(done, total)

        answers = ml_rounds.generate_round(
            policy_path=str(run_model_path(job.run)),
            examples=[_policy_example(e) for e in examples],
            settings=ml_rounds.sampling_settings(config, samples=job.samples),
            reward_paths=ml_rounds.reward_model_paths(config),
            weights=ml_rounds.reward_weights(config),
            sentence_splitter=config.get("sentence_splitter") or "sentencizer",
            progress=report,
        )
        round_store(job=job, examples=examples, answers=answers)
    except RoundCancelled:
        logger.info("round %s cancelled", job_id)
        RoundJob.objects.filter(pk=job_id).update(status=RoundJob.Status.CANCELLED, finished_at=timezone.now())
    except Exception as exc:
        logger.exception("round %s failed", job_id)
        RoundJob.objects.filter(pk=job_id).update(status=RoundJob.Status.FAILED, finished_at=timezone.now(),
                                                  error=f"{type(exc).__name__}: {exc}"[:2000])
    job.refresh_from_db()
    return job


def next_round(dataset: Dataset) -> int:
    top = Response.objects.filter(example__dataset=dataset).aggregate(top=Max("round"))["top"]
    return (top or 0) + 1


def round_split_name(source_split: str, number: int, taken: Iterable[str]) -> str:
    """`<split>-round<R>` (a source that is a round itself loses its suffix), shortened to fit; never one taken."""
    taken = set(taken)
    base = _ROUND_SUFFIX.sub("", source_split)
    while True:
        suffix = f"-round{number}"
        name = base[: SPLIT_MAX - len(suffix)] + suffix
        if name not in taken:
            return name
        number += 1


def round_store(*, job: RoundJob, examples: Sequence[Example], answers: Sequence[Sequence[dict]]) -> RoundJob:
    """Write the round: a new split with the sampled answers as responses, and a campaign over it."""
    run, dataset = job.run, job.dataset
    with transaction.atomic():
        # The job's row stays locked until the round is stored, and round_cancel takes the same lock: a cancel
        # that came after the last batch wins here, one that comes later finds the round succeeded.
        if RoundJob.objects.select_for_update().filter(pk=job.pk).values_list("cancel_requested", flat=True).get():
            raise RoundCancelled
        number = next_round(dataset)
        taken = Example.objects.filter(dataset=dataset).values_list("split", flat=True).distinct()
        split = round_split_name(job.source_split, number, taken)
        number = int(split.rsplit("-round", 1)[1])
        source_model = f"run #{run.pk} ({run.kind})"[:200]
        for position, (example, sampled) in enumerate(zip(examples, answers, strict=True)):
            new = Example.objects.create(
                dataset=dataset, split=split, position=position, question=example.question, gold=example.gold,
                has_feedback_format=True, policy_text=policy_prompt(example),
                answers=list(example.answers or ([example.gold] if example.gold else [])),
                input_passages=example.input_passages or [
                    {"wikipage": title, "content": qa_format.join_passage_sentences(s)} for title, s in _passage_rows(example)],
                has_input_format=True, input_position=position,
                meta={**(example.meta or {}), "round": number, "source_example": example.pk, "source_run": run.pk},
            )
            Passage.objects.bulk_create([Passage(example=new, number=n, title=title, sentences=sentences)
                                         for n, (title, sentences) in enumerate(_passage_rows(example), start=1)])
            Response.objects.bulk_create([
                Response(example=new, number=k, text=answer["text"], source_model=source_model, round=number,
                         source_run=run, reward_segments=answer["reward_segments"])
                for k, answer in enumerate(sampled, start=1)
            ])
        task = CampaignTask.BOTH if job.samples == len(RESPONSES) else CampaignTask.FINE_GRAINED
        name = job.campaign_name or f"Round {number}: {dataset.name}/{split} from run #{run.pk}"
        try:
            campaign = campaign_create(name=name, dataset=dataset, split=split, task=task, annotators=_annotators(),
                                       created_by=job.created_by)
        except ValidationError as exc:
            raise Conflict("; ".join(m for ms in exc.message_dict.values() for m in ms)) from None
        campaign.source_run = run
        campaign.save(update_fields=["source_run"])
        RoundJob.objects.filter(pk=job.pk).update(
            status=RoundJob.Status.SUCCEEDED, finished_at=timezone.now(), round=number, split=split, campaign=campaign,
            examples=len(examples), responses=sum(len(a) for a in answers),
        )
    job.refresh_from_db()
    return job


def rounds_reap_stale(*, now=None) -> list[int]:
    """Fail running rounds whose worker stopped reporting (sent with the runs' reaper by celery beat); their ids."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=ROUND_STALE_S)
    stale = list(RoundJob.objects.filter(status=RoundJob.Status.RUNNING, heartbeat_at__lt=cutoff).values_list("pk", flat=True))
    for pk in stale:
        RoundJob.objects.filter(pk=pk, status=RoundJob.Status.RUNNING, heartbeat_at__lt=cutoff).update(
            status=RoundJob.Status.FAILED, finished_at=now,
            error=f"The worker stopped reporting for more than {ROUND_STALE_S // 60} minutes; it probably died. "
                  "Ask for the round again.")
    return stale
