"""Writes for training runs: create, claim, record progress, finish, cancel, resume, reap.

The Celery task and the management command call these; views call them for
the dashboard's buttons. Each function is keyword-only and does its writes in
one transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from training import inputs, kinds
from training.launch import LOG_FILE, tail_lines
from training.ml.configs import ConfigError
from training.models import Artifact, RunMetric, RunSample, RunStatus, TrainingRun

logger = logging.getLogger(__name__)

METRIC_KEY_MAX = RunMetric._meta.get_field("key").max_length
# The checkpoint name every trainer (SFT, reward models, PPO) gives its newest resumable state.
LAST_CHECKPOINT = "last"


def run_output_path(run: TrainingRun) -> Path:
    """The run's folder: `MODEL_ROOT/runs/<id>-<kind>/` (stored relative to MODEL_ROOT)."""
    return Path(settings.MODEL_ROOT) / run.output_dir


def _enqueue(run_id: int, task_id: str) -> None:
    from training.tasks import run_training

    run_training.apply_async(args=[run_id], queue=settings.TRAINING_QUEUE, task_id=task_id)


def _queue_after_commit(run: TrainingRun) -> None:
    run.celery_task_id = str(uuid.uuid4())
    run.save(update_fields=["celery_task_id"])
    run_id, task_id = run.pk, run.celery_task_id
    transaction.on_commit(lambda: _enqueue(run_id, task_id))


def run_create(
    *,
    kind: str,
    user=None,
    dataset=None,
    train_split: str = "",
    eval_split: str = "",
    preset: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    uploads: Mapping[str, File] | None = None,
    name: str = "",
) -> TrainingRun:
    """Validate a run's inputs and config, store it queued, and enqueue it on the `gpu` queue after commit.

    Inputs come from a dataset split in the database or from uploaded files
    (`uploads` maps "train"/"eval" to a file). Raises ConfigError listing
    every (field, message) that is wrong; nothing is stored then.
    """
    kinds.get(kind)  # an unknown kind is refused before anything else
    uploads = {role: f for role, f in (uploads or {}).items() if f}
    train_split, eval_split = train_split.strip(), eval_split.strip()
    inputs.check_sources(kind=kind, dataset=dataset, train_split=train_split, eval_split=eval_split, uploads=uploads)

    with transaction.atomic():
        run = TrainingRun.objects.create(
            name=name.strip(),
            kind=kind,
            dataset=dataset,
            train_split=train_split if dataset else "",
            eval_split=eval_split if dataset else "",
            created_by=user if user is not None and user.is_authenticated else None,
        )
        run.output_dir = f"runs/{run.pk}-{kind}"
        output_dir = run_output_path(run)
        config = inputs.resolve_config(
            kind=kind,
            preset=preset,
            overrides=overrides or {},
            output_dir=output_dir,
            from_dataset=dataset is not None,
            train_split=train_split,
            eval_split=eval_split,
            uploads=uploads,
        )
        inputs.save_uploads(uploads=uploads, output_dir=output_dir)
        run.config = config
        run.save(update_fields=["output_dir", "config"])
        _queue_after_commit(run)
    return run


def run_claim(*, run_id: int, host: str) -> TrainingRun | None:
    """Mark a queued run as running on `host`; None when it is not queued (already taken, cancelled, gone)."""
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker_host=host[:200], error="", log_tail=""
    )
    if not claimed:
        return None
    return TrainingRun.objects.get(pk=run_id)


def run_mark_started(*, run: TrainingRun, pid: int) -> None:
    run.child_pid = pid
    run.heartbeat_at = timezone.now()
    TrainingRun.objects.filter(pk=run.pk).update(child_pid=pid, heartbeat_at=run.heartbeat_at)


def run_heartbeat(*, run: TrainingRun, log_tail: str) -> None:
    """The worker is alive: refresh the heartbeat and the live log tail."""
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now(), log_tail=log_tail)


def run_cancel_requested(*, run: TrainingRun) -> bool:
    return bool(TrainingRun.objects.filter(pk=run.pk).values_list("cancel_requested", flat=True).first())


def _artifact_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def run_record_events(*, run: TrainingRun, events: Iterable[Mapping[str, Any]]) -> None:
    """Turn a batch of the trainer's progress events into rows, in one transaction.

    Unknown events and malformed values are skipped: a trainer's mistake must
    not stop the worker that follows it.
    """
    metrics: list[RunMetric] = []
    changed: set[str] = set()
    with transaction.atomic():
        for event in events:
            kind = event.get("event")
            if kind == "start":
                total = event.get("total_steps")
                if isinstance(total, int) and total >= 0:
                    run.progress_total = total
                    run.progress_step = min(run.progress_step, total) if total else run.progress_step
                    changed |= {"progress_total", "progress_step"}
                run.wandb_dir = str(event.get("wandb_dir") or run.wandb_dir)[:500]
                run.wandb_url = str(event.get("wandb_url") or run.wandb_url)[:500]
                changed |= {"wandb_dir", "wandb_url"}
            elif kind == "progress":
                step, total = event.get("step"), event.get("total")
                if isinstance(total, int) and total > 0:
                    run.progress_total = total
                    changed.add("progress_total")
                if isinstance(step, int) and step >= 0:
                    run.progress_step = min(step, run.progress_total) if run.progress_total else step
                    changed.add("progress_step")
            elif kind == "metrics":
                step = event.get("step")
                values = event.get("metrics")
                if not isinstance(step, int) or step < 0 or not isinstance(values, Mapping):
                    continue
                for key, value in values.items():
                    number = _float_or_none(value)
                    if number is not None:
                        metrics.append(RunMetric(run=run, step=step, key=str(key)[:METRIC_KEY_MAX], value=number))
            elif kind == "sample":
                segments = event.get("segments") if isinstance(event.get("segments"), list) else []
                RunSample.objects.create(
                    run=run,
                    step=max(0, int(event.get("step") or 0)),
                    prompt=str(event.get("prompt") or ""),
                    text=str(event.get("text") or ""),
                    segments=[s for s in segments if isinstance(s, Mapping)],
                    total_reward=_float_or_none(event.get("total_reward")),
                )
            elif kind == "artifact":
                _record_artifact(run=run, event=event)
            elif kind == "done":
                summary = event.get("summary")
                run.summary = dict(summary) if isinstance(summary, Mapping) else {}
                changed.add("summary")
            elif kind == "error":
                run.error = str(event.get("message") or "the trainer reported an error")
                changed.add("error")
        if metrics:
            RunMetric.objects.bulk_create(metrics)
        if changed:
            run.save(update_fields=sorted(changed))


def _record_artifact(*, run: TrainingRun, event: Mapping[str, Any]) -> None:
    relative = str(event.get("path") or "").strip()
    name = str(event.get("name") or relative)[:200]
    if not relative or not name:
        return
    kind = event.get("kind") if event.get("kind") in Artifact.Kind.values else Artifact.Kind.FILE
    absolute = (run_output_path(run) / relative).resolve()
    model_root = Path(settings.MODEL_ROOT).resolve()
    if not absolute.is_relative_to(model_root):
        logger.warning("run %s reported an artifact outside MODEL_ROOT: %s", run.pk, absolute)
        return
    meta = event.get("meta") if isinstance(event.get("meta"), Mapping) else {}
    Artifact.objects.update_or_create(
        run=run,
        kind=kind,
        name=name,
        defaults={
            "path": str(absolute.relative_to(model_root)),
            "size_bytes": _artifact_size(absolute),
            "meta": dict(meta),
        },
    )


def run_record_event(*, run: TrainingRun, event: Mapping[str, Any]) -> None:
    run_record_events(run=run, events=[event])


def run_finish(*, run: TrainingRun, status: str, error: str = "", log_tail: str | None = None) -> None:
    """The run's last word: final status, error text and log tail, and progress filled when it succeeded."""
    run.status = status
    run.finished_at = timezone.now()
    run.error = error if status != RunStatus.SUCCEEDED else ""
    fields = ["status", "finished_at", "error"]
    if log_tail is not None:
        run.log_tail = log_tail
        fields.append("log_tail")
    if status == RunStatus.SUCCEEDED and run.progress_total:
        run.progress_step = run.progress_total
        fields.append("progress_step")
    run.save(update_fields=fields)


def run_cancel(*, run: TrainingRun) -> bool:
    """Ask for a run to stop. A queued run is cancelled at once; a running one by its worker within seconds.

    Returns False when the run had already finished.
    """
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if run.is_finished:
            return False
        run.cancel_requested = True
        fields = ["cancel_requested"]
        if run.status == RunStatus.QUEUED:
            run.status = RunStatus.CANCELLED
            run.finished_at = timezone.now()
            run.error = "Cancelled before a worker started it."
            fields += ["status", "finished_at", "error"]
        run.save(update_fields=fields)
    return True


def run_resume(*, run: TrainingRun, user=None) -> TrainingRun:
    """Queue a new run that continues a failed or cancelled one from its last checkpoint.

    The new run keeps the old one's kind, inputs and config and points back at
    it (`resumed_from`); its worker passes `--resume-from` with the newest
    checkpoint the old run reported (none: it starts over).
    """
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        raise ConfigError([("status", f"only failed or cancelled runs can be resumed; this one is {run.status}")])
    with transaction.atomic():
        new = TrainingRun.objects.create(
            name=run.name,
            kind=run.kind,
            dataset=run.dataset,
            train_split=run.train_split,
            eval_split=run.eval_split,
            created_by=user if user is not None and user.is_authenticated else run.created_by,
            resumed_from=run,
        )
        new.output_dir = f"runs/{new.pk}-{new.kind}"
        config = dict(run.config)
        if run.dataset_id is not None:
            # Inputs built from the database are rebuilt in the new run's folder.
            config.update(inputs.dataset_input_paths(kind=run.kind, output_dir=run_output_path(new), train_split=run.train_split, eval_split=run.eval_split))
        new.config = config
        new.save(update_fields=["output_dir", "config"])
        _queue_after_commit(new)
    return new


def run_resume_checkpoint(*, run: TrainingRun) -> Path | None:
    """The checkpoint of the run this one resumes: its "last" one, else the newest it reported that still exists."""
    if run.resumed_from_id is None:
        return None
    newest_first = Artifact.objects.filter(run_id=run.resumed_from_id, kind=Artifact.Kind.CHECKPOINT).order_by("-created_at", "-pk")
    # Trainers rewrite "last" at every save, while a row's date is when its checkpoint was first reported:
    # a resumed PPO run that saves more often than it evaluates reports "best" after "last", at an older step.
    for artifact in sorted(newest_first, key=lambda a: a.name != LAST_CHECKPOINT):
        path = Path(settings.MODEL_ROOT) / artifact.path
        if path.exists():
            return path
    return None


def runs_reap_stale(*, now: datetime | None = None) -> list[int]:
    """Mark running runs whose worker stopped beating its heart as failed; returns their ids.

    Cheap enough to call at the start of every dashboard poll: one indexed
    query when nothing is stale.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT_S)
    stale = list(
        TrainingRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff).only(
            "pk", "output_dir", "worker_host", "heartbeat_at", "log_tail"
        )
    )
    reaped: list[int] = []
    for run in stale:
        log_tail = tail_lines(run_output_path(run) / LOG_FILE) if run.output_dir else ""
        silent_s = int((now - run.heartbeat_at).total_seconds())
        error = (
            f"The worker on {run.worker_host or 'an unknown host'} stopped reporting {silent_s} s ago "
            f"(limit {settings.TRAINING_HEARTBEAT_TIMEOUT_S} s); it probably died. "
            "Resume the run to continue from its last checkpoint."
        )
        # Conditional update: a worker that comes back and finishes the run wins the race.
        updated = TrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, heartbeat_at__lt=cutoff).update(
            status=RunStatus.FAILED,
            finished_at=now,
            error=error,
            log_tail=log_tail or F("log_tail"),
        )
        if updated:
            reaped.append(run.pk)
    return reaped
