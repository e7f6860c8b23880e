"""Thin Celery tasks: take ids, call one function. Sent by name (services never import this module)."""

import threading

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown

from training import pipeline_services, rounds, services, suggestions, supervisor, workers


@shared_task(name="training.run_training", acks_late=False)
def run_training(run_id: int) -> None:
    """Prepare, start and follow one training run (on the `gpu` queue).

    Acknowledged on receipt: a training run must never be started twice by a
    redelivery; a worker that dies leaves the run to the heartbeat reaper, and
    the researcher resumes it from its last checkpoint.
    """
    supervisor.run_execute(run_id=run_id)


@shared_task(name="training.reap_stale_runs")
def reap_stale_runs() -> list[int]:
    """Fail running runs whose worker stopped beating its heart (sent by celery beat every 15 s, config/celery.py),
    and rounds whose worker stopped reporting."""
    rounds.rounds_reap_stale()
    return services.runs_reap_stale()


@shared_task(name=services.ZIP_TASK, queue=services.ZIP_QUEUE)
def build_artifact_zip(artifact_id: int) -> None:
    """Zip one folder artifact for download (symbolic links skipped); the page polls for the result."""
    services.artifact_zip_build(artifact_id=artifact_id)


@shared_task(name="training.score_suggestions", acks_late=False)
def score_suggestions(job_id: int) -> None:
    """Score a campaign's responses with its suggester reward models (on the `gpu` queue; see training/suggestions.py)."""
    suggestions.suggestion_job_run(job_id=job_id)


@shared_task(name=pipeline_services.ADVANCE_TASK)
def advance_pipeline(pipeline_id: int) -> None:
    """Start a pipeline's stages that are due and settle its status (sent when one of its runs finishes)."""
    pipeline_services.pipeline_advance(pipeline_id=pipeline_id)


@shared_task(name=pipeline_services.TICK_TASK)
def tick_pipelines() -> list[int]:
    """Advance every pipeline still going (sent by celery beat, config/celery.py): survives worker restarts."""
    return pipeline_services.pipelines_tick()


@shared_task(name=rounds.ROUND_TASK, acks_late=False)
def generate_round(job_id: int) -> None:
    """Sample a new annotation round from a policy run and open its campaign (on the `gpu` queue)."""
    rounds.round_execute(job_id=job_id)


_presence_stop = threading.Event()


@worker_ready.connect
def _worker_online(sender=None, **kwargs) -> None:
    """Say this worker is online (the launch form picks presets that fit the workers it sees)."""
    try:
        queues = [queue.name for queue in sender.task_consumer.queues]
    except AttributeError:
        queues = []
    workers.start_beating(hostname=sender.hostname, queues=queues, gpus=supervisor.local_gpu_count(), stop=_presence_stop)


@worker_shutdown.connect
def _worker_offline(sender=None, **kwargs) -> None:
    _presence_stop.set()
    try:
        workers.worker_presence_remove(hostname=str(getattr(sender, "hostname", sender)))
    except Exception:  # the database may be gone first; the row goes stale by itself
        pass
