"""The pipeline pages in a browser: New pipeline (prefill by URL, the eval = train warning), the stage graph
(live, reused stages said), the side-by-side evaluation, on a desktop and on a phone; screenshots saved."""

from __future__ import annotations

import pytest

from tests.browser.conftest import PASSWORD, PHONE, log_in
from tests.browser.researcher_data import import_shared_slice, make_run, ppo_events, sft_events

pytestmark = pytest.mark.browser


def _eval_events(step: int, *, rouge: float, relevance: float, factuality: float, completeness: float, length: float,
                 texts: list[tuple[str, float]]) -> list[dict]:
    events = [{"event": "progress", "step": step, "total": 8},
              {"event": "metrics", "step": step, "metrics": {
                  "eval/rouge_lsum": rouge, "eval/relevance_ratio": relevance, "eval/factuality_ratio": factuality,
                  "eval/completeness_reward": completeness, "eval/length": length, "eval/mean_reward": relevance - 0.5}}]
    for text, reward in texts:
        segments = [{"text": part + ".", "reward": reward if i else 0.3, "label": "O"}
                    for i, part in enumerate(p for p in text.split(".") if p.strip())]
        events.append({"event": "sample", "step": step,
                       "prompt": "question: When was the album Bloom by Troye Sivan released? context: wikipage: Bloom text: ...",
                       "text": "".join(s["text"] for s in segments), "segments": segments, "total_reward": reward})
    return events


SFT_ANSWER = "Bloom is the second album by Troye Sivan. It was released in 2018 by EMI. It was released in 2018."
FINE_ANSWER = "Bloom is the second studio album by Troye Sivan. It was released on 31 August 2018 through EMI Australia and Capitol Records."
HOLISTIC_ANSWER = "Bloom by Troye Sivan was released on 31 August 2018. It features Ariana Grande and Gordi."


@pytest.fixture
def seeded(make_user, qa_feedback_dir, tmp_path):
    """A finished compare pipeline (one stage reused from an earlier run) and a fine-grained one half way."""
    from training.models import Pipeline, RunStatus, TrainingRun

    researcher = make_user("rita", role="researcher", password=PASSWORD)
    dataset_name = import_shared_slice(qa_feedback_dir, tmp_path)
    from annotation.models import Dataset

    dataset = Dataset.objects.get(name=dataset_name)

    def stage_run(kind, stage, pipeline, *, status=RunStatus.SUCCEEDED, events=None, total=20):
        run = make_run(kind, name=f"{pipeline.label} #{pipeline.pk}: {stage}", user=researcher, dataset_name=dataset_name,
                       status=status, total=total, events=events or [{"event": "progress", "step": total if status == RunStatus.SUCCEEDED else total // 2, "total": total}])
        TrainingRun.objects.filter(pk=run.pk).update(pipeline=pipeline, pipeline_stage=stage)
        return run

    compare = Pipeline.objects.create(name="compare", dataset=dataset, train_split="train", eval_split="dev",
                                      preset="tiny", created_by=researcher, status=RunStatus.RUNNING)
    earlier = make_run("sft", name="SFT from last week", user=researcher, dataset_name=dataset_name,
                       status=RunStatus.SUCCEEDED, events=sft_events())
    stages = {"sft": {"run": earlier.pk, "reused": True}}
    for stage, kind in (("r1", "rm_relevance"), ("r2", "rm_factuality"), ("r3", "rm_completeness"), ("rm", "rm_preference")):
        stages[stage] = {"run": stage_run(kind, stage, compare).pk, "reused": False}
    baseline = dict(rouge=0.291, relevance=0.62, factuality=0.55, completeness=-0.12, length=38.0, texts=[(SFT_ANSWER, -0.4)])
    fine = stage_run("ppo_fine_grained", "ppo_fine_grained", compare, total=8, events=[
        *_eval_events(0, **baseline), *_eval_events(8, rouge=0.334, relevance=0.81, factuality=0.74, completeness=0.08,
                                                    length=31.5, texts=[(FINE_ANSWER, 0.5)])])
    holistic = stage_run("ppo_holistic", "ppo_holistic", compare, total=8, events=[
        *_eval_events(0, **baseline), *_eval_events(8, rouge=0.318, relevance=0.71, factuality=0.69, completeness=0.02,
                                                    length=29.0, texts=[(HOLISTIC_ANSWER, 0.2)])])
    stages["ppo_fine_grained"] = {"run": fine.pk, "reused": False}
    stages["ppo_holistic"] = {"run": holistic.pk, "reused": False}
    compare.stages = stages
    compare.save(update_fields=["stages"])
    from training.pipeline_services import pipeline_advance

    pipeline_advance(pipeline_id=compare.pk)

    going = Pipeline.objects.create(name="fine_grained", dataset=dataset, train_split="train", eval_split="dev",
                                    preset="tiny", created_by=researcher, status=RunStatus.RUNNING)
    going.stages = {
        "sft": {"run": stage_run("sft", "sft", going, events=sft_events()).pk, "reused": False},
        "r1": {"run": stage_run("rm_relevance", "r1", going).pk, "reused": False},
        "r2": {"run": stage_run("rm_factuality", "r2", going, status=RunStatus.RUNNING).pk, "reused": False},
        "r3": {"run": stage_run("rm_completeness", "r3", going, status=RunStatus.RUNNING, events=ppo_events()[:1]).pk, "reused": False},
    }
    going.save(update_fields=["stages"])
    return {"compare": compare, "going": going, "dataset": dataset, "earlier": earlier}


def test_pipeline_pages_show_the_graph_the_evaluation_and_a_reused_stage(new_page, seeded, screenshot):
    from training.models import RunStatus

    assert seeded["compare"].__class__.objects.get(pk=seeded["compare"].pk).status == RunStatus.SUCCEEDED
    page = new_page()
    log_in(page, "rita")
    page.goto(f"/training/pipelines/{seeded['going'].pk}/")
    graph = page.locator("#pipeline-graph")
    assert graph.locator("[data-stage=sft]").get_attribute("data-status") == "succeeded"
    assert graph.locator("[data-stage=r2]").get_attribute("data-status") == "running"
    assert "After r2, r3" in graph.locator("[data-stage=ppo]").inner_text()
    assert page.locator("#pipeline-cancel-form button").is_enabled()
    screenshot(page, "pipeline-running")

    page.goto(f"/training/pipelines/{seeded['compare'].pk}/")
    assert page.locator("#pipeline-status").inner_text() == "Succeeded"
    assert f"Reused run #{seeded['earlier'].pk}" in page.locator("[data-stage=sft]").inner_text()
    headers = page.locator("#eval-table thead th").all_inner_texts()
    # Table headings are drawn in capitals (CSS); the words are these.
    assert [h.split("\n")[0].casefold() for h in headers] == ["measure", "sft policy", "fine-grained ppo", "holistic ppo"]
    assert page.locator("#eval-table tr[data-key='eval/relevance_ratio'] td").all_inner_texts() == ["0.62", "0.81", "0.71"]
    screenshot(page, "pipeline-compare-finished")

    page.get_by_role("link", name="Compare with samples").click()
    page.wait_for_url("**/compare/")
    columns = page.locator(".compare-column")
    assert columns.count() == 3
    assert "31 August 2018 through EMI Australia" in columns.nth(1).inner_text()
    assert page.locator(".compare-column .seg-neg").count() >= 1
    screenshot(page, "pipeline-compare-view")

    phone = new_page(PHONE)
    log_in(phone, "rita")
    phone.goto(f"/training/pipelines/{seeded['compare'].pk}/")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(phone, "pipeline-phone")
    phone.goto(f"/training/pipelines/{seeded['compare'].pk}/compare/")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(phone, "pipeline-compare-phone", scroll_to="#samples")


def test_new_pipeline_form_prefills_from_the_url_warns_on_eval_equal_train_and_starts(new_page, seeded, screenshot, monkeypatch):
    from config.celery import app

    monkeypatch.setattr(app, "send_task", lambda *args, **kwargs: None)  # no worker: the runs stay queued
    page = new_page()
    log_in(page, "rita")
    dataset = seeded["dataset"]
    page.goto(f"/training/pipelines/new/?kind=holistic&dataset={dataset.pk}&train_split=train&eval_split=train")
    assert page.locator("#id_kind").input_value() == "holistic"
    assert page.locator("#id_preset").input_value() == "tiny"
    warning = page.locator("#same-splits-warning")
    assert warning.is_visible()
    screenshot(page, "pipeline-new-warning")
    page.locator("#id_eval_split").fill("dev")
    assert not warning.is_visible()
    page.locator("#id_eval_split").fill("train")
    assert warning.is_visible()
    page.locator("#id_eval_split").fill("dev")
    page.locator("#id_kind").select_option("fine_grained")
    page.locator("#pipeline-plan", has_text="R3 completeness").wait_for()  # htmx swapped the plan in
    page.locator("#id_set").fill("ppo.no_such_setting=1")
    page.get_by_role("button", name="Start pipeline").click()
    assert page.locator("#pipeline-errors").is_visible()
    form_text = page.locator("#pipeline-form").inner_text()
    assert "stage ppo" in form_text and "no_such_setting" in form_text
    # The train split holds only prompts: each reward-model stage says it needs feedback.
    assert "stage r1 (R1 relevance):" in form_text and "no examples in the feedback" in form_text
    screenshot(page, "pipeline-new-errors", scroll_to="#pipeline-form")
    page.locator("#id_train_split").fill("dev")
    page.locator("#id_eval_split").fill("")
    page.locator("#id_set").fill("ppo.total_episodes=32")
    page.get_by_role("button", name="Start pipeline").click()
    page.wait_for_url("**/training/pipelines/*/")
    assert page.locator("[data-stage=sft]").get_attribute("data-status") == "queued"
    assert "After sft, r1, r2, r3" in page.locator("[data-stage=ppo]").inner_text()
