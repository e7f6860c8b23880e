"""Every main page under the Content-Security-Policy in a real browser: no violation on load, poll or swap.

The `new_page` fixture fails a test on any violation the browser reports;
this test walks the pages an annotator and a researcher open, including the
htmx swaps of an autosave and the charts of a live run.
"""

import pytest
from django.urls import reverse

from annotation.models import CampaignTask
from tests.annotation.annotate_data import make_campaign, make_dataset
from tests.browser.conftest import PASSWORD, log_in

pytestmark = pytest.mark.browser


def _live_run():
    from django.core.files.uploadedfile import SimpleUploadedFile

    from training import services, supervisor

    upload = SimpleUploadedFile("train.json", b'[{"text": "Him. Not her.", "feedback_tags": ["O", "NF-ERR"]}]')
    run = services.run_create(kind="rm_relevance", preset="tiny", uploads={"train": upload})
    run = supervisor.run_claim(run_id=run.pk, host="node-a")
    supervisor.run_record_events(run=run, events=[
        {"event": "start", "total_steps": 10, "wandb_dir": "", "wandb_url": ""},
        {"event": "progress", "step": 4, "total": 10},
        {"event": "metrics", "step": 2, "metrics": {"train/loss": 0.9, "eval/f1": 0.3}},
        {"event": "metrics", "step": 4, "metrics": {"train/loss": 0.5, "eval/f1": 0.4}},
        {"event": "sample", "step": 4, "prompt": "question: who?", "text": "Him. Not her.",
         "segments": [{"text": "Him.", "reward": 0.3, "label": "O"}, {"text": " Not her.", "reward": -0.6, "label": "NF-ERR"}],
         "total_reward": -0.3},
    ])
    return run


def test_the_main_pages_raise_no_policy_violation(new_page, make_user, live_server):
    rita = make_user("rita", role="researcher", password=PASSWORD)
    anna = make_user("anna", role="annotator", password=PASSWORD)
    campaign = make_campaign(make_dataset("bloom", examples=2), [anna, rita], task=CampaignTask.BOTH)
    run = _live_run()

    page = new_page()
    response = page.goto("/accounts/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    log_in(page, "anna")
    page.goto("/annotation/work/")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/annotation/work/*/")
    page.locator("body[data-js=ready]").wait_for(state="attached")
    page.get_by_label("Corrected response").fill("A better answer.")  # autosave: an htmx swap
    page.locator("#draft-state .save-status[data-state=saved]").wait_for()
    page.get_by_role("button", name="Submit").click()
    page.get_by_role("heading", name="Compare").first.wait_for()
    page.keyboard.press("a")  # answer a pair: the status swap redraws the progress bar
    page.locator(".cmp-status .progress > span.pct-17").wait_for(state="attached")

    researcher = new_page()
    log_in(researcher, "rita")
    for url in (
        "/",
        reverse("annotation:dataset_list"),
        reverse("annotation:dataset_detail", args=["bloom"]),
        reverse("annotation:campaign_list"),
        reverse("annotation:campaign_detail", args=[campaign.pk]),
        reverse("annotation:rm_data"),
        reverse("training:run_list"),
        reverse("training:run_launch"),
    ):
        researcher.goto(url)
        researcher.wait_for_load_state("networkidle")
    researcher.goto(reverse("training:run_detail", args=[run.pk]))
    researcher.locator("#charts canvas").first.wait_for()  # Chart.js drew
    assert researcher.locator(".seg.seg-neg.shade-10").count() == 1
    researcher.wait_for_timeout(2500)  # one htmx poll of the live region
    researcher.locator(".progress > span.pct-40").first.wait_for(state="attached")
    width = researcher.locator(".progress > span.pct-40").first.evaluate("el => el.getBoundingClientRect().width")
    assert width > 0  # the class, not an inline style, gives the bar its width
