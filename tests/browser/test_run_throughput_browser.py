"""The run page's throughput card in a real browser, on a desktop and on a phone: no CSP violation, bars drawn."""

import pytest
from django.urls import reverse

from tests.browser.conftest import DESKTOP, PASSWORD, PHONE, log_in

pytestmark = pytest.mark.browser


def _ppo_run():
    from django.core.files.uploadedfile import SimpleUploadedFile

    from training import services, supervisor

    upload = SimpleUploadedFile("train.json", b'[{"text": "Him. Not her.", "feedback_tags": ["O", "NF-ERR"]}]')
    run = services.run_create(kind="rm_relevance", preset="tiny", uploads={"train": upload})
    run = supervisor.run_claim(run_id=run.pk, host="gpu-node-3")
    supervisor.run_record_events(run=run, events=[
        {"event": "start", "total_steps": 2500, "wandb_dir": "", "wandb_url": ""},
        {"event": "progress", "step": 120, "total": 2500},
        {"event": "metrics", "step": 120, "metrics": {
            "train/pg_loss": -0.012, "reward/mean": 0.41,
            "perf/step_seconds": 21.4, "perf/generation_seconds": 11.2, "perf/scoring_seconds": 3.1,
            "perf/training_seconds": 7.0, "perf/tokens_per_second": 12480.0, "perf/samples_per_second": 1.5,
            "perf/tflops_per_device": 118.0, "perf/mfu": 0.119, "perf/peak_memory_gb": 63.2}},
    ])
    return run


@pytest.mark.parametrize("viewport, name", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_the_throughput_card_draws_its_split_bars_without_overflowing(new_page, make_user, screenshot, viewport, name):
    make_user("rita", role="researcher", password=PASSWORD)
    run = _ppo_run()
    page = new_page(viewport)
    log_in(page, "rita")
    page.goto(reverse("training:run_detail", args=[run.pk]))
    card = page.locator("#throughput")
    card.wait_for()
    assert card.get_by_text("12,480").count() == 1 and card.get_by_text("12 %").count() == 1
    bars = card.locator("progress")
    assert bars.count() == 3
    widths = [bars.nth(i).evaluate("el => el.getBoundingClientRect().width") for i in range(3)]
    assert all(w > 40 for w in widths), widths
    box = card.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 1  # fits the screen
    screenshot(page, f"run-throughput-{name}", scroll_to="#throughput")
