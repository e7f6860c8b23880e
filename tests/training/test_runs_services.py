"""Run services: creating runs with validated configs, recording events, cancel, resume, reaping."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from annotation.models import Dataset, Example
from annotation.qa.errors import Conflict
from training import services, supervisor
from training.inputs import InputError, resolve_model_ref, run_prepare_config
from training.ml.configs import ConfigError
from training.models import Artifact, RunMetric, RunSample, RunStatus, TrainingRun
from tests.training.run_fixtures import token_rm_file  # noqa: F401

pytestmark = pytest.mark.django_db


def _upload(path: Path) -> SimpleUploadedFile:
    return SimpleUploadedFile("train.json", path.read_bytes())


def _create(token_rm_file, **extra) -> TrainingRun:
    options = {"kind": "rm_relevance", "preset": "tiny", "uploads": {"train": _upload(token_rm_file)}}
    options.update(extra)
    return services.run_create(**options)


def test_it_stores_the_full_config_with_the_uploaded_file_inside_the_run_folder(token_rm_file, settings, researcher):
    run = _create(token_rm_file, overrides={"max_steps": 3}, user=researcher)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert run.output_dir == f"runs/{run.pk}-rm_relevance"
    folder = Path(settings.MODEL_ROOT) / run.output_dir
    assert run.config["train_file"] == str(folder / "inputs" / "uploaded" / "train.json")
    assert Path(run.config["train_file"]).read_bytes() == token_rm_file.read_bytes()
    assert run.config["eval_file"] == ""
    assert run.config["max_steps"] == 3
    assert run.config["base_model"] == "{tiny_encoder}"  # from the tiny preset
    assert run.config["weight_decay"] == 0.01  # every field is stored, not only the overrides
    assert run.created_by == researcher


def test_it_enqueues_the_run_on_the_gpu_queue_after_commit(token_rm_file, monkeypatch, django_capture_on_commit_callbacks):
    from config.celery import app

    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, **kw: sent.append((name, kw)))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = _create(token_rm_file)
    assert sent == []  # nothing leaves before the transaction commits
    for callback in callbacks:
        callback()
    run.refresh_from_db()
    assert sent == [("training.run_training", {"args": [run.pk], "queue": "gpu", "task_id": run.celery_task_id})]


def test_it_refuses_bad_settings_naming_every_field(token_rm_file):
    with pytest.raises(ConfigError) as caught:
        _create(token_rm_file, overrides={"learning_rate": "fast", "lr": 1.0, "train_file": "/etc/passwd"})
    fields = {field for field, _ in caught.value.problems}
    assert fields == {"learning_rate", "lr", "train_file"}
    with pytest.raises(ConfigError) as caught:
        _create(token_rm_file, overrides={"epochs": 0, "warmup_ratio": 1.5})
    assert {field for field, _ in caught.value.problems} == {"epochs", "warmup_ratio"}
    assert TrainingRun.objects.count() == 0


def test_it_refuses_a_model_outside_model_root(token_rm_file, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(ConfigError) as caught:
        _create(token_rm_file, overrides={"base_model": str(elsewhere)})
    assert caught.value.problems[0][0] == "base_model"
    assert "outside MODEL_ROOT" in caught.value.problems[0][1]


def test_it_accepts_hub_names_and_folders_inside_model_root(settings, tmp_path):
    root = Path(settings.MODEL_ROOT)
    (root / "base" / "enc").mkdir(parents=True)
    assert resolve_model_ref("allenai/longformer-base-4096", model_root=root) == "allenai/longformer-base-4096"
    assert resolve_model_ref("t5-large", model_root=root) == "t5-large"
    assert resolve_model_ref("base/enc", model_root=root) == str((root / "base" / "enc").resolve())
    assert resolve_model_ref(str(root / "base" / "enc"), model_root=root) == str((root / "base" / "enc").resolve())
    for bad in ("../outside", str(tmp_path), "/etc", "base/../../x", "not a name!", ""):
        with pytest.raises(ValueError):
            resolve_model_ref(bad, model_root=root)


def test_it_needs_a_dataset_split_or_an_upload():
    with pytest.raises(ConfigError) as caught:
        services.run_create(kind="rm_relevance", preset="tiny")
    assert caught.value.problems == [("dataset", "choose a dataset split or upload a training file")]


def test_it_refuses_splits_the_dataset_does_not_have_in_the_needed_format():
    dataset = Dataset.objects.create(name="qa")
    Example.objects.create(dataset=dataset, split="dev", position=0, question="q?", has_input_format=True)
    with pytest.raises(ConfigError) as caught:
        services.run_create(kind="rm_relevance", dataset=dataset, train_split="dev", eval_split="test", preset="tiny")
    problems = dict(caught.value.problems)
    assert "feedback" in problems["train_split"]  # dev holds only policy inputs
    assert "no split 'test'" in problems["eval_split"] and "dev" in problems["eval_split"]


def test_it_plans_dataset_inputs_in_the_run_folder():
    dataset = Dataset.objects.create(name="qa")
    Example.objects.create(dataset=dataset, split="dev", position=0, question="q?", has_feedback_format=True)
    run = services.run_create(kind="rm_factuality", dataset=dataset, train_split="dev", eval_split="dev", preset="tiny")
    folder = services.run_output_path(run) / "inputs" / "F-ERR_sentence"
    assert run.config["train_file"] == run.config["eval_file"] == str(folder / "dev.json")


def _running_run(token_rm_file) -> TrainingRun:
    run = _create(token_rm_file)
    claimed = supervisor.run_claim(run_id=run.pk, host="gpu-node-1")
    assert claimed is not None
    return claimed


def test_it_claims_a_queued_run_only_once(token_rm_file):
    run = _running_run(token_rm_file)
    assert run.status == RunStatus.RUNNING and run.worker_host == "gpu-node-1" and run.started_at
    assert supervisor.run_claim(run_id=run.pk, host="gpu-node-2") is None


def test_it_records_progress_metrics_samples_artifacts_and_the_summary(token_rm_file, settings):
    run = _running_run(token_rm_file)
    model_dir = services.run_output_path(run) / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "weights.bin").write_bytes(b"x" * 10)
    supervisor.run_record_events(
        run=run,
        events=[
            {"event": "start", "total_steps": 4, "wandb_dir": "/w/run-1", "wandb_url": "https://wandb.ai/x/y"},
            {"event": "progress", "step": 2, "total": 4},
            {"event": "metrics", "step": 2, "metrics": {"train/loss": 0.7, "train/lr": 1e-3, "eval/f1": None, "odd": "text"}},
            {"event": "sample", "step": 2, "prompt": "p", "text": "a b", "segments": [{"text": "a", "reward": 0.3, "label": "O"}], "total_reward": 0.3},
            {"event": "artifact", "kind": "model", "name": "model", "path": "model", "meta": {"best_step": 2}},
            {"event": "artifact", "kind": "file", "name": "escape", "path": "../../../etc/passwd"},
            {"event": "progress", "step": 9, "total": 4},
            {"event": "done", "summary": {"best_step": 2}},
            {"event": "mystery"},
        ],
    )
    run.refresh_from_db()
    assert (run.progress_step, run.progress_total) == (4, 4)
    assert (run.wandb_dir, run.wandb_url) == ("/w/run-1", "https://wandb.ai/x/y")
    assert sorted(RunMetric.objects.filter(run=run).values_list("key", "step", "value")) == [("train/loss", 2, 0.7), ("train/lr", 2, 1e-3)]
    sample = RunSample.objects.get(run=run)
    assert sample.segments == [{"text": "a", "reward": 0.3, "label": "O"}] and sample.total_reward == 0.3
    artifact = Artifact.objects.get(run=run)
    assert (artifact.kind, artifact.path, artifact.size_bytes) == ("model", f"{run.output_dir}/model", 10)
    assert run.summary == {"best_step": 2}


def test_it_cancels_a_queued_run_at_once_and_flags_a_running_one(token_rm_file):
    queued = _create(token_rm_file)
    assert services.run_cancel(run=queued)
    queued.refresh_from_db()
    assert queued.status == RunStatus.CANCELLED and queued.finished_at
    assert supervisor.run_claim(run_id=queued.pk, host="h") is None  # a worker that gets it later does nothing

    running = _running_run(token_rm_file)
    assert services.run_cancel(run=running)
    running.refresh_from_db()
    assert running.status == RunStatus.RUNNING and running.cancel_requested
    assert supervisor.run_cancel_requested(run=running)

    supervisor.run_finish(run=running, status=RunStatus.CANCELLED)
    assert not services.run_cancel(run=running)


def test_it_fails_runs_whose_worker_stopped_beating(token_rm_file, settings):
    settings.TRAINING_HEARTBEAT_TIMEOUT_S = 60
    stale = _running_run(token_rm_file)
    fresh = _running_run(token_rm_file)
    folder = services.run_output_path(stale)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.txt").write_text("step 1\nstep 2\n")
    now = timezone.now()
    TrainingRun.objects.filter(pk=stale.pk).update(heartbeat_at=now - timedelta(seconds=61))
    TrainingRun.objects.filter(pk=fresh.pk).update(heartbeat_at=now - timedelta(seconds=30))

    assert services.runs_reap_stale(now=now) == [stale.pk]
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == RunStatus.FAILED
    assert "gpu-node-1 stopped reporting 61 s ago" in stale.error and "Resume" in stale.error
    assert stale.log_tail == "step 1\nstep 2"
    assert fresh.status == RunStatus.RUNNING
    assert services.runs_reap_stale(now=now) == []


def test_it_resumes_a_failed_run_from_its_last_checkpoint(token_rm_file, researcher):
    run = _running_run(token_rm_file)
    checkpoint = services.run_output_path(run) / "checkpoints" / "last"
    checkpoint.mkdir(parents=True)
    supervisor.run_record_event(run=run, event={"event": "artifact", "kind": "checkpoint", "name": "last", "path": "checkpoints/last"})
    supervisor.run_finish(run=run, status=RunStatus.FAILED, error="killed")

    again = services.run_resume(run=run, user=researcher)
    assert again.pk != run.pk and again.resumed_from == run and again.status == RunStatus.QUEUED
    assert again.config == run.config  # uploaded inputs stay where they were saved
    assert again.output_dir == f"runs/{again.pk}-rm_relevance"
    assert supervisor.run_resume_checkpoint(run=again) == checkpoint
    assert supervisor.run_resume_checkpoint(run=run) is None


def test_it_resumes_from_the_last_checkpoint_even_when_the_best_was_reported_after_it(token_rm_file):
    run = _running_run(token_rm_file)
    for name in ("last", "best"):
        (services.run_output_path(run) / "checkpoints" / name).mkdir(parents=True)
        supervisor.run_record_event(run=run, event={"event": "artifact", "kind": "checkpoint", "name": name, "path": f"checkpoints/{name}"})
    supervisor.run_finish(run=run, status=RunStatus.CANCELLED)

    again = services.run_resume(run=run)

    assert supervisor.run_resume_checkpoint(run=again) == services.run_output_path(run) / "checkpoints" / "last"


def test_it_refuses_to_resume_a_run_that_succeeded(token_rm_file):
    run = _running_run(token_rm_file)
    supervisor.run_finish(run=run, status=RunStatus.SUCCEEDED)
    with pytest.raises(Conflict):
        services.run_resume(run=run)


def _import(tmp_path, records, *, split: str) -> Dataset:
    from annotation.services.datasets import dataset_import

    path = tmp_path / f"{split}.json"
    path.write_text(json.dumps(records, indent=2))
    dataset_import(path_or_file=path, dataset_name="qa", split=split)
    return Dataset.objects.get(name="qa")


def test_it_builds_policy_inputs_from_the_database_for_sft(qa_feedback_dir, tmp_path):
    records = json.loads((qa_feedback_dir / "dev.json").read_text())[:5]
    dataset = _import(tmp_path, records, split="train")
    run = services.run_create(kind="sft", dataset=dataset, train_split="train", eval_split="train", preset="tiny")
    config = run_prepare_config(run=run, output_dir=services.run_output_path(run))
    assert config == run.config
    assert json.loads(Path(config["train_file"]).read_text()) == records


def test_it_builds_the_reward_model_file_of_the_kind(qa_feedback_dir, tmp_path):
    records = json.loads((qa_feedback_dir / "dev_feedback.json").read_text())[:6]
    dataset = _import(tmp_path, records, split="dev")
    run = services.run_create(kind="rm_relevance", dataset=dataset, train_split="dev", preset="tiny")
    beats = []
    config = run_prepare_config(run=run, output_dir=services.run_output_path(run), beat=lambda: beats.append(1))
    assert len(beats) == len(records)  # the build keeps the heartbeat going, example by example
    lines = Path(config["train_file"]).read_text().splitlines()
    assert Path(config["train_file"]).parent.name == "NF-ERR_subsentence" and config["eval_file"] == ""
    assert lines and all(set(json.loads(line)) == {"id", "text", "feedback_tags"} for line in lines)


def test_it_refuses_to_prepare_inputs_whose_split_lost_its_examples(qa_feedback_dir, tmp_path):
    records = json.loads((qa_feedback_dir / "dev_feedback.json").read_text())[:3]
    dataset = _import(tmp_path, records, split="dev")
    run = services.run_create(kind="rm_preference", dataset=dataset, train_split="dev", preset="tiny")
    dataset.examples.all().delete()
    with pytest.raises(InputError, match="no examples in the feedback format"):
        run_prepare_config(run=run, output_dir=services.run_output_path(run))
