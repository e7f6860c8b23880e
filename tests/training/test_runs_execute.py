"""The worker's side of a run: start the trainer, follow its events, cancel it, notice it die.

A stand-in trainer (fake_trainer.py, through TRAINING_CHILD_COMMAND) keeps
these fast; test_worker_e2e.py runs the real trainers under a real worker.
"""

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from training import services, supervisor
from training.models import Artifact, RunMetric, RunSample, RunStatus, TrainingRun
from tests.training.run_fixtures import fake_trainer, token_rm_file  # noqa: F401


def _create(token_rm_file) -> TrainingRun:
    upload = SimpleUploadedFile("train.json", token_rm_file.read_bytes())
    return services.run_create(kind="rm_relevance", preset="tiny", uploads={"train": upload})


def _execute(fake_trainer, token_rm_file, mode: str, **options) -> TrainingRun:
    """One run of the fake trainer in `mode`, executed to the end as the worker would, reloaded."""
    fake_trainer(mode, **options)
    run = _create(token_rm_file)
    supervisor.run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def _wait_for(predicate, *, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class _Worker:
    """run_execute in a thread, as a Celery worker would call it."""

    def __init__(self, run_id: int):
        self.thread = threading.Thread(target=self._run, args=(run_id,), daemon=True)
        self.thread.start()

    @staticmethod
    def _run(run_id: int) -> None:
        try:
            supervisor.run_execute(run_id=run_id)
        finally:
            connection.close()

    def join(self, timeout: float = 30.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "run_execute did not return"


def _status(run: TrainingRun) -> str:
    return TrainingRun.objects.values_list("status", flat=True).get(pk=run.pk)


@pytest.mark.django_db
def test_it_runs_the_trainer_to_success_and_records_what_it_reported(token_rm_file, fake_trainer, settings):
    run = _execute(fake_trainer, token_rm_file, "ok", steps=5)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.progress_step, run.progress_total) == (5, 5)
    assert run.child_pid and run.worker_host and run.started_at <= run.finished_at
    assert RunMetric.objects.filter(run=run, key="train/loss").count() == 5
    assert list(RunMetric.objects.filter(run=run, key="train/loss").values_list("step", flat=True)) == [1, 2, 3, 4, 5]
    assert RunSample.objects.filter(run=run).count() == 1
    assert set(Artifact.objects.filter(run=run).values_list("kind", "name")) == {("model", "model"), ("checkpoint", "last")}
    assert run.summary == {"best_step": 5}
    assert "step 5" in run.log_tail and run.error == ""
    folder = Path(settings.MODEL_ROOT) / run.output_dir
    assert (folder / "config.json").is_file() and (folder / "events.jsonl").is_file()
    assert f"train_file={run.config['train_file']}" in (folder / "log.txt").read_text()


@pytest.mark.django_db
def test_it_marks_a_crashed_trainer_failed_with_its_error_and_log(token_rm_file, fake_trainer):
    run = _execute(fake_trainer, token_rm_file, "crash")
    assert run.status == RunStatus.FAILED
    assert run.error == "ValueError: the fake trainer fell over (the trainer exited with code 1)"
    assert "Traceback" in run.log_tail


@pytest.mark.django_db
def test_it_fails_a_trainer_that_exits_without_finishing(token_rm_file, fake_trainer):
    run = _execute(fake_trainer, token_rm_file, "quiet")
    assert run.status == RunStatus.FAILED
    assert run.error == "The trainer exited without reporting that it finished."


@pytest.mark.django_db
def test_it_leaves_runs_that_are_not_queued_alone(token_rm_file, fake_trainer):
    run = _create(token_rm_file)
    services.run_cancel(run=run)
    supervisor.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.child_pid is None
    supervisor.run_execute(run_id=10**9)  # a run deleted since it was queued


@pytest.mark.django_db
def test_it_fails_the_run_when_an_input_file_is_gone(token_rm_file, fake_trainer):
    run = _create(token_rm_file)
    Path(run.config["train_file"]).unlink()
    supervisor.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("Could not prepare the inputs: train_file ") and "does not exist" in run.error
    assert run.child_pid is None


@pytest.mark.django_db
def test_it_passes_the_last_checkpoint_when_resuming(token_rm_file, fake_trainer):
    first = _create(token_rm_file)
    supervisor.run_execute(run_id=first.pk)
    first.refresh_from_db()
    supervisor.run_finish(run=first, status=RunStatus.FAILED, error="pretend the node died")
    again = services.run_resume(run=first)
    supervisor.run_execute(run_id=again.pk)
    again.refresh_from_db()
    assert again.status == RunStatus.SUCCEEDED
    checkpoint = services.run_output_path(first) / "checkpoints" / "last"
    assert f"resume_from={checkpoint}" in again.log_tail


@pytest.mark.django_db(transaction=True)
def test_it_stops_a_cancelled_run_within_seconds(token_rm_file, fake_trainer, monkeypatch):
    fake_trainer("slow")
    monkeypatch.setattr(supervisor, "HEARTBEAT_INTERVAL_S", 0.3)
    run = _create(token_rm_file)
    worker = _Worker(run.pk)
    _wait_for(lambda: RunMetric.objects.filter(run=run).exists(), what="the first metrics")
    _wait_for(lambda: "step" in TrainingRun.objects.get(pk=run.pk).log_tail, what="a live log tail")

    asked = time.monotonic()
    assert services.run_cancel(run=run)
    worker.join()
    run.refresh_from_db()
    assert time.monotonic() - asked < 5
    assert run.status == RunStatus.CANCELLED
    assert run.error == "Cancelled by a user."
    assert "stopping on SIGTERM" in run.log_tail
    with pytest.raises(ProcessLookupError):
        os.kill(run.child_pid, 0)


@pytest.mark.django_db(transaction=True)
def test_it_kills_a_trainer_that_ignores_the_cancel_after_the_grace_period(token_rm_file, fake_trainer, settings):
    fake_trainer("stubborn")
    settings.TRAINING_CANCEL_GRACE_S = 1
    run = _create(token_rm_file)
    worker = _Worker(run.pk)
    _wait_for(lambda: RunMetric.objects.filter(run=run).exists(), what="the first metrics")
    services.run_cancel(run=run)
    worker.join(timeout=15)
    assert _status(run) == RunStatus.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_it_marks_the_run_failed_with_the_log_tail_when_the_trainer_is_killed(token_rm_file, fake_trainer):
    fake_trainer("slow")
    run = _create(token_rm_file)
    worker = _Worker(run.pk)
    _wait_for(lambda: RunMetric.objects.filter(run=run).exists(), what="the first metrics")
    pid = TrainingRun.objects.get(pk=run.pk).child_pid
    os.kill(pid, signal.SIGKILL)
    worker.join()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == "The trainer was killed by SIGKILL."
    assert "step 1" in run.log_tail


@pytest.mark.django_db
def test_it_does_not_start_the_trainer_when_cancelled_while_preparing(token_rm_file, fake_trainer, monkeypatch):
    from training import inputs

    prepare = inputs.run_prepare_config

    def prepare_then_cancel(**kwargs):
        services.run_cancel(run=kwargs["run"])
        return prepare(**kwargs)

    monkeypatch.setattr(inputs, "run_prepare_config", prepare_then_cancel)
    run = _create(token_rm_file)
    supervisor.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.child_pid is None
    assert run.error == "Cancelled by a user before the trainer started."


@pytest.mark.django_db
def test_a_run_sent_in_eager_mode_runs_at_commit(token_rm_file, fake_trainer, django_capture_on_commit_callbacks):
    from config.celery import app

    was = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run = _create(token_rm_file)
    finally:
        app.conf.task_always_eager = was
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error


@pytest.mark.django_db
def test_a_checkpoint_swapped_for_a_newer_one_while_it_is_measured_is_recorded_and_the_run_goes_on(
    token_rm_file, monkeypatch
):
    # The trainer saves `checkpoints/last` by renaming it away and a complete new folder in (checkpoints.
    # replace_dir) while the worker measures the folder an event named. Between the two renames `last` does not
    # exist: a walk that reaches it then failed, and with it the worker's run task (seen in CI).
    import shutil

    run = _create(token_rm_file)
    last = supervisor.run_output_path(run) / "checkpoints" / "last"
    for folder, size in ((last, 1000), (last.with_name("last.tmp"), 3000)):
        (folder / "model").mkdir(parents=True)
        (folder / "model" / "weights.bin").write_bytes(b"w" * size)
        (folder / "state.json").write_text("{}")
    real_scandir, swapped = os.scandir, []

    def scandir_mid_swap(path="."):
        if isinstance(path, int) or Path(path) != last or swapped:
            return real_scandir(path)
        swapped.append(True)
        last.rename(last.with_name("last.old"))  # the save's first rename has happened, its second not yet
        try:
            return real_scandir(path)
        finally:
            last.with_name("last.tmp").rename(last)
            shutil.rmtree(last.with_name("last.old"))

    event = {"event": "artifact", "kind": "checkpoint", "name": "last", "path": "checkpoints/last"}
    monkeypatch.setattr(os, "scandir", scandir_mid_swap)
    supervisor.run_record_events(run=run, events=[event])
    monkeypatch.undo()

    assert swapped
    artifact = Artifact.objects.get(run=run, name="last")
    assert artifact.path.endswith("checkpoints/last") and artifact.size_bytes == 0  # nothing found mid-swap
    # The next save's event measures the folder as it now is.
    supervisor.run_record_events(run=run, events=[event])
    assert Artifact.objects.get(run=run, name="last").size_bytes == 3002
