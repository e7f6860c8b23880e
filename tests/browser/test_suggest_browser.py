"""Reward-model suggestions in a real browser: outlined, accepted with a key, trimmed, dismissed; only accepted spans export."""

import json

import pytest
from django.core.management import call_command

from annotation.models import CampaignTask, SuggestionEvent
from annotation.qa import suggestions as sq
from annotation.qa.vocab import ERROR_TYPES
from annotation.services.suggestions import campaign_suggest_settings_save
from tests.annotation.annotate_data import RESPONSES, offsets_of
from tests.annotation.suggest_data import add_suggestion, suggester_run
from tests.browser.conftest import PHONE, log_in
from tests.browser.test_annotate_browser import annotator_with_campaign, drag_select, wait_ready, wait_saved

pytestmark = pytest.mark.browser

IRRELEVANT, REDUNDANT, INCOHERENT, UNVERIFIABLE, WRONG = ERROR_TYPES
TEXT = RESPONSES[1]
FIRST = "Bloom is the second studio album by Troye Sivan."
REPEATED = "It was released on 31 August 2018."
SOLD = "The album sold ten million copies in its first week."
BORN = "Sivan was born in Perth, Australia."


def _suggested_campaign(make_user, *, task=CampaignTask.BOTH):
    user, dataset, campaign = annotator_with_campaign(make_user, task=task)
    runs = {"relevance": suggester_run("relevance").pk, "factuality": suggester_run("factuality").pk}
    campaign_suggest_settings_save(campaign=campaign, runs=runs, no_suggestion_share=0.0, order="uncertain", order_seed=0)
    response = dataset.examples.get().responses.get(number=1)
    add_suggestion(campaign, response, sq.FACTUALITY, FIRST, p=0.2)
    add_suggestion(campaign, response, sq.RELEVANCE, REPEATED, occurrence=2, p=0.71)
    add_suggestion(campaign, response, sq.FACTUALITY, SOLD, p=0.83)
    add_suggestion(campaign, response, sq.FACTUALITY, BORN, p=0.62)
    # Per-segment rewards, as the scoring stores them (R2 on sentences, R1 on sub-sentences).
    segments = []
    for phrase, occurrence, reward, label, model in (
        (FIRST, 1, 0.5, "O", "R2 factuality"), (REPEATED, 1, 0.5, "O", "R2 factuality"), (REPEATED, 2, 0.5, "O", "R2 factuality"),
        (SOLD, 1, -0.5, "F-ERR", "R2 factuality"), (BORN, 1, -0.5, "F-ERR", "R2 factuality"),
        (FIRST, 1, 0.3, "O", "R1 relevance"), (REPEATED, 1, 0.3, "O", "R1 relevance"), (REPEATED, 2, -0.3, "NF-ERR", "R1 relevance"),
        (SOLD, 1, 0.3, "O", "R1 relevance"), (BORN, 1, 0.3, "O", "R1 relevance"),
    ):
        start, end = offsets_of(TEXT, phrase, occurrence)
        segments.append({"start": start, "end": end, "reward": reward, "label": label, "model": model})
    response.reward_segments = segments
    response.save()
    return user, dataset, campaign


def _focused_id(page) -> str:
    return page.locator("#fg-suggestions .sug-item.is-focused").get_attribute("data-sug-id")


def test_an_annotator_accepts_trims_and_dismisses_suggestions_and_only_accepted_spans_export(new_page, make_user, screenshot, tmp_path):
    _user, dataset, campaign = _suggested_campaign(make_user)
    ids = {s.start: s.pk for s in campaign.suggestions.all()}
    page = new_page()
    log_in(page, "anna")
    page.get_by_role("button", name="Start").click()
    page.get_by_role("heading", name="Fine-grained feedback").wait_for()
    wait_ready(page)

    # Outlined, not filled; the `O` segment is not offered.
    assert page.locator("#fg-suggestions .sug-item").count() == 3
    outlined = page.locator(f'#fg-response-text .sug[data-sug="{ids[offsets_of(TEXT, SOLD)[0]]}"]').first
    style = outlined.evaluate("e => { const s = getComputedStyle(e); return [s.borderTopStyle, s.backgroundColor]; }")
    assert style == ["dashed", "rgba(0, 0, 0, 0)"]
    assert page.locator('#fg-response-text [data-tag="R2 83%"]').count() == 1
    screenshot(page, "suggestions_fine_grained", scroll_to="#step-1-title")

    # n focuses the first suggestion (text order); 3 accepts it whole as Incoherent.
    page.keyboard.press("n")
    assert _focused_id(page) == str(ids[offsets_of(TEXT, REPEATED, 2)[0]])
    page.keyboard.press("3")
    page.locator('mark.err[data-index="0"]').wait_for()
    assert page.locator('mark.err[data-index="0"]').inner_text() == REPEATED
    # The focus moved on to the next open suggestion; select some of its words and press 4: trimmed to them.
    page.locator(f'#fg-suggestions .sug-item.is-focused[data-sug-id="{ids[offsets_of(TEXT, SOLD)[0]]}"]').wait_for()
    start, end = offsets_of(TEXT, "ten million copies")
    drag_select(page, start + 1, end - 1)
    page.keyboard.press("4")
    page.locator('mark.err[data-index="1"]').wait_for()
    assert page.locator('mark.err[data-index="1"]').inner_text() == "ten million copies"
    # x dismisses the last one.
    page.locator(f'#fg-suggestions .sug-item.is-focused[data-sug-id="{ids[offsets_of(TEXT, BORN)[0]]}"]').wait_for()
    page.keyboard.press("x")
    page.get_by_text("No open suggestions on this response.").wait_for()
    assert page.locator("#fg-response-text .sug").count() == 0
    wait_saved(page)
    screenshot(page, "suggestions_answered", scroll_to="#step-1-title")
    screenshot(page, "segment_rewards_fine_grained", scroll_to=".reward-rows")

    page.get_by_role("button", name="Submit").click()
    page.get_by_role("heading", name="Compare four responses").wait_for()
    wait_ready(page)
    for key in "abaaae":
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    page.get_by_text("Nothing is left for you").wait_for()

    out = tmp_path / "export.json"
    call_command("export_qa_feedback", dataset=dataset.name, split="dev", out=str(out), verbosity=0)
    [record] = json.loads(out.read_text())
    repeated = offsets_of(TEXT, REPEATED, 2)
    assert record["feedback"]["errors"] == [
        {"error type": INCOHERENT, "explanation": "", "start": repeated[0], "end": repeated[1]},
        {"error type": UNVERIFIABLE, "explanation": "", "start": start, "end": end},
    ]
    assert list(SuggestionEvent.objects.order_by("pk").values_list("action", flat=True)) == [sq.ACCEPT, sq.TRIM, sq.DISMISS]


def test_suggestions_and_segment_rewards_fit_a_phone(new_page, make_user, screenshot):
    _suggested_campaign(make_user, task=CampaignTask.FINE_GRAINED)
    page = new_page(PHONE)
    log_in(page, "anna")
    page.goto("/annotation/work/")
    page.get_by_role("button", name="Start").click()
    page.get_by_role("heading", name="Fine-grained feedback").wait_for()
    wait_ready(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "suggestions_phone", scroll_to="#fg-response-text")
    screenshot(page, "suggestions_list_phone", scroll_to="#fg-suggestions")
    screenshot(page, "segment_rewards_phone", scroll_to=".reward-rows")
    # Without colour: every rewarded or penalised piece carries its sign and value as text.
    tags = page.locator(".reward-rows .rw-tag").all_inner_texts()
    assert tags and all(t.startswith(("▲+", "▼-")) for t in tags)


def test_a_researcher_sets_the_order_and_reads_the_bias_check(new_page, make_user, screenshot):
    from tests.browser.conftest import PASSWORD

    _user, _dataset, campaign = _suggested_campaign(make_user)
    make_user("rita", role="researcher", password=PASSWORD)
    page = new_page()
    log_in(page, "rita")
    page.goto(f"/annotation/campaigns/{campaign.pk}/")
    page.get_by_text("Queue order in use:").wait_for()
    assert "Least certain reward models first" in page.locator(".suggest-order").inner_text()
    page.get_by_text("Suggesters, control share and queue order").click()
    page.get_by_label("Queue order").select_option("random")
    page.get_by_label("Seed").fill("4")
    page.get_by_role("button", name="Save settings").click()
    page.get_by_text("Suggestion and queue settings saved.").wait_for()
    assert "Random, seed 4" in page.locator(".suggest-order").inner_text()
    screenshot(page, "suggest_campaign_panel", scroll_to="#suggest-panel")
