"""End to end: a researcher launches reward-model training from the dashboard and a real Celery worker runs it.

The worker is a separate process (`celery -A config worker --pool=solo`)
started by these tests against the same database pytest-django created, the
same broker (Redis in CI; the filesystem broker on a laptop) and a queue of
its own, so nothing else consumes the runs. The trainers are the real ones
(training.ml.entry) on a tiny encoder saved under MODEL_ROOT.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from django.urls import reverse

from tests.training.run_fixtures import e2e_env, follow_to_the_end, launch_run, wait_for  # noqa: F401
from training.models import RunMetric, RunStatus, TrainingRun

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TRAIN_EXAMPLES = 40
DEV_EXAMPLES = 16


@pytest.fixture
def e2e(e2e_env, settings, qa_feedback_dir, researcher_client):
    """The dev data imported (a train and a dev slice) and a tiny encoder under MODEL_ROOT."""
    from annotation.services.datasets import dataset_import
    from training.ml.tiny import build_tiny_encoder

    settings.MODEL_ROOT = e2e_env["model_root"]
    settings.TRAINING_QUEUE = e2e_env["queue"]
    records = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))
    slices = {"train": records[:TRAIN_EXAMPLES], "dev": records[TRAIN_EXAMPLES : TRAIN_EXAMPLES + DEV_EXAMPLES]}
    folder = e2e_env["model_root"] / "imports"
    folder.mkdir(exist_ok=True)
    for split, chunk in slices.items():
        path = folder / f"{split}.json"
        path.write_text(json.dumps(chunk, indent=2), encoding="utf-8")
        dataset_import(path_or_file=path, dataset_name="qa", split=split)
    encoder = e2e_env["model_root"] / "base" / "tiny-encoder"
    if not (encoder / "config.json").is_file():
        build_tiny_encoder(encoder, texts=[r["question"] + " " + r["prediction 1"] for r in records[:TRAIN_EXAMPLES]])
    return {**e2e_env, "client": researcher_client, "records": records}


def _model_folder(run: TrainingRun, settings) -> Path:
    artifact = run.artifacts.get(kind="model")
    return Path(settings.MODEL_ROOT) / artifact.path


def test_a_researcher_trains_the_relevance_reward_model_on_imported_data(e2e, settings):
    from training.ml.reward_models import TokenRewardModel, answer_words_from_segments, token_rm_words

    run = launch_run(e2e["client"], "rm_relevance", base_model="base/tiny-encoder", epochs=2, log_every_steps=1, max_length=256)
    assert run.config["base_model"] == str((e2e["model_root"] / "base" / "tiny-encoder").resolve())

    run, seen_while_running = follow_to_the_end(e2e, run)
    assert run.status == RunStatus.SUCCEEDED, f"{run.error}\n{run.log_tail}"
    assert seen_while_running, "no metric rows appeared while the run was running"
    assert run.worker_host and run.child_pid and run.progress_step == run.progress_total > 0
    assert RunMetric.objects.filter(run=run, key="train/loss").count() >= 2
    assert RunMetric.objects.filter(run=run, key="eval/macro_f1").exists()
    inputs = Path(run.config["train_file"])
    assert inputs.parent.name == "NF-ERR_subsentence" and inputs.read_text().count("\n") > 0
    assert run.wandb_dir and Path(run.wandb_dir).exists()

    model = TokenRewardModel.load(_model_folder(run, settings))
    answer = answer_words_from_segments([["Paris", "is", "the", "capital,"], ["and", "it", "is", "large."]])
    (labels,) = model.predict([token_rm_words(question="What is the capital of France?", answer_words=answer)])
    assert len(labels) == 2 and set(labels) <= {"O", "NF-ERR"}

    page = e2e["client"].get(reverse("training:run_detail", args=[run.pk]))
    assert "badge-succeeded" in page.content.decode()


def test_a_researcher_trains_the_preference_reward_model_with_its_score_stats(e2e, settings):
    from training.ml.reward_models import PreferenceRewardModel, preference_rm_text

    run = launch_run(e2e["client"], "rm_preference", base_model="base/tiny-encoder", max_steps=8, eval_every_steps=8,
                  log_every_steps=1, max_train_examples=24, max_eval_examples=8, max_length=192)
    run, seen_while_running = follow_to_the_end(e2e, run)
    assert run.status == RunStatus.SUCCEEDED, f"{run.error}\n{run.log_tail}"
    assert seen_while_running, "no metric rows appeared while the run was running"
    assert Path(run.config["train_file"]).parent.name == "feedback"

    model = PreferenceRewardModel.load(_model_folder(run, settings))
    stats = json.loads((_model_folder(run, settings) / "reward_stats.json").read_text())
    assert (model.mean, model.std) == (pytest.approx(stats["mean"]), pytest.approx(stats["std"]))
    assert model.std > 0
    recorded = dict(RunMetric.objects.filter(run=run, key__in=["reward/train_mean", "reward/train_std"]).values_list("key", "value"))
    assert recorded == {"reward/train_mean": pytest.approx(model.mean), "reward/train_std": pytest.approx(model.std)}

    record = e2e["records"][200]
    texts = [preference_rm_text(question=record["question"], passages=None, answer=record[key]) for key in ("prediction 1", "prediction 2")]
    scores = model.score(texts)
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)


def test_cancelling_from_the_run_page_stops_the_trainer_within_seconds(e2e):
    run = launch_run(e2e["client"], "rm_relevance", base_model="base/tiny-encoder", epochs=500, log_every_steps=1)
    wait_for(e2e, lambda: RunMetric.objects.filter(run=run, key="train/loss").exists(), timeout=120, what="the first training metrics")
    pid = TrainingRun.objects.get(pk=run.pk).child_pid

    asked = time.monotonic()
    response = e2e["client"].post(reverse("training:run_cancel", args=[run.pk]))
    assert response.status_code == 302
    wait_for(e2e, lambda: TrainingRun.objects.get(pk=run.pk).is_finished, timeout=30, what="the run to stop")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert time.monotonic() - asked < 15
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_killed_trainer_leaves_a_failed_run_with_its_log_tail(e2e):
    run = launch_run(e2e["client"], "rm_relevance", base_model="base/tiny-encoder", epochs=500, log_every_steps=1)
    wait_for(e2e, lambda: RunMetric.objects.filter(run=run, key="train/loss").exists(), timeout=120, what="the first training metrics")
    pid = TrainingRun.objects.get(pk=run.pk).child_pid
    os.kill(pid, signal.SIGKILL)
    wait_for(e2e, lambda: TrainingRun.objects.get(pk=run.pk).is_finished, timeout=30, what="the run to be marked failed")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "killed by SIGKILL" in run.error
    assert "training.ml.entry rm_relevance" in run.log_tail

    # The researcher can pick it up again from its last checkpoint, if it wrote one.
    response = e2e["client"].post(reverse("training:run_resume", args=[run.pk]))
    again = TrainingRun.objects.get(resumed_from=run)
    assert response["Location"] == reverse("training:run_detail", args=[again.pk])
    e2e["client"].post(reverse("training:run_cancel", args=[again.pk]))
    wait_for(e2e, lambda: TrainingRun.objects.get(pk=again.pk).is_finished, timeout=120, what="the resumed run to stop")
