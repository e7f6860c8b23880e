"""Fixtures shared by the run-system tests (imported by name; kept out of conftest so other helpers own theirs)."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_TRAINER = Path(__file__).resolve().parent / "fake_trainer.py"
TOKEN_LINE = {"id": "0", "text": ["question:", "who?", "answer:", "</s>", "Him."], "feedback_tags": ["Ignore", "Ignore", "Ignore", "O", "Ignore"]}


@pytest.fixture
def token_rm_file(tmp_path) -> Path:
    """A one-line NF-ERR_subsentence file, as a researcher would upload it."""
    path = tmp_path / "upload-train.json"
    path.write_text(json.dumps(TOKEN_LINE) + "\n")
    return path


@pytest.fixture
def fake_trainer(settings):
    """Run the stand-in trainer instead of training.ml.entry; returns a function that picks its mode."""

    def use(mode: str = "ok", *, steps: int = 5) -> None:
        settings.TRAINING_CHILD_COMMAND = [sys.executable, str(FAKE_TRAINER), "--mode", mode, "--steps", str(steps)]

    use()
    return use


# ---------------------------------------------------------------- a real Celery worker, for the end-to-end tests


def worker_database_url() -> str:
    """A DATABASE_URL that points a worker process at pytest-django's test database."""
    from django.db import connection

    settings = connection.settings_dict
    name = str(settings["NAME"])
    if connection.vendor == "sqlite":
        if name == ":memory:" or "mode=memory" in name:
            pytest.skip(
                "the worker process cannot see pytest-django's in-memory SQLite test database; "
                "run with DATABASE_URL=postgres://... (as CI does) or give SQLite a TEST NAME file"
            )
        return f"sqlite:///{name}"
    if connection.vendor != "postgresql":
        pytest.skip(f"the end-to-end test knows PostgreSQL and SQLite, not {connection.vendor}")
    user = quote(settings.get("USER") or "", safe="")
    password = quote(settings.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{name}"


@pytest.fixture(scope="module")
def e2e_env(django_db_setup, django_db_blocker, tmp_path_factory):
    """A Celery worker on a private queue, sharing MODEL_ROOT with the tests of the module that uses it.

    The worker is a separate process (`celery -A config worker --pool=solo`)
    against the same database pytest-django created and the same broker (Redis
    in CI; the filesystem broker on a laptop); its queue is its own, so nothing
    else consumes the runs.
    """
    model_root = tmp_path_factory.mktemp("e2e-models")
    queue = f"gpu-e2e-{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        database_url = worker_database_url()
    log_path = tmp_path_factory.mktemp("e2e-worker") / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MODEL_ROOT": str(model_root),
        # A pipeline's advance tasks (sent when one of its runs finishes) go to this worker too.
        "TRAINING_PIPELINE_QUEUE": queue,
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "TRAINING_HEARTBEAT_TIMEOUT_S": "120",
        "TRAINING_CANCEL_GRACE_S": "10",
    }
    celery = str(Path(sys.executable).with_name("celery"))
    log = open(log_path, "wb")
    worker = subprocess.Popen(
        [celery, "-A", "config", "worker", "-Q", queue, "-c", "1", "--pool=solo", "--loglevel=INFO",
         "--without-gossip", "--without-mingle", "--hostname", f"e2e-{queue}@%h"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield {"model_root": model_root, "queue": queue, "log_path": log_path, "worker": worker}
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()


def launch_run(client, kind: str, *, dataset: str = "qa", preset: str = "tiny", **settings_values):
    """Launch a run from the dashboard's form, as a researcher would; settings go in the config table."""
    from django.urls import reverse

    from training.models import TrainingRun

    data = {"kind": kind, "preset": preset, "dataset": dataset, "train_split": "train", "eval_split": "dev"}
    data.update({f"cfg-{key}": str(value) for key, value in settings_values.items()})
    response = client.post(reverse("training:run_launch"), data)
    assert response.status_code == 302, response.content.decode()[-2000:]
    return TrainingRun.objects.get(pk=int(response["Location"].rstrip("/").rsplit("/", 1)[-1]))


def worker_log(env) -> str:
    return Path(env["log_path"]).read_text(errors="replace")[-4000:]


# A busy 2-core machine can make a tiny run take minutes: the waits below never give up while
# the worker is visibly working (its log grows, a run beats or reports); they fail only after
# `stall` seconds without any sign of life, or after a very generous overall cap.
OVERALL_CAP_S = 3600


def _signs_of_life(env) -> tuple:
    from django.db.models import Max, Sum

    from training.models import RunMetric, TrainingRun

    log = Path(env["log_path"])
    runs = TrainingRun.objects.aggregate(beat=Max("heartbeat_at"), steps=Sum("progress_step"))
    return (log.stat().st_size if log.exists() else 0, runs["beat"], runs["steps"], RunMetric.objects.count())


def wait_for(env, predicate, *, timeout: float, what: str):
    """Poll `predicate` until it returns something truthy; fail if the worker dies or shows no sign
    of life for `timeout` seconds."""
    started = time.monotonic()
    last_change, signs = started, None
    while time.monotonic() - started < OVERALL_CAP_S:
        value = predicate()
        if value:
            return value
        assert env["worker"].poll() is None, f"the worker died:\n{worker_log(env)}"
        now_signs = _signs_of_life(env)
        if now_signs != signs:
            last_change, signs = time.monotonic(), now_signs
        elif time.monotonic() - last_change > timeout:
            break
        time.sleep(0.2)
    raise AssertionError(f"no sign of life for {timeout} s while waiting for {what}\n--- worker log ---\n{worker_log(env)}")


def follow_to_the_end(env, run, *, timeout: float = 240):
    """Wait for the run to finish (while it shows signs of life); also report whether metric rows
    were seen while it was running."""
    from training.models import RunMetric, RunStatus

    seen = {"while_running": False}

    def finished():
        run.refresh_from_db()
        if run.status == RunStatus.RUNNING and RunMetric.objects.filter(run=run).exists():
            seen["while_running"] = True
        return run.is_finished

    wait_for(env, finished, timeout=timeout, what=f"run {run.pk} to finish")
    return run, seen["while_running"]


def import_policy_inputs(qa_feedback_dir: Path, folder: Path, *, train: int, dev: int, dataset: str = "qa-policy") -> dict[str, list[dict]]:
    """The first `train` and the next `dev` prompts of dev.json imported as the train and dev splits of `dataset`.

    SFT and PPO runs read the policy-input format, which the feedback slices
    of the reward-model tests do not hold.
    """
    from annotation.services.datasets import dataset_import

    records = json.loads((qa_feedback_dir / "dev.json").read_text(encoding="utf-8"))
    slices = {"train": records[:train], "dev": records[train : train + dev]}
    folder.mkdir(parents=True, exist_ok=True)
    for split, chunk in slices.items():
        path = folder / f"{dataset}-{split}.json"
        path.write_text(json.dumps(chunk, indent=4), encoding="utf-8")
        dataset_import(path_or_file=path, dataset_name=dataset, split=split)
    return slices


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine OpenMP spinning slows them 5-10x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
