"""The fine-grained page in a real browser: undo and redo, Ctrl+Enter, the save status, stale tabs."""

import pytest

from annotation.models import Assignment, CampaignTask, FineGrainedFeedback
from tests.annotation.annotate_data import offsets_of
from tests.browser.test_annotate_browser import (
    TEXT,
    annotator_with_campaign,
    drag_select,
    start_first_item,
    two_tabs_one_submitted,
    wait_ready,
    wait_saved,
    wait_until,
)

pytestmark = pytest.mark.browser

TEN = "ten million copies"
PERTH = "born in Perth, Australia."
REPEATED = "It was released on 31 August 2018."


def mark(page, phrase: str, key: str, *, occurrence: int = 1) -> None:
    count = page.locator("mark.err").count()
    start, end = offsets_of(TEXT, phrase, occurrence)
    drag_select(page, start, end)
    page.keyboard.press(key)
    page.locator("mark.err").nth(count).wait_for()


def marks(page) -> list[tuple[str, str]]:
    """(number, text) of each highlight, in text order."""
    return page.eval_on_selector_all("mark.err", "ms => ms.map(m => [m.dataset.number, m.textContent])")


def stored_errors() -> list[tuple[str, str]]:
    draft = Assignment.objects.get().draft
    return [(e["error type"], TEXT[e["start"] : e["end"]]) for e in draft["errors"]]


def test_ctrl_z_undoes_and_ctrl_shift_z_redoes_span_edits_through_the_saved_draft(new_page, make_user, screenshot):
    annotator_with_campaign(make_user, task=CampaignTask.FINE_GRAINED)
    page = new_page()
    start_first_item(page)
    page.get_by_text("Keyboard shortcuts").click()
    help_body = page.locator(".kbd-help-body")
    help_body.wait_for()
    help_text = " ".join(help_body.inner_text().split())
    for listed in ("Ctrl+Z undo", "Ctrl+Shift+Z redo it (Ctrl+Y too)", "Ctrl+Enter submit"):
        assert listed in help_text.replace(" + ", "+"), help_text
    screenshot(page, "fine_grained_shortcuts_help")
    page.get_by_text("Keyboard shortcuts").click()
    help_body.wait_for(state="hidden")
    assert page.locator("#fg-undo").is_disabled() and page.locator("#fg-redo").is_disabled()

    mark(page, TEN, "4")
    mark(page, PERTH, "1")
    assert marks(page) == [["1", TEN], ["2", PERTH]]

    # Delete span 1: span 2 becomes span 1. Ctrl+Z puts the span back as span 1, in the saved draft too.
    page.locator('mark.err[data-index="0"]').focus()
    page.keyboard.press("Delete")
    page.get_by_text("Span removed.").wait_for()
    assert marks(page) == [["1", PERTH]]
    page.keyboard.press("Control+z")
    page.get_by_text("Undone: span 1 (Unverifiable) is back.").wait_for()
    assert marks(page) == [["1", TEN], ["2", PERTH]]
    assert page.evaluate("document.activeElement.dataset.index") == "0"  # the keyboard stays on the span
    wait_until(lambda: stored_errors() == [("Unverifiable", TEN), ("Irrelevant", PERTH)])

    # Retype it, undo the retype, redo it with Ctrl+Shift+Z and with Ctrl+Y.
    page.keyboard.press("3")
    page.locator('mark.err.t-incoherent[data-index="0"]').wait_for()
    page.keyboard.press("Control+z")
    page.locator('mark.err.t-unverifiable[data-index="0"]').wait_for()
    page.keyboard.press("Control+Shift+z")
    page.locator('mark.err.t-incoherent[data-index="0"]').wait_for()
    page.keyboard.press("Control+z")
    page.locator('mark.err.t-unverifiable[data-index="0"]').wait_for()
    page.keyboard.press("Control+y")
    page.locator('mark.err.t-incoherent[data-index="0"]').wait_for()
    wait_until(lambda: stored_errors() == [("Incoherent", TEN), ("Irrelevant", PERTH)])

    # Undo all the way with quick presses: each waits for the answer before it.
    for _ in range(6):
        page.keyboard.press("Control+z")
    page.get_by_text("Nothing to undo.").wait_for()
    assert page.locator("mark.err").count() == 0
    wait_until(lambda: stored_errors() == [])
    assert page.locator("#fg-undo").is_disabled() and page.locator("#fg-redo").is_enabled()
    # The Redo button does the same as the keys.
    page.locator("#fg-redo").click()
    page.locator('mark.err[data-index="0"]').wait_for()
    assert marks(page) == [["1", TEN]]
    screenshot(page, "fine_grained_undo_redo", scroll_to="#step-1-title")

    # In the correction box, Ctrl+Z undoes typing there and leaves the spans alone.
    box = page.get_by_label("Corrected response")
    box.fill("Typed.")
    box.press("End")
    page.keyboard.type("!")
    page.keyboard.press("Control+z")
    assert box.input_value() == "Typed."
    assert page.locator("mark.err").count() == 1


def test_ctrl_enter_submits_with_the_same_checks_as_the_button(new_page, make_user):
    user, _dataset, _campaign = annotator_with_campaign(make_user, task=CampaignTask.FINE_GRAINED)
    page = new_page()
    start_first_item(page)
    mark(page, REPEATED, "2", occurrence=2)  # Repetitive, without the earlier text it repeats
    page.get_by_label("Corrected response").click()
    page.keyboard.press("Control+Enter")
    problem = page.locator("#submit-problems .problems")
    problem.wait_for()
    assert "give the earlier text it repeats" in problem.inner_text()
    assert not FineGrainedFeedback.objects.exists()

    page.get_by_label("Earlier text that span 1 repeats").fill(REPEATED)
    page.get_by_label("Corrected response").fill("Fixed, from the keyboard.")
    page.keyboard.press("Control+Enter")  # from inside the correction box
    page.get_by_text("Nothing is left for you").wait_for()
    stored = FineGrainedFeedback.objects.get(annotator=user)
    assert stored.corrected_prediction == "Fixed, from the keyboard."
    assert list(stored.errors.values_list("error_type", "explanation")) == [("Redundant", REPEATED)]


def test_a_refused_span_does_not_say_draft_saved(new_page, make_user):
    annotator_with_campaign(make_user, task=CampaignTask.FINE_GRAINED)
    page = new_page()
    start_first_item(page)
    mark(page, TEN, "4")
    wait_saved(page)
    saved_text = page.locator("#draft-state .save-status").inner_text()
    start, _ = offsets_of(TEXT, "sold ten")
    drag_select(page, start, start + len("sold ten"))
    page.keyboard.press("1")
    page.locator("#fg-message.is-error").wait_for()
    status = page.locator("#draft-state .save-status")
    assert status.get_attribute("data-state") == "refused"
    assert "Draft saved" not in status.inner_text() and status.inner_text() != saved_text


def test_a_tab_left_behind_says_once_that_the_item_was_submitted_elsewhere(new_page, make_user, screenshot):
    user, first, second = two_tabs_one_submitted(new_page, make_user)

    # The second tab finds out twice, from its autosave and from its submit: it says so once.
    second.get_by_label("Corrected response").fill("Written in the second tab.")
    second.locator("#draft-problems .problems").wait_for()
    second.get_by_role("button", name="Submit").click()
    # Arrow functions: a bare expression would be eval'ed in the page, which its Content-Security-Policy refuses.
    second.wait_for_function("() => document.querySelector('#fg-submit') && !document.querySelector('#fg-submit').disabled")
    second.wait_for_function("() => document.body.dataset.js === 'ready' && !document.querySelector('.htmx-request')")
    problems = second.locator(".problems")
    assert problems.count() == 1
    text = problems.inner_text()
    assert "submitted in another tab" in text and "changed" not in text
    assert second.get_by_role("link", name="Reload this item").is_visible()
    screenshot(second, "fine_grained_stale_tab", scroll_to=".submit-bar")
    assert FineGrainedFeedback.objects.get(annotator=user).corrected_prediction == "Written in the first tab."

    # Reopened, the submitted item says what it shows.
    second.get_by_role("link", name="Reload this item").click()
    wait_ready(second)
    assert second.locator("#draft-state .save-status").inner_text() == "Showing what you submitted · autosave on"
