"""End to end: an SFT run launched from the dashboard and trained by a real Celery worker.

The policy is the tiny T5 the `{tiny_t5}` placeholder of the tiny preset
builds in the run's folder; the worker is run_fixtures.e2e_env's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.run_fixtures import e2e_env, follow_to_the_end, import_policy_inputs, launch_run  # noqa: F401
from training.models import Artifact, RunMetric, RunSample, RunStatus

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TRAIN_PROMPTS = 16
DEV_PROMPTS = 4


@pytest.fixture
def sft_e2e(e2e_env, settings, qa_feedback_dir, researcher_client):
    settings.MODEL_ROOT = e2e_env["model_root"]
    settings.TRAINING_QUEUE = e2e_env["queue"]
    import_policy_inputs(qa_feedback_dir, e2e_env["model_root"] / "imports", train=TRAIN_PROMPTS, dev=DEV_PROMPTS)
    return {**e2e_env, "client": researcher_client}


def test_an_sft_run_records_rouge_lsum_and_keeps_the_best_model_by_it(sft_e2e, settings):
    from training.ml.policy import Policy

    # 16 prompts in batches of 8: two steps an epoch, evaluated at the end of each of three epochs.
    run = launch_run(sft_e2e["client"], "sft", dataset="qa-policy", epochs=3, log_every=1, max_output_len=16)
    assert run.config["model_name_or_path"] == "{tiny_t5}"

    run, seen_while_running = follow_to_the_end(sft_e2e, run)
    assert run.status == RunStatus.SUCCEEDED, f"{run.error}\n{run.log_tail}"
    assert seen_while_running, "no metric rows appeared while the run was running"
    assert run.progress_step == run.progress_total == 6
    assert sorted(RunMetric.objects.filter(run=run, key="train/loss").values_list("step", flat=True)) == [1, 2, 3, 4, 5, 6]
    rouge = dict(RunMetric.objects.filter(run=run, key="eval/rouge_lsum").values_list("step", "value"))
    assert sorted(rouge) == [2, 4, 6] and all(0.0 <= value <= 1.0 for value in rouge.values())
    assert RunMetric.objects.filter(run=run, key="eval/length", step=6).exists()
    assert RunSample.objects.filter(run=run, step=6).count() == 3

    best = run.artifacts.get(kind=Artifact.Kind.MODEL, name="best")
    # The saved model is the one from the evaluation with the highest ROUGE-Lsum (the first, on a tie).
    best_step = min(step for step, value in rouge.items() if value == max(rouge.values()))
    assert best.meta["step"] == best_step and best.meta["rouge_lsum"] == pytest.approx(rouge[best_step])
    folder = Path(settings.MODEL_ROOT) / best.path
    assert Policy.load(folder).is_seq2seq
    last = Path(settings.MODEL_ROOT) / run.artifacts.get(kind=Artifact.Kind.CHECKPOINT, name="last").path
    assert json.loads((last / "state.json").read_text())["step"] == 6
