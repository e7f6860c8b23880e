"""End to end: pipelines from a feedback file alone to a PPO policy, through a real Celery worker and the real trainers.

A researcher imports dev_feedback.json slices (400 train / 100 dev, no dev.json) and runs
`manage.py run_pipeline fine_grained --preset tiny --wait --json` as a separate process, against the worker
of run_fixtures.e2e_env (which also takes the pipeline's advance tasks). Then a holistic pipeline has its
PPO trainer killed mid-run, fails, and resumes without training its finished stages again. The fine-grained
pipeline's policy then samples a new annotation round (`generate_round`) that an annotator opens.
Waits follow signs of life (run_fixtures.wait_for), never a fixed budget.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from annotation.models import Campaign, Response
from tests.training.run_fixtures import REPO_ROOT, e2e_env, wait_for, worker_database_url  # noqa: F401
from training.models import Pipeline, RunMetric, RunStatus, TrainingRun

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FINE_GRAINED_KINDS = ["sft", "rm_relevance", "rm_factuality", "rm_completeness", "ppo_fine_grained"]


@pytest.fixture
def pipeline_env(e2e_env, settings, qa_feedback_dir, tmp_path):
    """The worker's queue for runs and pipeline advances, and a dataset holding only feedback (400 / 100)."""
    from annotation.services.datasets import dataset_import

    settings.MODEL_ROOT = e2e_env["model_root"]
    settings.TRAINING_QUEUE = e2e_env["queue"]
    settings.TRAINING_PIPELINE_QUEUE = e2e_env["queue"]
    records = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))
    for split, part in (("train", records[:400]), ("dev", records[400:500])):
        path = tmp_path / f"{split}.json"
        path.write_text(json.dumps(part), encoding="utf-8")
        dataset_import(path_or_file=path, dataset_name="qa-feedback-only", split=split)
    return e2e_env


def _manage(env, *argv: str, log_name: str) -> tuple[subprocess.Popen, object]:
    """`manage.py ARGV` in its own process against the test database (as a researcher's shell would)."""
    log = open(env["log_path"].parent / log_name, "w+b")
    process = subprocess.Popen(
        [sys.executable, "manage.py", *argv], cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "DATABASE_URL": worker_database_url(), "MODEL_ROOT": str(env["model_root"]),
             "TRAINING_QUEUE": env["queue"], "TRAINING_PIPELINE_QUEUE": env["queue"], "HF_HUB_OFFLINE": "1",
             "WANDB_MODE": "offline"},
    )
    return process, log


def _output(log) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")


def test_fine_grained_pipeline_from_a_feedback_file_alone_then_a_new_round_from_its_policy(pipeline_env, annotator):
    process, log = _manage(pipeline_env, "run_pipeline", "fine_grained", "--dataset", "qa-feedback-only",
                           "--train-split", "train", "--eval-split", "dev", "--preset", "tiny", "--wait", "--json",
                           log_name="run_pipeline.log")
    wait_for(pipeline_env, lambda: process.poll() is not None, timeout=300, what="run_pipeline --wait to end")
    output = _output(log)
    assert process.returncode == 0, output[-4000:]
    report = json.loads(output.strip().splitlines()[-1])
    assert report["status"] == "succeeded"
    assert [run["kind"] for run in report["runs"]] == FINE_GRAINED_KINDS
    assert all(run["status"] == "succeeded" and run["summary"] for run in report["runs"])

    pipeline = Pipeline.objects.get(pk=report["pipeline"])
    runs = {run.pipeline_stage: run for run in TrainingRun.objects.filter(pipeline=pipeline)}
    assert set(runs) == {"sft", "r1", "r2", "r3", "ppo"}
    # SFT and PPO trained on prompts derived from the feedback: 400 of them, built as dev.json builds `text`.
    prompts = json.loads(open(runs["ppo"].config["train_file"], encoding="utf-8").read())
    assert len(prompts) == 400 and all(p["text"].startswith(f"question: {p['question']} context: ") for p in prompts)
    # PPO started from the SFT stage's model and the three reward models of this pipeline.
    assert runs["sft"].output_dir in runs["ppo"].config["policy_model"]
    assert runs["r3"].output_dir in runs["ppo"].config["rm_completeness_model"]
    # The curves show learning: SFT's loss falls, PPO evaluated before and after its updates.
    losses = list(RunMetric.objects.filter(run=runs["sft"], key="train/loss").order_by("step").values_list("value", flat=True))
    assert len(losses) >= 3 and losses[-1] < losses[0]
    eval_steps = set(RunMetric.objects.filter(run=runs["ppo"], key="eval/rouge_lsum").values_list("step", flat=True))
    assert 0 in eval_steps and max(eval_steps) > 0
    assert RunMetric.objects.filter(run=runs["ppo"], key="eval/relevance_ratio").exists()

    # The loop closes: the PPO policy samples a new round, scored by the pipeline's reward models, into a
    # campaign whose items an annotator opens.
    out = io.StringIO()
    call_command("generate_round", "--policy-run", str(runs["ppo"].pk), "--dataset", "qa-feedback-only", "--split", "dev",
                 "--samples", "4", "--limit", "3", "--json", stdout=out)
    made = json.loads(out.getvalue())
    assert made["round"] == 1 and made["examples"] == 3 and made["responses"] == 12
    campaign = Campaign.objects.get(pk=made["campaign"])
    assert campaign.source_run_id == runs["ppo"].pk and campaign.split == "dev-round1"
    sampled = Response.objects.filter(example__dataset=campaign.dataset, example__split="dev-round1")
    assert sampled.count() == 12 and all(r.source_run_id == runs["ppo"].pk for r in sampled)
    assert all({s["model"] for s in r.reward_segments} >= {"rm_relevance", "rm_factuality"} for r in sampled if r.text)
    client = Client()
    client.force_login(annotator)
    started = client.post(reverse("annotation:campaign_start", args=[campaign.pk]))
    assert started.status_code == 302 and "/work/" in started["Location"]
    assert client.get(started["Location"]).status_code == 200


def test_a_killed_stage_fails_the_pipeline_and_resume_finishes_without_redoing_finished_stages(pipeline_env):
    process, log = _manage(pipeline_env, "run_pipeline", "holistic", "--dataset", "qa-feedback-only",
                           "--no-reuse", "--set", "sft.max_train_examples=64", "--set", "rm.max_steps=12",
                           "--set", "ppo.total_episodes=96", "--json", log_name="holistic.log")
    wait_for(pipeline_env, lambda: process.poll() is not None, timeout=120, what="run_pipeline to start the pipeline")
    assert process.returncode == 0, _output(log)
    pipeline = Pipeline.objects.get(pk=json.loads(_output(log).strip().splitlines()[-1])["pipeline"])

    def ppo_training():
        run = TrainingRun.objects.filter(pipeline=pipeline, pipeline_stage="ppo", status=RunStatus.RUNNING).first()
        return run if run is not None and run.child_pid and run.progress_step >= 1 else None

    ppo = wait_for(pipeline_env, ppo_training, timeout=300, what="the PPO stage to train")
    os.killpg(ppo.child_pid, signal.SIGKILL)  # the trainer dies (out of memory, a node lost, ...)

    def settled():
        pipeline.refresh_from_db()
        return pipeline.is_finished

    wait_for(pipeline_env, settled, timeout=300, what="the pipeline to fail")
    assert pipeline.status == RunStatus.FAILED
    assert "stage ppo" in pipeline.error and "killed by SIGKILL" in pipeline.error
    finished = {stage: entry["run"] for stage, entry in pipeline.stages.items() if stage != "ppo"}
    assert set(finished) == {"sft", "rm"}

    from training.pipeline_services import pipeline_resume

    pipeline_resume(pipeline=pipeline)
    wait_for(pipeline_env, settled, timeout=300, what="the resumed pipeline to finish")
    assert pipeline.status == RunStatus.SUCCEEDED, pipeline.error
    resumed = TrainingRun.objects.get(pk=pipeline.stages["ppo"]["run"])
    assert resumed.resumed_from_id == ppo.pk and resumed.status == RunStatus.SUCCEEDED
    # The finished stages were kept: one SFT and one RM run in this pipeline, the same as before.
    assert {stage: pipeline.stages[stage]["run"] for stage in finished} == finished
    assert TrainingRun.objects.filter(pipeline=pipeline).exclude(pipeline_stage="ppo").count() == 2
