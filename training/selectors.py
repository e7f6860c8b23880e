"""Reads for the training dashboard: run lists, metric series, samples, timing."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from annotation.qa.errors import NotFound
from training.models import Artifact, RoundJob, RunMetric, RunSample, RunStatus, TrainingRun
from training.run_folder import LAST_CHECKPOINT, ZIP_STALE_S, zip_paths

ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


def runs_list(*, limit: int = 200) -> QuerySet[TrainingRun]:
    return TrainingRun.objects.select_related("dataset", "created_by").order_by("-created_at")[:limit]


def runs_any_active() -> bool:
    return TrainingRun.objects.filter(status__in=ACTIVE_STATUSES).exists()


def run_get(*, run_id: int) -> TrainingRun:
    run = TrainingRun.objects.select_related("dataset", "created_by", "resumed_from").filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"no training run {run_id}")
    return run


def run_duration(run: TrainingRun, *, now: datetime | None = None) -> timedelta | None:
    if run.started_at is None:
        return None
    end = run.finished_at or now or timezone.now()
    return max(end - run.started_at, timedelta(0))


def run_eta(run: TrainingRun, *, now: datetime | None = None) -> timedelta | None:
    """Time left at the pace so far; None before the first step or once finished."""
    if run.status != RunStatus.RUNNING or run.started_at is None:
        return None
    if run.progress_step <= 0 or run.progress_total <= run.progress_step:
        return None
    elapsed = (now or timezone.now()) - run.started_at
    per_step = elapsed / run.progress_step
    return per_step * (run.progress_total - run.progress_step)


def run_progress_percent(run: TrainingRun) -> int:
    if run.status == RunStatus.SUCCEEDED:
        return 100
    if not run.progress_total:
        return 0
    return min(100, int(100 * run.progress_step / run.progress_total))


def run_metric_series(*, run: TrainingRun, after_id: int = 0) -> dict:
    """Metric points newer than `after_id`, grouped per key, for the charts to append.

    Returns {"series": {key: [[step, value], ...]}, "last_id": int}.
    """
    rows = RunMetric.objects.filter(run=run, pk__gt=after_id).order_by("pk").values_list("pk", "key", "step", "value")
    series: dict[str, list[list[float]]] = defaultdict(list)
    last_id = after_id
    for pk, key, step, value in rows:
        series[key].append([step, value])
        last_id = pk
    for points in series.values():
        points.sort(key=lambda point: point[0])
    return {"series": dict(series), "last_id": last_id}


def run_latest_metrics(*, run: TrainingRun) -> dict[str, float]:
    """The last reported value of each metric key (two indexed queries, however long the run)."""
    last_ids = RunMetric.objects.filter(run=run).values("key").annotate(last=Max("pk")).values_list("last", flat=True)
    rows = RunMetric.objects.filter(pk__in=list(last_ids)).order_by("key").values_list("key", "value")
    return dict(rows)


@dataclass(frozen=True)
class Throughput:
    """The latest `perf/` figures of a run, for the run page's throughput card."""

    tokens_per_second: float | None
    samples_per_second: float | None
    mfu: float | None  # a share (0.42 = 42 %); None where the trainer knew no peak (CPU)
    step_seconds: float | None
    peak_memory_gb: float | None
    split: list[tuple[str, float, int]]  # (section, seconds, percent of the step), sections that took time


def run_throughput(latest_metrics: dict[str, float]) -> Throughput | None:
    """The throughput card's figures from a run's latest metrics; None before any `perf/` figure."""
    if not any(key.startswith("perf/") for key in latest_metrics):
        return None
    step = latest_metrics.get("perf/step_seconds")
    split = []
    for section in ("generation", "scoring", "training"):
        seconds = latest_metrics.get(f"perf/{section}_seconds")
        if seconds is not None and step:
            split.append((section, seconds, round(100 * min(seconds, step) / step)))
    return Throughput(
        tokens_per_second=latest_metrics.get("perf/tokens_per_second"),
        samples_per_second=latest_metrics.get("perf/samples_per_second"),
        mfu=latest_metrics.get("perf/mfu"),
        step_seconds=step,
        peak_memory_gb=latest_metrics.get("perf/peak_memory_gb"),
        split=split,
    )


def run_samples(*, run: TrainingRun, limit: int = 12) -> list[RunSample]:
    """The newest samples first (the latest evaluation's generations)."""
    return list(RunSample.objects.filter(run=run).order_by("-step", "pk")[:limit])


def run_artifacts(*, run: TrainingRun) -> list[Artifact]:
    """The run's files, each with `is_folder` set (folders are zipped for download)."""
    artifacts = list(Artifact.objects.filter(run=run).order_by("kind", "name"))
    for artifact in artifacts:
        path = artifact_path(artifact)
        artifact.is_folder = path is not None and path.is_dir()
    return artifacts


@dataclass(frozen=True)
class ZipState:
    """Where the download zip of a folder artifact stands: none, building, ready or failed."""

    status: str
    path: Path | None = None
    size_bytes: int = 0
    built_at: datetime | None = None
    error: str = ""

    @property
    def filename(self) -> str:
        return self.path.name if self.path else ""


def artifact_zip_state(*, run: TrainingRun, artifact: Artifact) -> ZipState:
    zip_path, part, error = zip_paths(run, artifact)
    if part.exists():
        info = part.stat()
        if time.time() - info.st_mtime < ZIP_STALE_S:
            return ZipState("building", size_bytes=info.st_size)
        return ZipState("failed", error="the worker building the zip stopped; ask again")
    if error.exists():
        return ZipState("failed", error=error.read_text(encoding="utf-8", errors="replace")[:2000])
    if zip_path.exists():
        info = zip_path.stat()
        built_at = datetime.fromtimestamp(info.st_mtime, tz=UTC)
        return ZipState("ready", path=zip_path, size_bytes=info.st_size, built_at=built_at)
    return ZipState("none")


def artifact_get(*, run: TrainingRun, artifact_id: int) -> Artifact:
    artifact = Artifact.objects.filter(run=run, pk=artifact_id).first()
    if artifact is None:
        raise NotFound(f"run {run.pk} has no file {artifact_id}")
    return artifact


def artifact_path(artifact: Artifact) -> Path | None:
    """The artifact's file or folder, or None if it is missing or lies outside MODEL_ROOT."""
    root = Path(settings.MODEL_ROOT).resolve()
    path = (root / artifact.path).resolve()
    if not path.is_relative_to(root) or not path.exists():
        return None
    return path


def run_checkpoint(*, run_id: int) -> Artifact | None:
    """The checkpoint a resume of run `run_id` continues from: its "last" one, else the newest it reported
    that still exists; None when it saved none (a resume of it starts over from the first step)."""
    newest_first = Artifact.objects.filter(run_id=run_id, kind=Artifact.Kind.CHECKPOINT).order_by("-created_at", "-pk")
    # Trainers rewrite "last" at every save, while a row's date is when its checkpoint was first reported:
    # a resumed PPO run that saves more often than it evaluates reports "best" after "last", at an older step.
    for artifact in sorted(newest_first, key=lambda a: a.name != LAST_CHECKPOINT):
        if (Path(settings.MODEL_ROOT) / artifact.path).exists():
            return artifact
    return None


def run_model_path(run: TrainingRun) -> Path | None:
    """Where a finished run saved its model (its newest `model` artifact)."""
    for artifact in Artifact.objects.filter(run=run, kind=Artifact.Kind.MODEL).order_by("-created_at", "-pk"):
        path = artifact_path(artifact)
        if path is not None:
            return path
    return None


def runs_with_models(*, kinds: list[str]) -> QuerySet[TrainingRun]:
    """Succeeded runs of these kinds that saved a model, newest first (sources for PPO's model settings)."""
    return (
        TrainingRun.objects.filter(kind__in=kinds, status=RunStatus.SUCCEEDED, artifacts__kind=Artifact.Kind.MODEL)
        .distinct()
        .order_by("-finished_at", "-pk")
    )


def dataset_split_counts(*, dataset) -> dict[str, dict[str, int]]:
    """Per split of a dataset: how many examples it holds in each file format."""
    rows = (
        dataset.examples.values("split")
        .annotate(feedback=Count("pk", filter=Q(has_feedback_format=True)), inputs=Count("pk", filter=Q(has_input_format=True)))
        .order_by("split")
    )
    return {row["split"]: {"feedback": row["feedback"], "inputs": row["inputs"]} for row in rows}



def run_round_jobs(*, run: TrainingRun, limit: int = 10) -> list[RoundJob]:
    """The new rounds asked of a policy run, newest first."""
    return list(RoundJob.objects.filter(run=run).select_related("campaign", "dataset").order_by("-created_at", "-pk")[:limit])


def round_job_get(*, job_id: int) -> RoundJob:
    job = RoundJob.objects.select_related("campaign", "dataset", "run").filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"there is no round #{job_id}")
    return job


def dataset_split_names(*, dataset) -> list[str]:
    return list(dataset.examples.order_by("split").values_list("split", flat=True).distinct())


def workers_online(*, now: datetime | None = None) -> list:
    """Workers that wrote their presence lately (training/workers.py), by host name."""
    from training.models import WorkerPresence
    from training.workers import STALE_S

    cutoff = (now or timezone.now()) - timedelta(seconds=STALE_S)
    return list(WorkerPresence.objects.filter(seen_at__gte=cutoff).order_by("hostname"))


# ---------------------------------------------------------------- comparing runs

COMPARE_MAX = 8


def runs_by_ids(*, run_ids: list[int]) -> list[TrainingRun]:
    """The runs asked for, in the order asked (duplicates dropped); NotFound names an id that is none."""
    ids = list(dict.fromkeys(run_ids))[:COMPARE_MAX]
    found = {run.pk: run for run in TrainingRun.objects.filter(pk__in=ids).select_related("dataset")}
    missing = [str(pk) for pk in ids if pk not in found]
    if missing:
        raise NotFound(f"there is no run #{', #'.join(missing)}")
    return [found[pk] for pk in ids]


def runs_compare_series(*, runs: list[TrainingRun]) -> list[dict]:
    """Every metric point of each run, for overlaid charts: [{"id", "label", "kind", "series": {key: [[step, value]]}}]."""
    return [
        {"id": run.pk, "label": f"#{run.pk} {run.name or run.kind}", "kind": run.kind,
         "series": run_metric_series(run=run)["series"]}
        for run in runs
    ]


@dataclass
class CompareRow:
    key: str
    values: list[float | None]
    best: int | None = None  # index of the best value, for keys where higher (or lower) is plainly better


def _direction(key: str) -> int:
    """1 where a higher value is plainly better (scores, rewards, ratios), -1 for losses, 0 where neither (KL, lengths, lr)."""
    name = key.rsplit("/", 1)[-1]
    if "loss" in name:
        return -1
    if "kl" in name or "length" in name or name in ("lr", "learning_rate", "step", "best_step", "epoch"):
        return 0
    if key.startswith("reward/") or any(part in name for part in ("rouge", "reward", "accuracy", "f1", "ratio", "completeness")):
        return 1
    return 0


def runs_final_metrics(*, runs: list[TrainingRun]) -> list[CompareRow]:
    """The last value of every metric key (and number in the trainers' summaries), one column per run."""
    latest = [run_latest_metrics(run=run) for run in runs]
    for values, run in zip(latest, runs):
        for key, value in (run.summary or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[f"summary/{key}"] = float(value)
    keys = sorted({key for values in latest for key in values}, key=lambda k: (k.startswith("summary/"), not k.startswith("eval/"), k))
    rows = []
    for key in keys:
        values = [values.get(key) for values in latest]
        row = CompareRow(key=key, values=values)
        direction = _direction(key)
        present = [(v, i) for i, v in enumerate(values) if v is not None]
        if direction and len(present) > 1 and len({v for v, _ in present}) > 1:
            row.best = (max(present) if direction > 0 else min(present))[1]
        rows.append(row)
    return rows


def runs_to_compare(*, limit: int = 60) -> list[TrainingRun]:
    """Runs that have something to compare (they reported metrics), newest first."""
    return list(TrainingRun.objects.filter(metrics__isnull=False).distinct().select_related("dataset").order_by("-created_at")[:limit])
