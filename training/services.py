"""The researcher's writes for training runs: create, cancel, resume, reap.

Views call these for the dashboard's buttons, the management commands and the
reaper task for theirs. Each function is keyword-only and does its writes in
one transaction. A created or resumed run is sent to the `gpu` queue by task
name once the transaction commits; the worker's side (claim, progress,
finish) is `training.supervisor`, which this module never imports.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation.qa.errors import Conflict
from config.celery import app as celery_app
from training import inputs, kinds
from training.ml.configs import ConfigError
from training.models import Artifact, RunStatus, TrainingRun
from training.run_folder import DOWNLOADS, LOG_FILE, ZIP_STALE_S, run_output_path, tail_lines, zip_folder, zip_paths

# The Celery task that runs a queued run (training/tasks.py), sent by name so services never import tasks.
RUN_TASK = "training.run_training"
# Zipping a folder artifact for download: CPU work, on the `default` queue.
ZIP_TASK = "training.build_artifact_zip"
ZIP_QUEUE = "default"


def _enqueue(run_id: int, task_id: str) -> None:
    if celery_app.conf.task_always_eager:
        # send_task ignores eager mode; run it here as apply_async would (tasks register on discovery).
        celery_app.loader.import_default_modules()
        celery_app.tasks[RUN_TASK].apply(args=[run_id], task_id=task_id)
        return
    celery_app.send_task(RUN_TASK, args=[run_id], queue=settings.TRAINING_QUEUE, task_id=task_id)


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
    train_split, eval_split, name = train_split.strip(), eval_split.strip(), name.strip()
    _check_lengths(name=name, train_split=train_split, eval_split=eval_split)
    inputs.check_sources(kind=kind, dataset=dataset, train_split=train_split, eval_split=eval_split, uploads=uploads)

    with transaction.atomic():
        run = TrainingRun.objects.create(
            name=name,
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


def _check_lengths(**values: str) -> None:
    """Refuse text longer than its column before the database sees it (PostgreSQL would raise DataError)."""
    problems = []
    for field, value in values.items():
        limit = TrainingRun._meta.get_field(field).max_length
        if len(value) > limit:
            problems.append((field, f"is {len(value)} characters long; at most {limit} fit"))
    if problems:
        raise ConfigError(problems)


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
    """Queue a new run that continues a failed or cancelled one from its last checkpoint; idempotent.

    The new run keeps the old one's kind, inputs and config and points back at
    it (`resumed_from`); its worker passes `--resume-from` with the newest
    checkpoint the old run reported (none: it starts over). A run is resumed
    at most once: asking again (a second click, a second tab) returns the run
    already created, and a unique constraint on `resumed_from` backs that up.
    Raises Conflict for a run that is still going or succeeded.
    """
    try:
        with transaction.atomic():
            # The lock makes a concurrent second Resume wait here, then find the first one's run.
            run = TrainingRun.objects.select_for_update().get(pk=run.pk)
            existing = run.resumes.order_by("pk").first()
            if existing is not None:
                return existing
            if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
                raise Conflict(f"only failed or cancelled runs can be resumed; this one is {run.status}", field="status")
            return _resumed_copy(run, user=user)
    except IntegrityError:
        # Another Resume committed first (databases without row locks); that run is the answer.
        return TrainingRun.objects.get(resumed_from=run)


def _resumed_copy(run: TrainingRun, *, user) -> TrainingRun:
    new = TrainingRun.objects.create(
        name=run.name,
        kind=run.kind,
        dataset=run.dataset,
        train_split=run.train_split,
        eval_split=run.eval_split,
        created_by=user if user is not None and user.is_authenticated else run.created_by,
        resumed_from=run,
        pipeline=run.pipeline,
        pipeline_stage=run.pipeline_stage,
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


def runs_reap_stale(*, now: datetime | None = None) -> list[int]:
    """Mark running runs whose worker stopped beating its heart as failed; returns their ids.

    Called by celery beat every TRAINING_REAP_INTERVAL_S (the `training.reap_stale_runs`
    task on the `default` queue) and by `manage.py reap_runs`; one indexed query when
    nothing is stale.
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
            "Resume the run to continue from its last checkpoint (or restart it, if it saved none)."
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


def artifact_zip_request(*, run: TrainingRun, artifact: Artifact) -> bool:
    """Ask the `default` queue to zip a folder artifact for download; False when one is being built already.

    A zip built before is replaced (a running run's checkpoints change).
    """
    zip_path, part, error = zip_paths(run, artifact)
    if part.exists() and time.time() - part.stat().st_mtime < ZIP_STALE_S:
        return False
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"")  # "queued" until the worker starts writing into it
    error.unlink(missing_ok=True)
    celery_app.loader.import_default_modules()
    celery_app.signature(ZIP_TASK, args=[artifact.pk], queue=ZIP_QUEUE).apply_async()
    return True


def artifact_zip_build(*, artifact_id: int) -> Path | None:
    """Zip a folder artifact into its run's downloads folder (the Celery task's body); the zip, or None.

    Symbolic links are skipped and nothing outside MODEL_ROOT is read; a
    failure is written next to the zip for the page to show.
    """
    artifact = Artifact.objects.select_related("run").filter(pk=artifact_id).first()
    if artifact is None:
        return None
    run = artifact.run
    zip_path, part, error = zip_paths(run, artifact)
    part.parent.mkdir(parents=True, exist_ok=True)
    root = Path(settings.MODEL_ROOT).resolve()
    source = (root / artifact.path).resolve()
    try:
        if not source.is_relative_to(root) or not source.is_dir():
            raise FileNotFoundError(f"{artifact.path} is not a folder under MODEL_ROOT")
        with open(part, "wb") as out:
            zip_folder(source, out, arc_root=source.name, skip=run_output_path(run) / DOWNLOADS)
        os.replace(part, zip_path)
    except Exception as exc:  # whatever went wrong is shown on the zip's page
        part.unlink(missing_ok=True)
        error.write_text(f"{type(exc).__name__}: {exc}", encoding="utf-8")
        return None
    return zip_path
