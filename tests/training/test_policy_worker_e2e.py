"""End to end: fine-grained and holistic PPO runs launched from the dashboard and trained by a real Celery worker.

The worker is the one of run_fixtures.e2e_env (a separate process on a private
queue against pytest-django's database). The policy is a tiny random T5; the
reward models are tiny encoders trained for a few steps, in this process, on
the shared reference files, and saved under MODEL_ROOT/base exactly where a
researcher's reward-model runs would leave them. The trainer is the real one
(`python -m training.ml.entry ppo_*`), so every metric, sample and checkpoint
the tests read went through the progress file and the worker's services.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from django.urls import reverse

from tests.training.run_fixtures import e2e_env, follow_to_the_end, import_policy_inputs, launch_run, wait_for  # noqa: F401
from training.models import Artifact, RunMetric, RunSample, RunStatus, TrainingRun

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TRAIN_PROMPTS = 16
DEV_PROMPTS = 4
RM_STEPS = 30
# What issue 6 asks a PPO run to record, under the keys the trainer emits: reward, KL, policy and
# value loss, output length (train/ and reward/ per step); ROUGE-Lsum, relevance and factuality
# ratios, completeness reward and length (eval/ per evaluation).
TRAIN_KEYS = {"train/pg_loss", "train/vf_loss", "train/kl", "train/approx_kl", "train/response_length", "reward/mean"}
EVAL_KEYS = {"eval/rouge_lsum", "eval/mean_reward", "eval/relevance_ratio", "eval/factuality_ratio",
             "eval/completeness_reward", "eval/length"}
FINE_REWARD_KEYS = {"reward/relevance", "reward/factuality", "reward/completeness"}
HOLISTIC_REWARD_KEYS = {"reward/preference"}
# About ten seconds a run on two CPU cores, most of it the trainer's start-up.
PPO_SETTINGS = {
    "total_episodes": 24,  # 3 steps of 4 prompts x 2 samples
    "ppo_epochs": 2,
    "max_new_tokens": 16,
    "max_input_len": 96,
    "eval_every": 2,
    "max_eval_examples": DEV_PROMPTS,
    "eval_batch_size": DEV_PROMPTS,
    "num_eval_samples": DEV_PROMPTS,
}
STEPS = 3


def _rm_settings(**extra) -> dict:
    return {"max_steps": RM_STEPS, "max_length": 256, "eval_file": "", "max_train_examples": 16,
            "eval_every_steps": 0, "log_every_steps": RM_STEPS, "batch_size": 4, **extra}


@pytest.fixture(scope="module")
def policy_models(e2e_env, qa_feedback_dir):
    """MODEL_ROOT/base/{policy,r1,r2,r3,preference}: a tiny random T5 and four reward models trained briefly.

    Thirty steps is about what a random tiny encoder needs before its scores
    separate at all (see the tiny presets); the four runs take seconds.
    """
    import torch

    from training.kinds import build_config
    from training.ml.progress import NullReporter
    from training.ml.tiny import build_tiny_encoder, build_tiny_t5
    from training.ml.train_rm import run_preference_rm, run_token_rm

    base = e2e_env["model_root"] / "base"
    inputs = json.loads((qa_feedback_dir / "dev.json").read_text(encoding="utf-8"))[: TRAIN_PROMPTS + DEV_PROMPTS]
    feedback = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))[:16]
    reference = qa_feedback_dir / "reference"
    threads = torch.get_num_threads()
    # Tiny models gain nothing from threads; OpenMP spinning on two shared cores only slows them.
    torch.set_num_threads(1)
    try:
        build_tiny_t5(base / "policy", texts=[r["text"] for r in inputs] + [r["answer"][0] for r in inputs])
        encoder = build_tiny_encoder(base / "encoder", texts=[r["question"] + " " + r["prediction 1"] for r in feedback])
        trained = {
            "r1": (run_token_rm, "rm_relevance", reference / "NF-ERR_subsentence" / "dev.json"),
            "r2": (run_token_rm, "rm_factuality", reference / "F-ERR_sentence" / "dev.json"),
            "r3": (run_preference_rm, "rm_completeness", reference / "COMP_sequence" / "dev.json"),
            "preference": (run_preference_rm, "rm_preference", qa_feedback_dir / "dev_feedback.json"),
        }
        for name, (trainer, kind, train_file) in trained.items():
            config = build_config(kind, preset="tiny", overrides=_rm_settings(base_model=str(encoder), train_file=str(train_file)))
            out = e2e_env["model_root"] / "rm-runs" / name
            trainer(config, kind=kind, output_dir=out, reporter=NullReporter(), resume_from=None)
            (out / "model").rename(base / name)
    finally:
        torch.set_num_threads(threads)
    return base


@pytest.fixture
def ppo_e2e(e2e_env, policy_models, settings, qa_feedback_dir, researcher_client):
    """The worker, the models, and dataset `qa-policy` holding policy inputs: a train and a dev split."""
    settings.MODEL_ROOT = e2e_env["model_root"]
    settings.TRAINING_QUEUE = e2e_env["queue"]
    slices = import_policy_inputs(qa_feedback_dir, e2e_env["model_root"] / "imports", train=TRAIN_PROMPTS, dev=DEV_PROMPTS)
    return {**e2e_env, "client": researcher_client, "dev": slices["dev"]}


def _launch_ppo(env, kind: str, *, judge: bool = False, **settings_values) -> TrainingRun:
    """Launch from the form; `judge` gives a holistic run R1-R3 too, for its relevance/factuality/completeness figures."""
    models = {"policy_model": "base/policy"}
    if kind == "ppo_fine_grained" or judge:
        models.update(rm_relevance_model="base/r1", rm_factuality_model="base/r2", rm_completeness_model="base/r3")
    if kind == "ppo_holistic":
        models["rm_preference_model"] = "base/preference"
    return launch_run(env["client"], kind, dataset="qa-policy", **models, **{**PPO_SETTINGS, **settings_values})


def _keys_by_step(run: TrainingRun) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for step, key in RunMetric.objects.filter(run=run).values_list("step", "key"):
        out.setdefault(step, set()).add(key)
    return out


def _assert_ppo_run_recorded(run: TrainingRun, *, reward_keys: set[str], settings) -> None:
    """Metrics for every step and evaluation, samples with per-segment rewards, resumable checkpoints."""
    assert run.status == RunStatus.SUCCEEDED, f"{run.error}\n{run.log_tail}"
    assert run.progress_step == run.progress_total == STEPS

    by_step = _keys_by_step(run)
    assert sorted(by_step) == list(range(STEPS + 1))
    assert EVAL_KEYS <= by_step[0], "the SFT baseline is evaluated before the first step"
    for step in range(1, STEPS + 1):
        assert TRAIN_KEYS | reward_keys <= by_step[step], f"step {step} lacks {(TRAIN_KEYS | reward_keys) - by_step[step]}"
    assert EVAL_KEYS <= by_step[2] and EVAL_KEYS <= by_step[STEPS], "evaluated every eval_every steps and at the end"
    values = list(RunMetric.objects.filter(run=run).values_list("key", "value"))
    assert all(math.isfinite(value) for _, value in values), [kv for kv in values if not math.isfinite(kv[1])]
    assert all(0.0 <= value <= 1.0 for key, value in values if key.endswith("_ratio") or key == "eval/rouge_lsum")

    samples = list(RunSample.objects.filter(run=run))
    assert {s.step for s in samples} == {0, 2, STEPS}
    assert all(len([s for s in samples if s.step == step]) == DEV_PROMPTS for step in (0, 2, STEPS))
    with_text = [s for s in samples if s.text]
    assert with_text, "every sample generation was empty"
    for sample in with_text:
        assert "".join(segment["text"] for segment in sample.segments) == sample.text
        assert all(isinstance(segment["reward"], float) for segment in sample.segments)
        # The per-segment rewards are the sample's total reward split up (no KL term at evaluation).
        assert sum(segment["reward"] for segment in sample.segments) == pytest.approx(sample.total_reward, abs=1e-5)

    artifacts = {(a.kind, a.name): a for a in run.artifacts.all()}
    assert {(Artifact.Kind.CHECKPOINT, "best"), (Artifact.Kind.CHECKPOINT, "last"), (Artifact.Kind.MODEL, "best policy")} <= set(artifacts)
    last = Path(settings.MODEL_ROOT) / artifacts[(Artifact.Kind.CHECKPOINT, "last")].path
    assert json.loads((last / "state.json").read_text())["step"] == STEPS
    for part in ("policy/config.json", "value", "optimizer.pt", "scheduler.pt"):
        assert (last / part).exists(), f"the last checkpoint lacks {part}"
    assert (Path(settings.MODEL_ROOT) / artifacts[(Artifact.Kind.MODEL, "best policy")].path / "config.json").is_file()


def test_a_fine_grained_ppo_run_records_every_metric_sample_and_checkpoint(ppo_e2e, settings):
    run = _launch_ppo(ppo_e2e, "ppo_fine_grained")
    assert run.config["rm_factuality_model"] == str((ppo_e2e["model_root"] / "base" / "r2").resolve())

    run, seen_while_running = follow_to_the_end(ppo_e2e, run)
    _assert_ppo_run_recorded(run, reward_keys=FINE_REWARD_KEYS, settings=settings)
    assert seen_while_running, "no metric rows appeared while the run was running"
    labels = {segment["label"] for sample in RunSample.objects.filter(run=run) for segment in sample.segments}
    assert labels and labels <= {"O", "NF-ERR", "F-ERR", "NF-ERR+F-ERR"}


def test_a_holistic_ppo_run_scores_answers_with_the_preference_model_normalised_by_its_stats(ppo_e2e, settings):
    from training.ml.reward_models import PreferenceRewardModel, preference_rm_text

    run = _launch_ppo(ppo_e2e, "ppo_holistic", judge=True)
    run, _ = follow_to_the_end(ppo_e2e, run)
    _assert_ppo_run_recorded(run, reward_keys=HOLISTIC_REWARD_KEYS, settings=settings)

    model = PreferenceRewardModel.load(ppo_e2e["model_root"] / "base" / "preference")
    stats = json.loads((ppo_e2e["model_root"] / "base" / "preference" / "reward_stats.json").read_text())
    assert (model.mean, model.std) == (pytest.approx(stats["mean"]), pytest.approx(stats["std"])) and model.std > 0
    dev_by_prompt = {record["text"]: record for record in ppo_e2e["dev"]}
    for sample in RunSample.objects.filter(run=run).exclude(text=""):
        record = dev_by_prompt[sample.prompt]
        passages = [{"wikipage": p["wikipage"], "content": p["content"]} for p in record["passages"]]
        (score,) = model.score([preference_rm_text(question=record["question"], passages=passages, answer=sample.text)])
        # Scored alone rather than in the trainer's padded batch, a score differs in its last float32
        # bits; a tiny model's small std magnifies that, hence the tolerance in units of std.
        assert sample.total_reward == pytest.approx((score - stats["mean"]) / stats["std"], abs=1e-2)


def test_a_cancelled_ppo_run_resumes_from_its_saved_step_and_finishes(ppo_e2e, settings):
    # Steps of a tiny policy take a fraction of a second: enough of them that a cancel lands mid-run.
    total = 30
    run = _launch_ppo(ppo_e2e, "ppo_holistic", total_episodes=8 * total, save_every=1, eval_every=100)
    wait_for(ppo_e2e, lambda: run.artifacts.filter(kind=Artifact.Kind.CHECKPOINT, name="last").exists(),
             timeout=180, what="the first checkpoint")
    response = ppo_e2e["client"].post(reverse("training:run_cancel", args=[run.pk]))
    assert response.status_code == 302
    run, _ = follow_to_the_end(ppo_e2e, run, timeout=60)
    assert run.status == RunStatus.CANCELLED, f"{run.error}\n{run.log_tail}"
    checkpoint = Path(settings.MODEL_ROOT) / run.artifacts.get(kind=Artifact.Kind.CHECKPOINT, name="last").path
    saved_step = json.loads((checkpoint / "state.json").read_text())["step"]
    assert 1 <= saved_step < total, "cancelled too late to show a resume; make the run longer"

    response = ppo_e2e["client"].post(reverse("training:run_resume", args=[run.pk]))
    again = TrainingRun.objects.get(resumed_from=run)
    assert response["Location"] == reverse("training:run_detail", args=[again.pk])
    again, _ = follow_to_the_end(ppo_e2e, again)
    assert again.status == RunStatus.SUCCEEDED, f"{again.error}\n{again.log_tail}"
    assert f"--resume-from {checkpoint}" in (Path(settings.MODEL_ROOT) / again.output_dir / "log.txt").read_text()
    steps = sorted(set(RunMetric.objects.filter(run=again, key="train/pg_loss").values_list("step", flat=True)))
    assert steps == list(range(saved_step + 1, total + 1)), "the resumed run redid or skipped steps"
    assert not RunMetric.objects.filter(run=again, step__lte=saved_step).exists()
    assert again.progress_step == again.progress_total == total
    last = Path(settings.MODEL_ROOT) / again.artifacts.get(kind=Artifact.Kind.CHECKPOINT, name="last").path
    assert json.loads((last / "state.json").read_text())["step"] == total


def test_the_page_of_a_finished_ppo_run_shows_metric_groups_and_reward_coloured_samples(ppo_e2e):
    # A heavy completeness weight lets R3, whose normalised score changes sign from prompt to
    # prompt, decide each answer's sign, so the page has rewarded and penalised segments to colour.
    run = _launch_ppo(ppo_e2e, "ppo_fine_grained", total_episodes=8, eval_every=1, completeness_reward_scale=3.0)
    run, _ = follow_to_the_end(ppo_e2e, run)
    assert run.status == RunStatus.SUCCEEDED, f"{run.error}\n{run.log_tail}"

    series = ppo_e2e["client"].get(reverse("training:run_metrics", args=[run.pk])).json()
    assert series["finished"] is True
    assert {key.split("/", 1)[0] for key in series["series"]} >= {"train", "reward", "eval"}
    assert [step for step, _ in series["series"]["eval/rouge_lsum"]] == [0, 1]
    page = ppo_e2e["client"].get(reverse("training:run_detail", args=[run.pk])).content.decode()
    assert 'id="charts"' in page and reverse("training:run_metrics", args=[run.pk]) in page
    for key in ("eval/rouge_lsum", "eval/relevance_ratio", "eval/factuality_ratio", "train/kl", "train/pg_loss", "reward/mean"):
        assert f">{key}<" in page, f"{key} is not among the latest values"

    assert "samples-table" in page
    segments = [segment for sample in RunSample.objects.filter(run=run) for segment in sample.segments]
    positive = sum(1 for s in segments if s["reward"] > 0)
    negative = sum(1 for s in segments if s["reward"] < 0)
    assert positive and negative, f"expected rewarded and penalised segments, got {segments}"
    assert page.count('class="seg seg-pos shade-') == positive
    assert page.count('class="seg seg-neg shade-') == negative
