"""The detox pipelines: registered with their task, one PPO stage each (no SFT), compared on the task's figures."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse

from tests.training.run_fixtures import fake_trainer  # noqa: F401
from training import pipelines, supervisor, task_registry
from training.ml.configs import ConfigError
from training.models import RunMetric, RunStatus, TrainingRun
from training.pipeline_services import pipeline_advance, pipeline_create

PROMPTS = "".join(f'{{"prompt": "Prompt number {i} was"}}\n' for i in range(8))


def test_the_detox_pipelines_are_registered_for_the_detox_task_without_sft():
    for name in ("detox_holistic", "detox_fine_grained", "detox_compare"):
        spec = pipelines.get(name)
        assert spec.task == "detox"
        assert all(task_registry.of_kind(stage.kind).name == "detox" and not stage.after for stage in spec.stages)
    compare = pipelines.get("detox_compare")
    assert [s.kind for s in compare.stages] == ["ppo_detox_fine_grained", "ppo_detox_holistic"]
    # The same budget for both.
    assert compare.stage("ppo_fine_grained").overrides == compare.stage("ppo_holistic").overrides
    assert compare.compare == ("ppo_fine_grained", "ppo_holistic")


@pytest.fixture
def prompts(db):
    from annotation.services.prompts import prompts_import

    for split in ("train", "dev"):
        prompts_import(path_or_file=io.StringIO(PROMPTS), dataset_name="rtp", split=split)
    from annotation.models import Dataset

    return Dataset.objects.get(name="rtp")


@pytest.fixture
def sent(monkeypatch):
    from config.celery import app

    captured: list[tuple[str, list]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args=None, **kw: captured.append((name, list(args or []))))
    return captured


@pytest.mark.django_db(transaction=True)
def test_detox_compare_runs_both_variants_at_once_and_compares_them_on_toxicity(prompts, fake_trainer, sent, researcher_client):
    pipeline = pipeline_create(name="detox_compare", dataset=prompts, train_split="train", eval_split="dev")
    queued = list(TrainingRun.objects.filter(status=RunStatus.QUEUED).order_by("pk"))
    assert sorted(r.pipeline_stage for r in queued) == ["ppo_fine_grained", "ppo_holistic"]
    for run in queued:
        assert run.config["policy_model"] == "{tiny_gpt2}" and run.config["scorer"] == "lexicon"
        assert run.config["total_episodes"] == pipelines.TINY_DETOX["total_episodes"]
        supervisor.run_execute(run_id=run.pk)
        run.refresh_from_db()
        # What the detox trainer reports at step 0 (the initial policy) and at its last evaluation.
        for step, toxicity in ((0, 0.7), (5, 0.3 if run.pipeline_stage == "ppo_holistic" else 0.2)):
            RunMetric.objects.create(run=run, step=step, key="eval/avg_max_toxicity", value=toxicity)
            RunMetric.objects.create(run=run, step=step, key="eval/perplexity", value=12.5)
    pipeline_advance(pipeline_id=pipeline.pk)
    pipeline.refresh_from_db()
    assert pipeline.status == RunStatus.SUCCEEDED, pipeline.error

    page = researcher_client.get(reverse("training:pipeline_compare", args=[pipeline.pk])).content.decode()
    assert "Initial policy (no SFT)" in page and "Fine-grained detox PPO" in page and "Holistic detox PPO" in page
    assert "Avg. max toxicity" in page and "dist-1" in page and "ROUGE-Lsum" not in page


@pytest.mark.django_db
def test_a_detox_pipeline_refuses_a_qa_feedback_dataset(sent):
    from annotation.models import Dataset, Example

    dataset = Dataset.objects.create(name="qa")
    Example.objects.create(dataset=dataset, split="train", position=0, input_position=0, question="q",
                           policy_text="q", has_input_format=True)
    with pytest.raises(ConfigError, match="qa is a qa_feedback dataset; ppo_detox_holistic trains on detox data"):
        pipeline_create(name="detox_holistic", dataset=dataset, train_split="train")
