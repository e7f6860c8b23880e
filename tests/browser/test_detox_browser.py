"""The detox task in a real browser: the run page's task figures and per-sentence toxicity, the launch form's task groups."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, PASSWORD, PHONE, log_in
from tests.browser.researcher_data import make_run
from tests.browser.test_researcher_browser import wait_for_charts, watch_failures

pytestmark = pytest.mark.browser


def detox_events() -> list[dict]:
    """Two evaluations and a step of a fine-grained detox run, and one sample cut into sentences."""
    segments = [
        {"text": "The meeting ran long. ", "reward": -0.0, "label": "toxicity 0.00", "toxicity": 0.0},
        {"text": "It was a stupid plan. ", "reward": -0.5, "label": "toxicity 0.50", "toxicity": 0.5},
        {"text": "We went home early.", "reward": 0.0, "label": "toxicity 0.50", "toxicity": 0.5},
    ]
    events = [{"event": "progress", "step": 4, "total": 8}]
    for step, toxicity in ((0, 0.71), (4, 0.44)):
        events.append({"event": "metrics", "step": step, "metrics": {
            "eval/avg_max_toxicity": toxicity, "eval/toxicity_prob": toxicity + 0.1, "eval/perplexity": 18.2 + step,
            "eval/dist_1": 0.41, "eval/dist_2": 0.78, "eval/dist_3": 0.9, "eval/mean_reward": -toxicity / 2}})
    events.append({"event": "metrics", "step": 4, "metrics": {"train/pg_loss": 0.1, "train/kl": 0.02, "reward/mean": -0.2}})
    events.append({"event": "sample", "step": 4, "prompt": "The neighbour was so stupid that",
                   "text": "".join(s["text"] for s in segments), "segments": segments, "total_reward": -0.5})
    return events


@pytest.fixture
def detox_run(make_user):
    user = make_user("rita", role="researcher", password=PASSWORD)
    return make_run("ppo_detox_fine_grained", name="detox demo", user=user, events=detox_events())


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_detox_run_page_leads_with_toxicity_and_shows_it_per_sentence(new_page, detox_run, viewport, screenshot):
    page = new_page(viewport)
    failures = watch_failures(page)
    log_in(page, "rita")
    page.goto(f"/training/runs/{detox_run.pk}/")
    wait_for_charts(page)

    figures = page.locator("#task-figures")
    assert figures.locator("h2").inner_text().startswith("Detoxification (RealToxicityPrompts)")
    assert figures.locator(".headline-tile").first.inner_text().splitlines()[0].startswith("Avg. max toxicity")
    assert figures.locator('[data-key="eval/avg_max_toxicity"] .metric-value').inner_text() == "0.44"
    assert page.locator("#samples .seg-tox").all_inner_texts() == ["tox 0.00", "tox 0.50", "tox 0.50"]
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    name = "phone" if viewport is PHONE else "desktop"
    screenshot(page, f"detox_run_{name}")
    screenshot(page, f"detox_run_samples_{name}", scroll_to="#samples")
    assert not failures, "\n".join(failures)


def test_the_launch_form_offers_kinds_by_task_and_says_what_the_task_is(new_page, make_user, screenshot):
    make_user("rita", role="researcher", password=PASSWORD)
    page = new_page(PHONE)
    log_in(page, "rita")
    page.goto("/training/runs/new/")
    page.select_option("#id_kind", "ppo_detox_holistic")
    # The settings card (task note included) is swapped in by htmx for the chosen kind.
    expect(page.locator("#task-note")).to_contain_text("Detoxification (RealToxicityPrompts)")
    expect(page.locator("#task-note")).to_contain_text("import_prompts")
    assert page.locator('#id_kind optgroup[label="Detoxification (RealToxicityPrompts)"] option').count() == 2
    assert page.locator('input[name="cfg-scorer"], select[name="cfg-scorer"]').count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "detox_launch_phone", scroll_to="#config-fields")
