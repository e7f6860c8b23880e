import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("granary")
app.config_from_object("django.conf:settings", namespace="CELERY")
# CPU work (imports, exports, reward-model files) on "default"; training on "gpu".
app.conf.task_queues = (Queue("default"), Queue("gpu"))
app.autodiscover_tasks()


def beat_schedule(reap_interval_s: float, floor_refresh_s: float) -> dict:
    """Periodic work, sent by celery beat (a `default` worker started with -B, or `celery beat`)."""
    return {
        # Deep campaigns' queue floors, walked here so that no annotator's request walks one from the first example.
        "refresh-queue-floors": {
            "task": "annotation.refresh_queue_floors",
            "schedule": floor_refresh_s,
            "options": {"queue": "default", "expires": floor_refresh_s},
        },
        # A GPU node that died stops beating its run's heart; fail the run with no web page involved.
        "reap-stale-runs": {
            "task": "training.reap_stale_runs",
            "schedule": reap_interval_s,
            # Dropped rather than piled up while no `default` worker is there to take them.
            "options": {"queue": "default", "expires": reap_interval_s},
        },
        # Pipelines advance when a run finishes; this catches what a worker restart or a reaped run left.
        "tick-pipelines": {
            "task": "training.tick_pipelines",
            "schedule": reap_interval_s,
            "options": {"queue": "default", "expires": reap_interval_s},
        },
    }


@app.on_after_configure.connect
def _set_beat_schedule(sender, **kwargs) -> None:
    from django.conf import settings

    sender.conf.beat_schedule = beat_schedule(settings.TRAINING_REAP_INTERVAL_S, settings.QUEUE_FLOOR_REFRESH_S)


def _ensure_broker_folders() -> None:
    # kombu's filesystem transport expects its folders to exist.
    from django.conf import settings

    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(key)
        if folder:
            os.makedirs(folder, exist_ok=True)


@app.on_after_configure.connect
def _on_after_configure(sender, **kwargs) -> None:
    _ensure_broker_folders()
