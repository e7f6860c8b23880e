"""Page furniture in a real browser: the docked submit bar, card headings, the header."""

import pytest

from annotation.models import CampaignTask
from tests.browser.conftest import PASSWORD, PHONE, log_in
from tests.browser.test_annotate_browser import annotator_with_campaign, start_first_item, wait_saved
from tests.browser.test_annotate_editing import PERTH, TEN, mark

pytestmark = pytest.mark.browser

# Every focusable control of the work column, in tab order, must end up above the docked submit bar.
COVERED_BY_BAR = """() => {
  const bar = document.querySelector('.submit-bar').getBoundingClientRect();
  const el = document.activeElement;
  if (!el || el.closest('.submit-bar')) return null;
  const r = el.getBoundingClientRect();
  return {name: el.id || el.textContent.trim().slice(0, 40), bottom: r.bottom, barTop: bar.top};
}"""


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_the_submit_bar_is_docked_and_never_hides_what_the_keyboard_reaches(new_page, make_user, screenshot, viewport):
    annotator_with_campaign(make_user, task=CampaignTask.FINE_GRAINED)
    page = new_page(viewport)
    start_first_item(page)
    mark(page, TEN, "4")
    mark(page, PERTH, "1")
    mark(page, "Bloom is the second", "3")
    page.get_by_text("Missing Major Auxiliary", exact=True).click()
    page.locator('.sent[data-p="1"][data-s="3"]').click()
    page.get_by_role("button", name="Add missing information").click()
    page.locator("#fg-missing .missing-item").wait_for()
    wait_saved(page)

    page.evaluate("window.scrollTo(0, 0)")
    page.locator("#step-1-title").scroll_into_view_if_needed()
    geometry = page.evaluate(
        "() => { const r = document.querySelector('.submit-bar').getBoundingClientRect(); return {bottom: r.bottom, height: innerHeight}; }"
    )
    assert abs(geometry["bottom"] - geometry["height"]) <= 1, geometry  # nothing shows below the bar
    name = "phone" if viewport else "desktop"
    screenshot(page, f"fine_grained_submit_bar_{name}", scroll_to="#step-1-title")

    page.locator("#fg-response-text").focus()
    checked = 0
    for _ in range(60):
        page.keyboard.press("Tab")
        state = page.evaluate(COVERED_BY_BAR)
        if state is None:
            if page.evaluate("!!document.activeElement.closest('.submit-bar')"):
                break
            continue
        assert state["bottom"] <= state["barTop"] + 0.5, f"{state['name']!r} is under the submit bar: {state}"
        checked += 1
    assert checked >= 8


# The gap between a card's top edge and its first heading, beyond the card's own padding.
HEADING_GAPS = """() => Array.from(document.querySelectorAll('.card')).flatMap(card => {
  const first = card.firstElementChild;
  if (!first) return [];
  const heading = first.matches('h1, h2, h3, h4') ? first : first.firstElementChild && first.firstElementChild.matches('h1, h2, h3, h4') ? first.firstElementChild : null;
  if (!heading || !heading.getClientRects().length) return [];
  const style = getComputedStyle(card);
  const inner = card.getBoundingClientRect().top + parseFloat(style.borderTopWidth) + parseFloat(style.paddingTop);
  return [{heading: heading.textContent.trim().slice(0, 40), gap: heading.getBoundingClientRect().top - inner}];
})"""


def test_cards_have_no_gap_above_their_titles(new_page, make_user, screenshot):
    from tests.annotation.annotate_data import make_dataset

    make_user("rita", role="researcher", password=PASSWORD)
    annotator_with_campaign(make_user, task=CampaignTask.BOTH)
    make_dataset("second", examples=2)
    annotator = new_page()
    log_in(annotator, "anna")
    researcher = new_page()
    log_in(researcher, "rita")
    checked = []
    for page, path, name in [
        (annotator, "/", "home_annotator"),
        (annotator, "/annotation/work/", "my_work"),
        (researcher, "/", "home_researcher"),
        (researcher, "/annotation/datasets/bloom/dev/examples/1/", "dataset_example"),
    ]:
        page.goto(path)
        gaps = page.evaluate(HEADING_GAPS)
        assert gaps, f"no card headings on {path}"
        for row in gaps:
            assert abs(row["gap"]) <= 1, f"{path}: {row['heading']!r} sits {row['gap']:.1f}px below the card's padding"
        checked += gaps
        if name:
            screenshot(page, f"cards_{name}")
    assert len(checked) >= 5
