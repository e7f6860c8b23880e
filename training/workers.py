"""Which Celery workers are online: each worker writes its own WorkerPresence row.

`celery inspect` asks every worker over the broker and waits for answers
(seconds, and nothing on the filesystem broker); the launch form needs the
answer in a page load. So a worker says it is there itself: on start it
writes its row (host name, queues, GPUs) and a daemon thread refreshes
`seen_at` every BEAT_S; on a clean stop it deletes the row. A worker killed
without a word stops refreshing, and its row stops counting after STALE_S.
The signal handlers that call these are in training/tasks.py (only workers
import it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from django.db import close_old_connections, connection
from django.utils import timezone

from training.models import WorkerPresence

logger = logging.getLogger(__name__)

BEAT_S = 30.0
STALE_S = 90.0


def worker_presence_write(*, hostname: str, queues: Sequence[str], gpus: int) -> WorkerPresence:
    now = timezone.now()
    presence, _ = WorkerPresence.objects.update_or_create(
        hostname=hostname[:200], defaults={"queues": sorted(set(queues)), "gpus": max(0, gpus), "started_at": now, "seen_at": now}
    )
    return presence


def worker_presence_beat(*, hostname: str) -> bool:
    """Refresh a worker's `seen_at`; False when its row is gone (it is written again by the next start)."""
    return bool(WorkerPresence.objects.filter(hostname=hostname[:200]).update(seen_at=timezone.now()))


def worker_presence_remove(*, hostname: str) -> None:
    WorkerPresence.objects.filter(hostname=hostname[:200]).delete()


def start_beating(*, hostname: str, queues: Sequence[str], gpus: int, stop: threading.Event) -> threading.Thread:
    """Write the row now and refresh it every BEAT_S until `stop` is set (in a daemon thread)."""

    def beat() -> None:
        while not stop.wait(BEAT_S):
            try:
                close_old_connections()
                if not worker_presence_beat(hostname=hostname):
                    worker_presence_write(hostname=hostname, queues=queues, gpus=gpus)
            except Exception:  # a database hiccup must not kill the thread; the next beat tries again
                logger.warning("could not refresh the presence of worker %s", hostname, exc_info=True)
            finally:
                connection.close()

    worker_presence_write(hostname=hostname, queues=queues, gpus=gpus)
    thread = threading.Thread(target=beat, name="granary-presence", daemon=True)
    thread.start()
    return thread
