"""Dead GPU nodes noticed by the beat reaper, idempotent Resume, and artifact zips built in the background."""

import io
import os
import zipfile
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from config.celery import app as celery_app
from training import services, supervisor
from training.models import RunStatus, TrainingRun
from tests.training.run_fixtures import token_rm_file  # noqa: F401

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _running(token_rm_file) -> TrainingRun:
    upload = SimpleUploadedFile("train.json", token_rm_file.read_bytes())
    run = services.run_create(kind="rm_relevance", preset="tiny", uploads={"train": upload})
    return supervisor.run_claim(run_id=run.pk, host="gpu-node-7")


# --- the reaper -----------------------------------------------------------------------------


def test_celery_beat_sends_the_reaper_to_the_default_queue_every_15_seconds(settings):
    entry = celery_app.conf.beat_schedule["reap-stale-runs"]
    assert entry["task"] == "training.reap_stale_runs"
    assert entry["schedule"] == 15 and entry["options"]["queue"] == "default"
    # A killed node's run is failed within a minute: silent for the timeout, then at most one interval.
    assert settings.TRAINING_HEARTBEAT_TIMEOUT_S == 45
    assert settings.TRAINING_HEARTBEAT_TIMEOUT_S + entry["schedule"] <= 60


def test_the_beat_task_fails_a_run_whose_heartbeat_stopped_without_any_page(token_rm_file, settings):
    dead, alive = _running(token_rm_file), _running(token_rm_file)
    now = timezone.now()
    TrainingRun.objects.filter(pk=dead.pk).update(heartbeat_at=now - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT_S + 1))
    TrainingRun.objects.filter(pk=alive.pk).update(heartbeat_at=now - timedelta(seconds=5))

    celery_app.loader.import_default_modules()
    task = celery_app.tasks[celery_app.conf.beat_schedule["reap-stale-runs"]["task"]]
    assert task.apply().get() == [dead.pk]

    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == RunStatus.FAILED and "gpu-node-7 stopped reporting" in dead.error
    assert alive.status == RunStatus.RUNNING


def test_the_dashboard_only_reads(researcher_client, token_rm_file, settings):
    run = _running(token_rm_file)
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    researcher_client.get(reverse("training:run_list"))
    researcher_client.get(reverse("training:run_detail", args=[run.pk]), **HTMX)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # left to the reaper


# --- Resume ---------------------------------------------------------------------------------


def test_a_second_resume_returns_the_run_already_created(token_rm_file, researcher):
    run = _running(token_rm_file)
    supervisor.run_finish(run=run, status=RunStatus.FAILED, error="node died")
    first = services.run_resume(run=run, user=researcher)
    second = services.run_resume(run=run, user=researcher)
    assert second.pk == first.pk
    assert TrainingRun.objects.filter(resumed_from=run).count() == 1
    assert TrainingRun.objects.count() == 2


def test_two_resume_clicks_on_the_page_queue_one_run(researcher_client, token_rm_file):
    run = _running(token_rm_file)
    supervisor.run_finish(run=run, status=RunStatus.CANCELLED)
    url = reverse("training:run_resume", args=[run.pk])
    first, second = researcher_client.post(url), researcher_client.post(url)
    resumed = TrainingRun.objects.get(resumed_from=run)
    assert first["Location"] == second["Location"] == reverse("training:run_detail", args=[resumed.pk])


def test_the_database_refuses_a_second_resume_of_one_run(token_rm_file):
    from django.db import IntegrityError, transaction

    run = _running(token_rm_file)
    supervisor.run_finish(run=run, status=RunStatus.FAILED, error="node died")
    services.run_resume(run=run)
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRun.objects.create(kind=run.kind, resumed_from=run)


# --- artifact zips --------------------------------------------------------------------------


def _model_folder(run, settings):
    folder = services.run_output_path(run) / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "weights.bin").write_bytes(b"\0\1" * 1000)
    supervisor.run_record_events(run=run, events=[{"event": "artifact", "kind": "model", "name": "model", "path": "model"}])
    return folder, run.artifacts.get(name="model")


def test_a_folder_is_zipped_in_the_background_then_downloaded(researcher_client, token_rm_file, settings, eager_celery):
    run = _running(token_rm_file)
    folder, model = _model_folder(run, settings)
    page = researcher_client.get(reverse("training:run_detail", args=[run.pk])).content.decode()
    zip_page = reverse("training:artifact_zip", args=[run.pk, model.pk])
    assert zip_page in page and "Download as zip" in page

    assert "Build the zip" in researcher_client.get(zip_page).content.decode()
    assert researcher_client.post(zip_page)["Location"] == zip_page  # eager: the task ran here
    poll = researcher_client.get(zip_page, **HTMX)
    assert poll.status_code == 286  # done: htmx stops polling
    assert 'data-status="ready"' in poll.content.decode()

    response = researcher_client.get(reverse("training:artifact_zip_download", args=[run.pk, model.pk]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["model/config.json", "model/sub/weights.bin"]
    assert archive.read("model/sub/weights.bin") == b"\0\1" * 1000


def test_the_zip_page_polls_while_a_worker_builds(researcher_client, token_rm_file, settings, monkeypatch):
    run = _running(token_rm_file)
    _folder, model = _model_folder(run, settings)
    sent = []
    monkeypatch.setattr(celery_app, "signature", lambda *args, **kwargs: sent.append((args, kwargs)) or _Sent())
    zip_page = reverse("training:artifact_zip", args=[run.pk, model.pk])
    researcher_client.post(zip_page)
    researcher_client.post(zip_page)  # a second click while it is queued sends nothing more
    assert sent == [(("training.build_artifact_zip",), {"args": [model.pk], "queue": "default"})]
    poll = researcher_client.get(zip_page, **HTMX)
    assert poll.status_code == 200 and 'hx-trigger="every 1s"' in poll.content.decode()
    assert researcher_client.get(reverse("training:artifact_zip_download", args=[run.pk, model.pk])).status_code == 404


class _Sent:
    def apply_async(self):
        return None


def test_the_zip_skips_symbolic_links_and_never_leaves_model_root(token_rm_file, settings, tmp_path):
    run = _running(token_rm_file)
    folder, model = _model_folder(run, settings)
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("private key material")
    os.symlink(secret, folder / "linked-file.txt")
    os.symlink(secret.parent, folder / "linked-folder")
    os.symlink(folder / "config.json", folder / "inside-link.json")  # even links that stay inside
    os.mkfifo(folder / "a-fifo")  # would block a naive reader

    zip_path = services.artifact_zip_build(artifact_id=model.pk)
    names = zipfile.ZipFile(zip_path).namelist()
    assert sorted(names) == ["model/config.json", "model/sub/weights.bin"]
    assert b"private key material" not in zip_path.read_bytes()


def test_an_artifact_pointing_outside_model_root_is_refused(researcher_client, token_rm_file, settings, tmp_path):
    run = _running(token_rm_file)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.txt").write_text("x")
    supervisor.run_record_events(run=run, events=[{"event": "artifact", "kind": "model", "name": "escape", "path": "../../elsewhere"}])
    artifact = run.artifacts.get(name="escape")
    artifact.path = os.path.relpath(outside, settings.MODEL_ROOT)
    artifact.save()
    assert researcher_client.get(reverse("training:artifact_zip", args=[run.pk, artifact.pk])).status_code == 404
    assert services.artifact_zip_build(artifact_id=artifact.pk) is None
    state_page = researcher_client.get(reverse("training:artifact_zip_download", args=[run.pk, artifact.pk]))
    assert state_page.status_code == 404
