"""Reads for background dataset jobs: recent jobs, a running import's progress, an export's file."""

import json
from dataclasses import dataclass
from pathlib import Path

from django.db.models import QuerySet

from django.conf import settings

from annotation.models import DatasetJob

RECENT_JOBS = 10
JOBS_DIR = "dataset_jobs"
UPLOAD_NAME = "upload.json"
PROGRESS_NAME = "progress.json"


def jobs_root() -> Path:
    """Where jobs keep their files: under MEDIA_ROOT, which is not served; downloads go through a view."""
    return Path(settings.MEDIA_ROOT) / JOBS_DIR


def dataset_job_dir(job: DatasetJob) -> Path:
    return jobs_root() / f"job-{job.pk}"


def dataset_jobs_recent(*, dataset_name: str | None = None, limit: int = RECENT_JOBS) -> QuerySet[DatasetJob]:
    jobs = DatasetJob.objects.select_related("created_by").order_by("-created_at", "-id")
    if dataset_name is not None:
        jobs = jobs.filter(dataset_name=dataset_name)
    return jobs[:limit]


@dataclass(frozen=True)
class JobProgress:
    done: int
    total: int
    examples: int

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.done / self.total)) if self.total else 0


def dataset_job_progress(job: DatasetJob) -> JobProgress:
    """How far a job has come; a running import reports through the file beside its upload."""
    if job.kind == DatasetJob.Kind.IMPORT and job.status == DatasetJob.Status.RUNNING:
        try:
            data = json.loads((dataset_job_dir(job) / PROGRESS_NAME).read_text(encoding="utf-8"))
            return JobProgress(int(data["done"]), int(data["total"] or job.progress_total), int(data["examples"]))
        except (OSError, ValueError, KeyError, TypeError):
            return JobProgress(0, job.progress_total, 0)  # not started writing yet
    return JobProgress(job.progress_done, job.progress_total, job.examples)


def dataset_job_file(job: DatasetJob) -> Path | None:
    """The file a finished export wrote, or None."""
    if job.kind != DatasetJob.Kind.EXPORT or job.status != DatasetJob.Status.SUCCEEDED:
        return None
    path = dataset_job_dir(job) / job.filename
    return path if path.is_file() else None
