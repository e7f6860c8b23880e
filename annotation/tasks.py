"""Thin Celery tasks: take ids, call one service. CPU work runs on the `default` queue."""

from celery import shared_task

from annotation.services.campaigns import FLOORS_TASK, queue_floors_refresh
from annotation.services.dataset_jobs import JOB_QUEUE, JOB_TASK, dataset_job_run
from annotation.services.rm_files import BUILD_QUEUE, BUILD_TASK, rm_data_build_run


@shared_task(name=BUILD_TASK, queue=BUILD_QUEUE)
def build_rm_data(build_id: int) -> None:
    """Build the reward-model files of one stored RmDataBuild; progress and outcome go to its row."""
    rm_data_build_run(build_id=build_id)


@shared_task(name=JOB_TASK, queue=JOB_QUEUE)
def run_dataset_job(job_id: int) -> None:
    """Import an uploaded file or build an export, for one stored DatasetJob; progress and outcome go to its row."""
    dataset_job_run(job_id=job_id)


@shared_task(name=FLOORS_TASK)
def refresh_queue_floors() -> int:
    """Walk the queue floors of the campaigns at work and share them (sent by celery beat); how many campaigns."""
    return queue_floors_refresh()
