"""End to end: the run page's New round button, sampled by a real Celery worker; the worker says it is online."""

from __future__ import annotations

import json
import shutil

import pytest
from django.urls import reverse

from tests.training.run_fixtures import e2e_env, wait_for  # noqa: F401
from training.models import RoundJob, WorkerPresence

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def round_e2e(e2e_env, settings, qa_feedback_dir, researcher_client, annotator, tmp_path):
    from annotation.models import Dataset
    from annotation.services.datasets import dataset_import
    from tests.training.test_ppo import tiny
    from tests.training.test_rounds import _policy_run

    settings.MODEL_ROOT = e2e_env["model_root"]
    settings.TRAINING_QUEUE = e2e_env["queue"]
    built = tiny.__wrapped__(_Factory(tmp_path), qa_feedback_dir)
    root = e2e_env["model_root"]
    for name in ("policy", "r1", "r2", "r3"):
        shutil.copytree(built / name, root / name, dirs_exist_ok=True)
    records = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))[:2]
    path = tmp_path / "feedback.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    dataset_import(path_or_file=path, dataset_name="qa", split="dev")
    run = _policy_run("ppo_fine_grained", root, Dataset.objects.get(name="qa"))
    return {**e2e_env, "client": researcher_client, "run": run}


class _Factory:
    """Stands in for pytest's tmp_path_factory (the tiny-model builder asks it for one folder)."""

    def __init__(self, base):
        self.base = base

    def mktemp(self, name):
        folder = self.base / name
        folder.mkdir()
        return folder


def test_the_button_queues_a_round_that_a_worker_samples_and_opens_as_a_campaign(round_e2e):
    client, run = round_e2e["client"], round_e2e["run"]
    response = client.post(reverse("training:run_round", args=[run.pk]), {"split": "dev", "samples": "4", "limit": "2"})
    assert response.status_code == 302
    job = RoundJob.objects.get()

    def finished():
        job.refresh_from_db()
        return not job.active

    wait_for(round_e2e, finished, timeout=240, what=f"round {job.pk} to finish")
    assert job.status == RoundJob.Status.SUCCEEDED, job.error
    assert (job.round, job.split, job.examples, job.responses) == (1, "dev-round1", 2, 8)
    assert job.progress_done == job.progress_total == 8
    assert job.campaign.source_run_id == run.pk
    page = client.get(reverse("training:run_detail", args=[run.pk])).content.decode()
    assert reverse("annotation:campaign_detail", args=[job.campaign_id]) in page

    # The worker wrote its presence on start: the launch form knows a CPU worker is on the queue.
    presence = WorkerPresence.objects.get(hostname__startswith=f"e2e-{round_e2e['queue']}@")
    assert round_e2e["queue"] in presence.queues and presence.gpus == 0
