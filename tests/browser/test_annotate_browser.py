"""The annotator's pages in a real browser: mouse selection, keyboard, autosave, double submit."""

import json
import time

import pytest
from django.core.management import call_command

from annotation.models import Assignment, CampaignTask, Comparison, FineGrainedFeedback
from annotation.qa.spans import word_spans
from annotation.qa.vocab import (
    FIRST_PREDICTION,
    MISSING_LABELS,
    MISSING_MAJOR,
    REDUNDANT,
    UNVERIFIABLE,
    WRONG_GROUNDING,
)
from tests.annotation.annotate_data import RESPONSES, make_campaign, make_dataset, offsets_of
from tests.browser.conftest import PASSWORD, PHONE, log_in

pytestmark = pytest.mark.browser

TEXT = RESPONSES[1]
REPEATED = "It was released on 31 August 2018."
WRONG = "born in Perth, Australia."
CORRECTED = (
    "Bloom is the second studio album by Troye Sivan. It was released on 31 August 2018. "
    "Sivan was born in Johannesburg, South Africa. It was preceded by five singles."
)

# Locate a character of the response on screen, counting code points like the server does.
CHAR_BOX = """(offset) => {
  const box = document.getElementById('fg-response-text');
  for (const seg of box.querySelectorAll('[data-start]')) {
    const start = Number(seg.dataset.start), end = Number(seg.dataset.end);
    if (offset >= start && offset < end) {
      const node = seg.firstChild;
      const before = Array.from(node.data).slice(0, offset - start).join('').length;
      const range = document.createRange();
      range.setStart(node, before);
      range.setEnd(node, before + Array.from(node.data)[offset - start].length);
      const r = range.getBoundingClientRect();
      return {x: r.left, y: r.top, width: r.width, height: r.height};
    }
  }
  throw new Error('offset ' + offset + ' is not in the response');
}"""


def drag_select(page, start: int, end: int) -> None:
    """Select characters [start, end) of the response by dragging the mouse, like a person would."""
    page.locator("#fg-response-text").scroll_into_view_if_needed()
    first = page.evaluate(CHAR_BOX, start)
    last = page.evaluate(CHAR_BOX, end - 1)
    page.mouse.move(first["x"] + 1, first["y"] + first["height"] / 2)
    page.mouse.down()
    page.mouse.move(last["x"] + last["width"] - 1, last["y"] + last["height"] / 2, steps=8)
    page.mouse.up()


def annotator_with_campaign(make_user, *, task: str, username: str = "anna"):
    user = make_user(username, role="annotator", password=PASSWORD)
    dataset = make_dataset("bloom", examples=1)
    campaign = make_campaign(dataset, [user], task=task)
    return user, dataset, campaign


def start_first_item(page, username: str = "anna"):
    log_in(page, username)
    page.goto("/annotation/work/")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/annotation/work/*/")
    wait_ready(page)


def wait_until(condition, timeout: float = 10.0) -> None:
    """Poll the database until `condition()` holds; what the browser sent on its way out may still be in flight."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the server to store the draft")
        time.sleep(0.1)


def wait_ready(page) -> None:
    """The page's script has run: keys and selections are handled."""
    page.locator("body[data-js=ready]").wait_for(state="attached")


def wait_saved(page) -> None:
    page.locator("#draft-state .save-status[data-state=saved]").wait_for()


def test_it_stores_spans_correction_and_missing_info_from_real_mouse_selection(
    new_page, make_user, screenshot, tmp_path
):
    user, dataset, _campaign = annotator_with_campaign(make_user, task=CampaignTask.BOTH)
    page = new_page()
    log_in(page, "anna")
    page.get_by_role("heading", name="Round 1").wait_for()  # the home page's campaign card
    screenshot(page, "home_annotator")
    page.get_by_role("button", name="Start").click()
    page.get_by_role("heading", name="Fine-grained feedback").wait_for()
    wait_ready(page)

    # Span 1, Repetitive: drag from inside "It" to inside "2018." of the second occurrence; the key 2 types it.
    rep_start, rep_end = offsets_of(TEXT, REPEATED, occurrence=2)
    drag_select(page, rep_start + 1, rep_end - 2)
    page.keyboard.press("2")
    page.locator('mark.err[data-index="0"]').wait_for()
    assert page.locator('mark.err[data-index="0"]').inner_text() == REPEATED  # snapped to whole words
    # Its explanation: select the earlier sentence and take it over with "Use selection".
    first_start, first_end = offsets_of(TEXT, REPEATED, occurrence=1)
    drag_select(page, first_start, first_end)
    page.get_by_role("button", name="Use selection").click()
    assert page.get_by_label("Earlier text that span 1 repeats").input_value() == REPEATED

    # Span 2, Inconsistent Fact, chosen with a click; then cite the sentence it contradicts.
    wrong_start, wrong_end = offsets_of(TEXT, WRONG)
    drag_select(page, wrong_start + 2, wrong_end - 1)
    page.get_by_role("button", name="5 Inconsistent Fact").click()
    page.locator('mark.err[data-index="1"]').wait_for()
    page.locator("#pick-banner").wait_for(state="visible")
    page.locator('.sent[data-p="2"][data-s="2"]').click()
    page.get_by_text("Contradicts passage 2, sentence 2").wait_for()

    # Overlapping spans are refused with a visible message.
    overlap_start, _ = offsets_of(TEXT, "2018. The album")
    drag_select(page, overlap_start, overlap_start + len("2018. The album"))
    page.keyboard.press("1")
    message = page.locator("#fg-message.is-error")
    message.wait_for()
    assert "overlaps span 1" in message.inner_text()
    assert page.locator("mark.err").count() == 2

    # Step 2: the correction.
    page.get_by_label("Corrected response").fill(CORRECTED)
    # Step 3: one missing-information entry.
    page.get_by_text(MISSING_LABELS[MISSING_MAJOR], exact=True).click()
    page.locator('.sent[data-p="1"][data-s="3"]').click()
    page.get_by_role("button", name="Add missing information").click()
    page.locator("#fg-missing .missing-item").wait_for()
    wait_saved(page)
    screenshot(page, "fine_grained_feedback")
    screenshot(page, "fine_grained_feedback_steps_2_3", scroll_to="#step-2-title")

    page.get_by_role("button", name="Submit").click()
    page.get_by_role("heading", name="Compare four responses").wait_for()
    wait_ready(page)

    # The comparison of the same example comes next; answer it without the mouse.
    for key in "abaaae":
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    page.get_by_text("Nothing is left for you").wait_for()

    out = tmp_path / "export.json"
    call_command("export_qa_feedback", dataset=dataset.name, split="dev", out=str(out), verbosity=0)
    [record] = json.loads(out.read_text())
    assert record["feedback"] == {
        "errors": [
            {"error type": REDUNDANT, "explanation": REPEATED, "start": rep_start, "end": rep_end},
            {"error type": WRONG_GROUNDING, "explanation": '{"passage_id":2,"sentence_id":[2]}', "start": wrong_start, "end": wrong_end},
        ],
        "missing-info": [{"error type": MISSING_MAJOR, "passage_id": 1, "sentence_id": [3]}],
        "corrected-prediction": CORRECTED,
    }
    assert record["preference"] == [1, 2, 1, 1, 1, 0]
    assert record[FIRST_PREDICTION] == TEXT


def test_it_drives_the_comparison_with_the_keyboard_only_and_warns_about_cycles(new_page, make_user, screenshot):
    user, dataset, _campaign = annotator_with_campaign(make_user, task=CampaignTask.COMPARISON)
    page = new_page()
    start_first_item(page)
    page.get_by_role("heading", name="Compare four responses").wait_for()
    # 1 > 2, 3 > 1, 1 = 4, 2 > 3: responses 1, 2 and 3 go in a circle.
    for key in "abea":
        page.keyboard.press(key)
    warning = page.locator(".cmp-warning")
    warning.wait_for()
    assert "1 > 2, 2 > 3, 3 > 1" in warning.inner_text()
    page.keyboard.press("b")
    page.keyboard.press("e")
    page.get_by_text("6 of 6 answered").wait_for()
    screenshot(page, "comparison")
    phone = new_page(PHONE)
    log_in(phone, "anna")
    phone.goto(page.url)
    phone.get_by_text("6 of 6 answered").wait_for()
    screenshot(phone, "comparison_narrow", scroll_to="#cmp-title")
    page.locator("#cmp-submit").focus()
    page.keyboard.press("Enter")
    page.get_by_text("Nothing is left for you").wait_for()

    stored = Comparison.objects.get(example__dataset=dataset, annotator=user)
    assert stored.preference == [1, 2, 0, 1, 2, 0]
    assert stored.version == 1


def test_it_restores_an_autosaved_draft_after_a_reload_and_a_closed_tab(new_page, make_user):
    annotator_with_campaign(make_user, task=CampaignTask.FINE_GRAINED)
    page = new_page()
    start_first_item(page)
    url = page.url
    start, end = offsets_of(TEXT, "ten million copies")
    drag_select(page, start, end)
    page.keyboard.press("4")
    page.locator('mark.err[data-index="0"]').wait_for()
    page.get_by_label("Corrected response").fill("A first correction.")
    wait_saved(page)

    page.reload()
    wait_ready(page)
    assert page.locator('mark.err[data-index="0"]').inner_text() == "ten million copies"
    assert page.get_by_label("Corrected response").input_value() == "A first correction."

    # Typing and closing the tab at once, before the autosave delay, still keeps the text.
    page.get_by_label("Corrected response").fill("A second correction, typed just before closing.")
    page.close(run_before_unload=True)
    wait_until(lambda: Assignment.objects.get().draft["corrected-prediction"].startswith("A second correction"))
    second = new_page()
    log_in(second, "anna")
    second.goto(url)
    second.get_by_label("Corrected response").wait_for()
    assert second.get_by_label("Corrected response").input_value() == "A second correction, typed just before closing."
    assert second.locator("mark.err").count() == 1


def test_it_stores_one_annotation_when_submit_is_pressed_twice_or_retried(new_page, make_user, screenshot):
    user, _dataset, _campaign = annotator_with_campaign(make_user, task=CampaignTask.FINE_GRAINED)
    page = new_page(PHONE)
    start_first_item(page)
    start, end = offsets_of(TEXT, "ten million copies")
    drag_select(page, start, end)
    page.keyboard.press("4")
    page.locator('mark.err[data-index="0"]').wait_for()
    screenshot(page, "fine_grained_feedback_narrow", scroll_to="#step-1-title")
    # Keep exactly what the page is about to send, to replay it afterwards like a retrying client.
    page.evaluate("window.__submitted = new URLSearchParams(new FormData(document.getElementById('fg-form'))).toString()")
    submit_url = page.locator("#fg-form").get_attribute("action")
    body = page.evaluate("window.__submitted")
    page.get_by_role("button", name="Submit").dblclick()
    page.get_by_text("Nothing is left for you").wait_for()
    replay = page.evaluate(
        """async ([url, body]) => {
          const token = document.querySelector('[name=csrfmiddlewaretoken]').value;
          const r = await fetch(url, {method: 'POST', body, headers: {'Content-Type': 'application/x-www-form-urlencoded', 'X-CSRFToken': token, 'HX-Request': 'true'}});
          return r.status;
        }""",
        [submit_url, body],
    )
    assert replay == 200
    stored = FineGrainedFeedback.objects.get(annotator=user)
    assert stored.version == 1
    assert list(stored.errors.values_list("error_type", "start", "end")) == [(UNVERIFIABLE, start, end)]
    assert FineGrainedFeedback.objects.count() == 1


def test_it_lets_a_researcher_set_up_a_campaign_and_watch_progress(new_page, make_user, screenshot):
    make_user("rita", role="researcher", password=PASSWORD)
    for name in ("anna", "bob"):
        make_user(name, role="annotator", password=PASSWORD)
    make_dataset("bloom", examples=3)
    page = new_page()
    log_in(page, "rita")
    page.goto("/annotation/campaigns/")
    page.get_by_role("link", name="Create the first campaign").click()
    page.get_by_label("Name").fill("Dev set, round 1")
    page.get_by_label("Dataset and split").select_option(label="bloom / dev (3 examples)")
    page.get_by_label("Fine-grained feedback").check()
    page.get_by_label("Annotators per item").fill("2")
    page.get_by_label("anna").check()
    page.get_by_label("bob").check()
    screenshot(page, "campaign_create")
    page.get_by_role("button", name="Create campaign").click()
    page.get_by_role("heading", name="Dev set, round 1").wait_for()
    assert page.get_by_role("cell", name="anna").is_visible()
    screenshot(page, "campaign_detail")
    detail_url = page.url
    page.goto("/")
    page.get_by_role("link", name="Manage campaigns").wait_for()
    screenshot(page, "home_researcher")

    annotator = new_page(PHONE)
    start_first_item(annotator, "bob")
    annotator.get_by_label("Corrected response").fill("A better answer.")
    annotator.get_by_role("button", name="Submit").click()
    annotator.get_by_text("bloom/dev · example 2").wait_for()
    screenshot(annotator, "fine_grained_feedback_narrow_next")

    page.goto(detail_url)
    assert page.locator("tr", has_text="bob").locator("td").nth(1).inner_text() == "1"
    page.goto("/annotation/campaigns/")
    assert page.get_by_text("1 / 6").is_visible()
    screenshot(page, "campaign_list")


def two_tabs_one_submitted(new_page, make_user):
    """anna opens the same item in two tabs and submits it from the first; returns (user, first, second)."""
    user, _dataset, _campaign = annotator_with_campaign(make_user, task=CampaignTask.FINE_GRAINED)
    first = new_page()
    start_first_item(first)
    second = new_page()
    log_in(second, "anna")
    second.goto(first.url)
    wait_ready(second)
    first.get_by_label("Corrected response").fill("Written in the first tab.")
    first.get_by_role("button", name="Submit").click()
    first.get_by_text("Nothing is left for you").wait_for()
    return user, first, second


def test_it_refuses_a_submit_from_a_stale_tab_with_a_visible_message(new_page, make_user):
    user, first, second = two_tabs_one_submitted(new_page, make_user)

    second.get_by_role("button", name="Submit").click()
    problem = second.locator("#draft-problems .problems")
    problem.wait_for()
    assert "submitted in another tab" in problem.inner_text()
    assert second.get_by_role("link", name="Reload this item").is_visible()
    assert FineGrainedFeedback.objects.get(annotator=user).corrected_prediction == "Written in the first tab."


def test_it_marks_retypes_and_removes_a_span_with_the_keyboard(new_page, make_user):
    user, _dataset, _campaign = annotator_with_campaign(make_user, task=CampaignTask.FINE_GRAINED)
    page = new_page()
    start_first_item(page)
    words = word_spans(TEXT)
    start, end = offsets_of(TEXT, "ten million copies")
    first_word = [w[0] for w in words].index(start)

    page.locator("#fg-response-text").focus()
    page.keyboard.press("ArrowRight")  # selects the first word
    for _ in range(first_word):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("1")
    mark = page.locator('mark.err[data-index="0"]')
    mark.wait_for()
    assert mark.inner_text() == "ten million copies"

    page.keyboard.press("Tab")  # from the response into its first highlight
    assert page.evaluate("document.activeElement.dataset.index") == "0"
    page.keyboard.press("4")
    page.get_by_text("Span 1 marked Unverifiable.").wait_for()
    page.locator("mark.err.t-unverifiable").wait_for()
    assert page.evaluate("document.activeElement.dataset.index") == "0"
    page.keyboard.press("Delete")
    page.get_by_text("Span removed.").wait_for()
    assert page.locator("mark.err").count() == 0
    assert page.evaluate("document.activeElement.id") == "fg-response-text"
