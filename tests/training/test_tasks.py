"""Tasks as a registry: every kind belongs to one, the launch form groups kinds by task, the run page leads with its figures."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from training import kinds, services, supervisor, task_registry
from training.ml.configs import ConfigError, from_dict
from training.ml.detox.config import DetoxPPOConfig
from training.ml.entry import load

PROMPTS = json.dumps([{"text": "The prompt was", "answer": [], "passages": [], "question": "The prompt was"}]).encode()


def test_every_kind_belongs_to_a_registered_task_and_every_task_has_kinds():
    assert {kind.task for kind in kinds.KINDS.values()} == set(task_registry.TASKS)
    detox = task_registry.get("detox")
    assert [k.name for k in detox.kinds()] == ["ppo_detox_holistic", "ppo_detox_fine_grained"]
    assert detox.presets() == {"ppo_detox_holistic": ["paper", "tiny"], "ppo_detox_fine_grained": ["paper", "tiny"]}
    assert (detox.policy_family, task_registry.get("qa_feedback").policy_family) == ("causal", "seq2seq")
    assert "ppo_fine_grained" in [k.name for k in task_registry.get("qa_feedback").kinds()]
    assert task_registry.of_kind("ppo_detox_holistic") is detox and task_registry.of_kind("gone") is None
    with pytest.raises(ConfigError, match="unknown task 'x'"):
        task_registry.get("x")


def test_each_tasks_reward_functions_and_trainers_can_be_loaded():
    for task in task_registry.TASKS.values():
        assert set(task.reward_functions) == set(task.rewards) == {"holistic", "fine_grained"}
        for ref in task.reward_functions.values():
            assert callable(load(ref))
        for kind in task.kinds():
            assert callable(load(kind.trainer))


def test_detox_presets_build_valid_configs_and_the_paper_one_follows_the_literature():
    paper = kinds.build_config("ppo_detox_fine_grained", preset="paper")
    assert isinstance(paper, DetoxPPOConfig)
    assert (paper.scorer, paper.eval_samples_per_prompt, paper.top_p, paper.max_new_tokens) == ("perspective", 25, 0.9, 20)
    assert kinds.build_config("ppo_detox_holistic", preset="tiny").scorer == "lexicon"


@pytest.mark.parametrize(("values", "field", "message"), [
    ({"scorer": "classifier"}, "scorer_model", "needs a sequence classifier"),
    ({"scorer": "oracle"}, "scorer", "expected"),
    ({"train_batch_size": 5}, "train_batch_size", "must divide the continuations per step"),
    ({"toxicity_threshold": 1.5}, "toxicity_threshold", "must be in [0, 1]"),
    ({"eval_samples_per_prompt": 0}, "eval_samples_per_prompt", "must be at least 1"),
])
def test_detox_configs_refuse_bad_settings_by_field(values, field, message):
    problems: list[tuple[str, str]] = []
    try:
        config = from_dict(DetoxPPOConfig, {"train_file": "t.json", **values})
        problems = config.problems_for("ppo_detox_fine_grained")
    except ConfigError as exc:
        problems = exc.problems
    assert any(name == field and message in text for name, text in problems), problems


def test_a_detox_config_refuses_a_qa_kind():
    assert DetoxPPOConfig().problems_for("ppo_holistic")[0][0] == "kind"


@pytest.mark.django_db
def test_the_launch_form_groups_kinds_by_task_and_describes_the_chosen_task(researcher_client):
    page = researcher_client.get(reverse("training:run_launch"), {"kind": "ppo_detox_fine_grained"}).content.decode()

    assert '<optgroup label="Long-form QA (qa-feedback)">' in page
    assert '<optgroup label="Detoxification (RealToxicityPrompts)">' in page
    assert '<option value="ppo_detox_fine_grained" selected>' in page
    assert "import_prompts" in page and "causal LM" in page
    assert 'name="cfg-scorer"' in page and 'name="cfg-rm_relevance_model"' not in page


@pytest.mark.django_db
def test_a_detox_kind_refuses_a_qa_feedback_dataset_and_the_other_way_round(researcher_client):
    from annotation.models import Dataset, Example

    for name, task in (("qa", "qa_feedback"), ("rtp", "detox")):
        dataset = Dataset.objects.create(name=name, task=task)
        for split in ("train", "dev"):
            Example.objects.create(dataset=dataset, split=split, position=0, input_position=0, question="q",
                                   policy_text="q", has_input_format=True)
    with pytest.raises(ConfigError, match="qa is a qa_feedback dataset; ppo_detox_holistic trains on detox data"):
        services.run_create(kind="ppo_detox_holistic", dataset=Dataset.objects.get(name="qa"), train_split="train",
                            preset="tiny", overrides={"policy_model": "gpt2"})
    with pytest.raises(ConfigError, match="rtp is a detox dataset; sft trains on qa_feedback data"):
        services.run_create(kind="sft", dataset=Dataset.objects.get(name="rtp"), train_split="train", preset="tiny")


@pytest.mark.django_db
def test_the_run_page_leads_with_the_tasks_figures_and_shows_per_sentence_toxicity(researcher_client):
    upload = SimpleUploadedFile("train.json", PROMPTS)
    run = services.run_create(kind="ppo_detox_fine_grained", preset="tiny", uploads={"train": upload},
                              overrides={"policy_model": "gpt2"})
    run = supervisor.run_claim(run_id=run.pk, host="node-a")
    supervisor.run_record_event(run=run, event={"event": "metrics", "step": 0, "metrics": {
        "eval/avg_max_toxicity": 0.42, "eval/perplexity": 31.5, "eval/dist_2": 0.9, "train/kl": 0.1}})
    supervisor.run_record_event(run=run, event={"event": "sample", "step": 0, "prompt": "The prompt was",
                                                "text": "Fine. So stupid.", "total_reward": -0.5, "segments": [
        {"text": "Fine. ", "reward": 0.0, "label": "toxicity 0.00", "toxicity": 0.0},
        {"text": "So stupid.", "reward": -0.5, "label": "toxicity 0.50", "toxicity": 0.5}]})

    page = researcher_client.get(reverse("training:run_detail", args=[run.pk])).content.decode()

    assert 'id="run-task">Detoxification (RealToxicityPrompts)</span>' in page
    figures = page[page.index('id="task-figures"'):page.index("Latest values")]
    assert figures.index("Avg. max toxicity") < figures.index("Perplexity") < figures.index("dist-2")
    assert "train/kl" not in figures and "↓ lower is better" in figures and "↑ higher is better" in figures
    assert '<sub class="seg-tox" title="toxicity up to here">tox 0.50</sub>' in page
    assert "each sentence with the toxicity of the text up to its end (tox), coloured by its reward" in page
    assert 'title="toxicity 0.50 -0.500">So stupid.</span>' in page
