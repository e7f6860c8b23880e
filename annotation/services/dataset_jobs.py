"""Writes for background dataset jobs: web uploads imported, and web exports built, by a `default` worker.

A web request only stores the job: an upload's file is already in the job's
folder under MEDIA_ROOT (annotation/upload_handlers.py wrote it there as it
arrived), an export names its split and format. The Celery task
(annotation/tasks.py, sent by name on commit) runs `dataset_job_run`, which
calls the same import and export services as the command line.

Progress: an export updates its row. An import cannot: its writes are one
transaction, which hides the row's updates from other connections until it
commits (and on SQLite holds the write lock), so it writes its progress to
a small file beside the upload, which the job page reads while it runs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Dataset, DatasetJob
from annotation.qa.errors import BadRequest, NotFound, Refused
from annotation.qa.agreement import LATEST
from annotation.qa.format import FEEDBACK, FormatError
from annotation.selectors.dataset_jobs import PROGRESS_NAME, UPLOAD_NAME, dataset_job_dir
from annotation.selectors.datasets import (
    dataset_resolve,
    feedback_records_count,
    feedback_records_exist,
    input_records_count,
    split_examples_count,
)
from annotation.selectors.aggregate import annotated_examples_count, check_rule
from annotation.services.datasets import (
    DISAGREEMENT,
    EXPORT_FORMATS,
    ImportProgress,
    check_annotator_name,
    check_names,
    dataset_export,
    dataset_import,
    export_annotator,
)
from config.celery import app as celery_app

logger = logging.getLogger(__name__)

JOB_TASK = "annotation.run_dataset_job"
JOB_QUEUE = "default"
# Progress is stored at most this often, so a fast job does not spend its time reporting.
PROGRESS_EVERY_S = 0.5


def export_filename(dataset_name: str, split: str, fmt: str, *, annotator: str = "", rule: str = "") -> str:
    """Named like the shared files: dev_feedback.json for feedback, dev.json for inputs; the disagreement
    export is JSON lines. One annotator's feedback, or a rule other than the default, is named after the name."""
    if fmt == DISAGREEMENT:
        return f"{dataset_name}-{split}_disagreement.jsonl"
    if fmt != FEEDBACK:
        return f"{dataset_name}-{split}.json"
    whose = f"-{annotator}" if annotator else (f"-{rule}" if rule and rule != LATEST else "")
    return f"{dataset_name}-{split}_feedback{whose}.json"


def _enqueue(job_id: int) -> None:
    # A signature goes through the registered task (loaded here: tasks are not imported at start-up),
    # so CELERY_TASK_ALWAYS_EAGER runs it in place.
    celery_app.loader.import_default_modules()
    celery_app.signature(JOB_TASK, args=[job_id], queue=JOB_QUEUE).apply_async()


def dataset_import_request(
    *,
    upload: Path,
    filename: str,
    dataset_name: str,
    split: str,
    user: AbstractBaseUser | None = None,
    annotator: str = "",
) -> DatasetJob:
    """Store an import of an uploaded file (moved into the job's folder) and queue it once committed.

    With `annotator` (a username) the file's feedback and preferences become
    that annotator's submitted work (services.datasets.dataset_import).
    Raises BadRequest for names that cannot be a dataset, split or annotator;
    the upload is then deleted.
    """
    try:
        check_names(dataset_name, split)
        annotator = check_annotator_name(annotator) if annotator.strip() else ""
    except Refused:
        upload.unlink(missing_ok=True)
        raise
    with transaction.atomic():
        job = DatasetJob.objects.create(
            kind=DatasetJob.Kind.IMPORT,
            dataset_name=dataset_name,
            split=split,
            filename=filename[:255],
            annotator=annotator,
            progress_total=upload.stat().st_size,
            created_by=user,
        )
        folder = dataset_job_dir(job)
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(upload, folder / UPLOAD_NAME)
        transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def dataset_export_request(
    *,
    dataset: Dataset | str | int,
    split: str,
    fmt: str,
    user: AbstractBaseUser | None = None,
    annotator: str = "",
    rule: str = "",
) -> DatasetJob:
    """Store an export of one split in one format and queue it once committed.

    The feedback format takes either an aggregation `rule` (qa.agreement.RULES;
    default `latest`) or one `annotator`'s own work (a username), as
    services.datasets.dataset_export does. Raises BadRequest for an unknown
    format or rule or a rule beside an annotator, NotFound for an unknown
    annotator or when there is nothing to export.
    """
    if fmt not in EXPORT_FORMATS:
        raise BadRequest(f"unknown format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}", field="fmt")
    try:
        dataset = dataset_resolve(dataset)
    except Dataset.DoesNotExist:
        raise NotFound(f"no dataset {dataset!r}", field="dataset") from None
    if rule:
        check_rule(rule)
        if fmt != FEEDBACK:
            raise BadRequest(f"the {fmt} format takes no annotator or aggregation rule", field="fmt")
    # The same checks and lookup as the export itself makes (an annotator's export takes no other rule).
    author = export_annotator(annotator.strip() or None, fmt, rule or LATEST)
    annotator = author.get_username() if author is not None else ""
    if author is not None:
        total = feedback_records_count(dataset, split, annotator=author.pk)
        if not total:
            raise NotFound(f"{dataset.name}/{split} has no examples in the feedback format by {annotator}")
    elif fmt == DISAGREEMENT:
        total = annotated_examples_count(dataset, split)
    elif fmt == FEEDBACK:
        # Whether there is anything to export, not how much: counting the complete examples costs
        # PostgreSQL about a second at 50k examples, inside the request. The export's own progress
        # starts from the split's size and is made exact when it ends (services.datasets.dataset_export).
        total = split_examples_count(dataset, split) if feedback_records_exist(dataset, split) else 0
    else:
        total = input_records_count(dataset, split)
    if not total:
        raise NotFound(f"{dataset.name}/{split} has no examples in the {fmt} format")
    with transaction.atomic():
        job = DatasetJob.objects.create(
            kind=DatasetJob.Kind.EXPORT,
            dataset_name=dataset.name,
            split=split,
            fmt=fmt,
            filename=export_filename(dataset.name, split, fmt, annotator=annotator, rule=rule),
            annotator=annotator,
            rule=rule,
            progress_total=total,
            created_by=user,
        )
        transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def dataset_job_run(*, job_id: int) -> DatasetJob:
    """Run a stored job (the Celery task's body); progress and outcome go to its row.

    A finished job is left alone, so a redelivered task does nothing; one
    interrupted mid-way runs again (an import's transaction was rolled back,
    an export's file is replaced whole).
    """
    job = DatasetJob.objects.get(pk=job_id)
    if not job.active:
        return job
    rows = DatasetJob.objects.filter(pk=job.pk)
    rows.update(status=DatasetJob.Status.RUNNING, error="", problems=[])
    try:
        if job.kind == DatasetJob.Kind.IMPORT:
            outcome = _run_import(job)
        else:
            outcome = _run_export(job, rows)
    except FormatError as exc:
        lines = exc.lines()
        rows.update(status=DatasetJob.Status.FAILED, error=f"{job.filename} was not imported; nothing was written.",
                    problems=lines, finished_at=timezone.now())
    except Refused as exc:
        rows.update(status=DatasetJob.Status.FAILED, error=str(exc), finished_at=timezone.now())
    except Exception as exc:  # the row must say the job failed, whatever the cause
        logger.exception("dataset job %s failed", job.pk)
        rows.update(status=DatasetJob.Status.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now())
    else:
        rows.update(status=DatasetJob.Status.SUCCEEDED, finished_at=timezone.now(), **outcome)
    finally:
        if job.kind == DatasetJob.Kind.IMPORT:
            # The file was read whole or refused; either way it is not needed again.
            shutil.rmtree(dataset_job_dir(job), ignore_errors=True)
    job.refresh_from_db()
    return job


def _run_import(job: DatasetJob) -> dict:
    folder = dataset_job_dir(job)
    progress_file = folder / PROGRESS_NAME
    last = 0.0

    def progress(p: ImportProgress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S:
            last = now
            _write_json(progress_file, {"done": p.bytes_read, "total": p.bytes_total, "examples": p.examples})

    user = job.created_by
    summary = dataset_import(
        path_or_file=folder / UPLOAD_NAME,
        dataset_name=job.dataset_name,
        split=job.split,
        user=user,
        progress=progress,
        annotator=job.annotator or None,
    )
    return {
        "fmt": summary.format,
        "examples": summary.examples,
        "progress_done": job.progress_total,
        "result": str(summary),
    }


def _run_export(job: DatasetJob, rows) -> dict:
    folder = dataset_job_dir(job)
    folder.mkdir(parents=True, exist_ok=True)
    last = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S:
            last = now
            rows.update(progress_done=done, progress_total=total, examples=done)

    summary = dataset_export(
        dataset=job.dataset_name,
        split=job.split,
        fmt=job.fmt,
        out=folder / job.filename,
        progress=progress,
        annotator=job.annotator or None,
        aggregate=job.rule or None,
    )
    return {
        "examples": summary.examples,
        "progress_done": summary.examples,
        "progress_total": summary.examples,
        "result": f"Exported {summary.describe()} in {summary.seconds:.2f} s.",
    }


def _write_json(path: Path, data: dict) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temp, path)
