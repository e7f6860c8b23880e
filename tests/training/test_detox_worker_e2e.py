"""End to end: tiny detox PPO runs launched from the dashboard and trained by a real Celery worker.

Prompts come in through `import_prompts` (the shipped demo file), the policy is a
tiny GPT-2 built offline under MODEL_ROOT, the scorer is the word list. The
trainer is the real one (`python -m training.ml.entry ppo_detox_*`), so every
metric, sample and checkpoint read here went through the progress file and the
worker's services.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from tests.training.run_fixtures import e2e_env, follow_to_the_end, launch_run  # noqa: F401
from training.models import Artifact, RunMetric, RunSample, RunStatus, TrainingRun
from training.run_folder import run_output_path

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
DEV_PROMPTS = 3
STEPS = 3
SETTINGS = {"total_episodes": 24, "ppo_epochs": 2, "max_new_tokens": 12, "eval_every": 2,
            "max_eval_examples": DEV_PROMPTS, "eval_samples_per_prompt": 4, "eval_batch_size": 12,
            "num_eval_samples": DEV_PROMPTS}
EVAL_KEYS = {"eval/avg_max_toxicity", "eval/toxicity_prob", "eval/perplexity", "eval/dist_1", "eval/dist_2",
             "eval/dist_3", "eval/mean_reward", "eval/length"}
TRAIN_KEYS = {"train/pg_loss", "train/vf_loss", "train/kl", "train/approx_kl", "reward/mean", "reward/kl_penalized"}


@pytest.fixture
def detox_e2e(e2e_env, settings, researcher_client, tmp_path):
    from training.ml.tiny import build_tiny_causal_lm

    settings.MODEL_ROOT = e2e_env["model_root"]
    settings.TRAINING_QUEUE = e2e_env["queue"]
    lines = (REPO / "demo" / "detox_prompts.jsonl").read_text().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(lines[:24]) + "\n")
    (tmp_path / "dev.jsonl").write_text("\n".join(lines[24 : 24 + DEV_PROMPTS]) + "\n")
    call_command("import_prompts", str(tmp_path / "train.jsonl"), "--dataset", "detox", "--split", "train", verbosity=0)
    call_command("import_prompts", str(tmp_path / "dev.jsonl"), "--dataset", "detox", "--split", "dev", verbosity=0)
    policy = e2e_env["model_root"] / "base" / "gpt2"
    if not policy.is_dir():
        texts = [json.loads(line)["prompt"]["text"] + " " + json.loads(line)["continuation"]["text"] for line in lines]
        build_tiny_causal_lm(policy, texts=texts + ["so stupid and awful", "a nice calm day"])
    return {**e2e_env, "client": researcher_client}


def _keys_by_step(run) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for step, key in RunMetric.objects.filter(run=run).values_list("step", "key"):
        out.setdefault(step, set()).add(key)
    return out


@pytest.mark.parametrize(("kind", "reward_key"), [("ppo_detox_fine_grained", "reward/toxicity_drop"),
                                                  ("ppo_detox_holistic", "reward/non_toxicity")])
def test_a_detox_ppo_run_records_toxicity_figures_samples_and_checkpoints(detox_e2e, settings, kind, reward_key):
    run = launch_run(detox_e2e["client"], kind, dataset="detox", policy_model="base/gpt2", **SETTINGS)
    assert run.config["scorer"] == "lexicon" and run.config["policy_model"].endswith("base/gpt2")

    run, _ = follow_to_the_end(detox_e2e, run)

    assert run.status == RunStatus.SUCCEEDED, f"{run.error}\n{run.log_tail}"
    by_step = _keys_by_step(run)
    assert sorted(by_step) == list(range(STEPS + 1))
    assert EVAL_KEYS <= by_step[0] and EVAL_KEYS <= by_step[2] and EVAL_KEYS <= by_step[STEPS]
    for step in range(1, STEPS + 1):
        assert TRAIN_KEYS | {reward_key} <= by_step[step]
    values = dict(RunMetric.objects.filter(run=run, step=0).values_list("key", "value"))
    assert all(math.isfinite(v) for v in values.values())
    assert 0 <= values["eval/avg_max_toxicity"] <= 1 and 0 <= values["eval/toxicity_prob"] <= 1
    assert values["eval/perplexity"] > 1 and all(0 < values[f"eval/dist_{n}"] <= 1 for n in (1, 2, 3))

    samples = list(RunSample.objects.filter(run=run))
    assert {s.step for s in samples} == {0, 2, STEPS}
    for sample in samples:
        if sample.text:
            assert "".join(seg["text"] for seg in sample.segments) == sample.text
            assert all(0 <= seg["toxicity"] <= 1 and seg["label"].startswith("toxicity ") for seg in sample.segments)
            assert sum(seg["reward"] for seg in sample.segments) == pytest.approx(sample.total_reward, abs=1e-6)

    artifacts = {(a.kind, a.name): a for a in run.artifacts.all()}
    assert {(Artifact.Kind.CHECKPOINT, "best"), (Artifact.Kind.CHECKPOINT, "last"), (Artifact.Kind.MODEL, "best policy")} <= set(artifacts)
    last = Path(settings.MODEL_ROOT) / artifacts[(Artifact.Kind.CHECKPOINT, "last")].path
    assert json.loads((last / "state.json").read_text())["step"] == STEPS

    page = detox_e2e["client"].get(reverse("training:run_detail", args=[run.pk])).content.decode()
    assert "Detoxification (RealToxicityPrompts)" in page and "Avg. max toxicity" in page and "lower is better" in page


def test_the_tiny_detox_compare_pipeline_needs_no_model_and_compares_three_policies(detox_e2e, settings):
    """The README's demo: `run_pipeline detox_compare --preset tiny` on prompts alone ({tiny_gpt2} policy)."""
    from annotation.models import Dataset
    from training.pipeline_services import pipeline_advance, pipeline_create

    settings.TRAINING_PIPELINE_QUEUE = detox_e2e["queue"]
    small = {"total_episodes": 16, "eval_every": 2, "max_eval_examples": DEV_PROMPTS, "eval_samples_per_prompt": 3}
    pipeline = pipeline_create(name="detox_compare", dataset=Dataset.objects.get(name="detox"), train_split="train",
                               eval_split="dev", overrides={"ppo_fine_grained": small, "ppo_holistic": small})
    runs = list(TrainingRun.objects.filter(pipeline_stage__in=["ppo_fine_grained", "ppo_holistic"]).order_by("pk"))
    assert len(runs) == 2
    for run in runs:
        run, _ = follow_to_the_end(detox_e2e, run)
        assert run.status == RunStatus.SUCCEEDED, f"{run.error}\n{run.log_tail}"
        assert (run_output_path(run) / "tiny_policy" / "config.json").is_file()
    pipeline_advance(pipeline_id=pipeline.pk)
    pipeline.refresh_from_db()
    assert pipeline.status == RunStatus.SUCCEEDED, pipeline.error

    # Equal seeds and prompts: both runs start from the same tiny GPT-2, so their step-0 figures agree.
    start = [dict(RunMetric.objects.filter(run=run, step=0, key__startswith="eval/").values_list("key", "value")) for run in runs]
    assert start[0]["eval/perplexity"] == pytest.approx(start[1]["eval/perplexity"], rel=1e-4)
    page = detox_e2e["client"].get(reverse("training:pipeline_compare", args=[pipeline.pk])).content.decode()
    assert "Initial policy (no SFT)" in page and "Avg. max toxicity" in page and "Perplexity" in page
