"""New rounds and run comparison in a real browser: the round's campaign and run card, the compare page, on a phone too."""

from __future__ import annotations

import json
import math

import pytest

from tests.browser.conftest import PASSWORD, PHONE, log_in
from tests.browser.researcher_data import import_shared_slice, make_run

pytestmark = pytest.mark.browser


def _curve(steps: int, start: float, end: float, wobble: float) -> list[float]:
    return [start + (end - start) * (1 - math.exp(-3 * s / steps)) + wobble * math.sin(s) for s in range(1, steps + 1)]


def _ppo_run(kind: str, name: str, user, dataset_name: str, *, relevance_end: float, rouge_end: float):
    steps = 16
    fine = kind.endswith("grained")
    events = [{"event": "progress", "step": steps, "total": steps}]
    for step, (reward, kl, rel, fac) in enumerate(zip(_curve(steps, -0.4, 0.35 if kind.endswith("grained") else 0.2, 0.04),
                                                      _curve(steps, 0.0, 0.8 if fine else 0.6, 0.05), _curve(steps, 0.2, relevance_end, 0.03),
                                                      _curve(steps, 0.3, 0.56 if fine else 0.47, 0.02)), start=1):
        events.append({"event": "metrics", "step": step, "metrics": {
            "reward/mean": reward, "reward/kl": abs(kl), "reward/relevance_ratio": rel, "reward/factuality_ratio": fac,
            "train/policy_loss": (0.3 if fine else 0.25) / step, "train/value_loss": (1.2 if fine else 0.9) / step}})
        if step % 4 == 0:
            events.append({"event": "metrics", "step": step, "metrics": {"eval/rouge_lsum": 0.38 + (rouge_end - 0.38) * step / steps}})
    run = make_run(kind, name=name, user=user, dataset_name=dataset_name, events=events, total=steps, status="succeeded")
    run.summary = {"best_mean_reward": max(e["metrics"]["reward/mean"] for e in events if e["event"] == "metrics" and "reward/mean" in e["metrics"]),
                   "best_step": 12}
    run.save(update_fields=["summary"])
    return run


@pytest.fixture
def compared(make_user, qa_feedback_dir, tmp_path):
    researcher = make_user("rita", role="researcher", password=PASSWORD)
    dataset_name = import_shared_slice(qa_feedback_dir, tmp_path / "data")
    holistic = _ppo_run("ppo_holistic", "holistic-ppo-same-budget", researcher, dataset_name, relevance_end=0.55, rouge_end=0.41)
    fine = _ppo_run("ppo_fine_grained", "fine-grained-ppo-same-budget", researcher, dataset_name, relevance_end=0.72, rouge_end=0.44)
    return holistic, fine


def _log_in(page, username: str) -> None:
    """Log in; the session's first page may wait on a cold browser and a busy machine, so it gets a generous limit."""
    page.goto("/accounts/login/", timeout=120_000)
    log_in(page, username)


def _wait_for_compare_charts(page, runs: int) -> None:
    page.locator("#compare-charts .chart-box canvas").first.wait_for()
    page.wait_for_function(f"""() => [...document.querySelectorAll('#compare-charts canvas')].some(canvas => {{
        const chart = window.Chart && window.Chart.getChart(canvas);
        return chart && chart.data.datasets.length === {runs};
    }})""")


def test_the_compare_page_overlays_the_runs_and_fits_a_phone(new_page, compared, screenshot):
    holistic, fine = compared
    page = new_page()
    _log_in(page, "rita")
    page.goto("/training/runs/")
    page.get_by_role("link", name="Compare runs").click()
    page.get_by_label(f"#{holistic.pk} holistic-ppo-same-budget", exact=False).check()
    page.get_by_label(f"#{fine.pk} fine-grained-ppo-same-budget", exact=False).check()
    page.get_by_role("button", name="Compare").click()
    _wait_for_compare_charts(page, 2)
    rouge = page.locator("#compare-charts .chart-box[data-key='eval/rouge_lsum'] canvas")
    labels = rouge.evaluate("canvas => window.Chart.getChart(canvas).data.datasets.map(d => d.label)")
    # One line per run, in the picker's order (newest first).
    assert labels == [f"#{fine.pk} fine-grained-ppo-same-budget", f"#{holistic.pk} holistic-ppo-same-budget"]
    assert page.locator(".compare-table tr[data-key='eval/rouge_lsum'] td.best").inner_text() == "0.44"
    screenshot(page, "run_compare")
    screenshot(page, "run_compare_metrics", scroll_to="#compare-metrics")

    phone = new_page(PHONE)
    log_in(phone, "rita")
    phone.goto(f"/training/runs/compare/?runs={holistic.pk},{fine.pk}")
    _wait_for_compare_charts(phone, 2)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "run_compare_phone")
    screenshot(phone, "run_compare_phone_metrics", scroll_to="#compare-metrics")


def _round_answers(examples) -> list[list[dict]]:
    """Four answers per question as a policy would sample them (the file's predictions), with per-segment rewards
    placed by the same code as a real round (character spans stand in for token spans)."""
    from annotation.qa.text import load_splitter
    from training.ml.rounds import RewardWeights, segment_rewards
    from training.ml.rewards import segment_generation

    nlp, _ = load_splitter("sentencizer")
    out = []
    for number, example in enumerate(examples):
        answers = []
        for k, response in enumerate(example.responses.order_by("number")):
            text = response.text
            split = segment_generation(nlp, text, [(i, i + 1) for i in range(len(text))])
            relevance = ["NF-ERR" if (i + k + number) % 4 == 3 else "O" for i in range(len(split.subsentences))]
            factuality = ["F-ERR" if (i + k) % 3 == 2 else "O" for i in range(len(split.sentences))]
            answers.append({"text": text.strip(), "reward_segments": segment_rewards(
                text=text, split=split, relevance=relevance, factuality=factuality, completeness=0.4 - 0.3 * k,
                preference=None, weights=RewardWeights())})
        out.append(answers)
    return out


@pytest.fixture
def round_campaign(make_user, qa_feedback_dir, tmp_path, settings):
    from annotation.models import Dataset
    from training.models import Artifact, RoundJob
    from training.rounds import round_store, source_examples

    researcher = make_user("rita", role="researcher", password=PASSWORD)
    make_user("anna", role="annotator", password=PASSWORD)
    dataset_name = import_shared_slice(qa_feedback_dir, tmp_path / "data")
    policy = _ppo_run("ppo_fine_grained", "fine-grained-ppo", researcher, dataset_name, relevance_end=0.7, rouge_end=0.44)
    (settings.MODEL_ROOT / policy.output_dir / "model").mkdir(parents=True)
    Artifact.objects.create(run=policy, kind=Artifact.Kind.MODEL, name="model", path=f"{policy.output_dir}/model")
    dataset = Dataset.objects.get(name=dataset_name)
    job = RoundJob.objects.create(run=policy, dataset=dataset, source_split="dev", samples=4, limit=5, created_by=researcher,
                                  status=RoundJob.Status.RUNNING, progress_done=20, progress_total=20)
    examples = source_examples(dataset=dataset, split="dev", limit=5)
    job = round_store(job=job, examples=examples, answers=_round_answers(examples))
    # A second round still sampling, to show the live progress bar beside the finished one.
    RoundJob.objects.create(run=policy, dataset=dataset, source_split="dev-round1", samples=4, limit=5, created_by=researcher,
                            status=RoundJob.Status.RUNNING, progress_done=7, progress_total=20)
    return policy, job


def test_the_new_round_shows_on_the_run_page_and_its_campaign_opens_for_an_annotator(new_page, round_campaign, screenshot):
    policy, job = round_campaign
    page = new_page()
    _log_in(page, "rita")
    page.goto(f"/training/runs/{policy.pk}/")
    card = page.locator("#new-round")
    card.get_by_text("7 / 20 answers").wait_for()
    screenshot(page, "run_new_round", scroll_to="#new-round")
    # The sampling round can be cancelled in place, once confirmed; the worker stops after its batch in hand.
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Cancel round").click()
    card.get_by_role("button", name="Stopping…").wait_for()
    from training.models import RoundJob

    assert RoundJob.objects.get(status=RoundJob.Status.RUNNING).cancel_requested
    screenshot(page, "run_new_round_cancelling", scroll_to="#new-round")
    card.get_by_role("link", name=f"Open campaign “{job.campaign.name}”").click()
    page.locator("#campaign-source-run").wait_for()
    assert f"run #{policy.pk}" in page.locator("#campaign-source-run").inner_text()
    screenshot(page, "round_campaign")

    phone = new_page(PHONE)
    log_in(phone, "rita")
    phone.goto(f"/training/runs/{policy.pk}/")
    phone.locator("#new-round").scroll_into_view_if_needed()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "run_new_round_phone", scroll_to="#new-round")

    annotator = new_page()
    log_in(annotator, "anna")
    annotator.goto("/")  # the annotator's home lists their campaigns, each with a Start button
    card = annotator.locator("section.campaign-card", has=annotator.locator(f"#campaign-card-{job.campaign_id}"))
    card.get_by_role("button", name="Start").click()
    annotator.locator("#fg-response-text").wait_for()
    shown = annotator.locator("#fg-response-text").inner_text()
    from annotation.models import Response

    first_answers = set(Response.objects.filter(example__split=job.split, number=1).values_list("text", flat=True))
    assert shown.strip() in first_answers
    assert json.loads(annotator.locator("#fg-response-data").inner_text()) in first_answers
    screenshot(annotator, "round_campaign_annotate")
