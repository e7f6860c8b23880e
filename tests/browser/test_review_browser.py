"""Review in a real browser: a reviewer builds a gold version from two disagreeing annotators; screenshots."""

import pytest

from annotation.models import Adjudication, Assignment, CampaignTask, ItemNote
from tests.annotation.annotate_data import make_campaign, make_dataset
from tests.annotation.review_data import ANNA, BOB, disagreeing_item, submit_fine_grained
from tests.browser.test_annotate_browser import wait_until
from tests.browser.conftest import PASSWORD, PHONE, log_in

pytestmark = pytest.mark.browser

EDITED = " Its lead single was \"My My My!\"."


@pytest.fixture
def team(make_user):
    anna = make_user("anna", role="annotator", password=PASSWORD)
    bob = make_user("bob", role="annotator", password=PASSWORD)
    make_user("rita", role="researcher", password=PASSWORD)
    campaign = disagreeing_item(anna, bob, examples=2)
    # A second item they agree on: the queue lists it after the disagreeing one.
    agreeing = {**ANNA, "errors": ANNA["errors"][:1]}
    submit_fine_grained(campaign, anna, agreeing)
    submit_fine_grained(campaign, bob, agreeing)
    return anna, bob, campaign


def test_a_reviewer_takes_a_span_from_each_annotator_edits_the_correction_and_saves_gold(new_page, team, screenshot):
    anna, bob, campaign = team
    page = new_page()
    log_in(page, "rita")
    page.goto(f"/annotation/campaigns/{campaign.pk}/")
    page.get_by_role("link", name="Review").first.click()
    page.wait_for_url("**/review/")
    first_row = page.locator("table.rv-queue tbody tr").first
    assert "Example 1" in first_row.inner_text()
    first_row.get_by_role("link").click()
    page.wait_for_url("**/review/fine_grained/1/")
    assert page.locator(".rv-lane").count() == 2
    assert page.locator(".rv-lane .rv-dis").count() > 0

    page.locator(f'input[name=span][value="{anna.pk}:0"]').check()  # anna's Repetitive span
    page.locator(f'input[name=span][value="{bob.pk}:1"]').check()  # bob's span on "Sivan was born in Perth, Australia."
    page.get_by_role("button", name="Use this correction").nth(1).click()  # bob's correction
    correction = page.locator("#rv-correction")
    assert correction.input_value() == BOB["corrected-prediction"]
    correction.press("End")
    correction.type(EDITED)
    screenshot(page, "review-item")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#rv-gold-summary")

    gold = Adjudication.objects.get()
    assert gold.errors == [ANNA["errors"][0], BOB["errors"][1]]
    assert gold.corrected_prediction == BOB["corrected-prediction"] + EDITED
    assert gold.adjudicated_by.username == "rita" and gold.accepted_from is None
    # The saved spans show as taken when the page comes back.
    assert page.locator(f'input[name=span][value="{anna.pk}:0"]').is_checked()
    assert not page.locator(f'input[name=span][value="{anna.pk}:1"]').is_checked()

    phone = new_page(PHONE)
    log_in(phone, "rita")
    phone.goto(f"/annotation/campaigns/{campaign.pk}/review/fine_grained/1/")
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "review-item-phone")
    screenshot(phone, "review-item-phone-gold", scroll_to="#gold-form")


def test_a_reviewer_moves_span_bounds_a_word_at_a_time_and_draws_a_span_nobody_marked(new_page, team, screenshot):
    from tests.annotation.annotate_data import offsets_of
    from tests.annotation.review_data import BORN, SOLD_SHORT, TEXT

    anna, bob, campaign = team
    page = new_page()
    log_in(page, "rita")
    page.goto(f"/annotation/campaigns/{campaign.pk}/review/fine_grained/1/")
    sold = page.locator(f'li[data-key="{bob.pk}:0"]')
    sold.get_by_role("button", name="Start one word earlier").click()  # "sold ten ..." -> "album sold ten ..."
    assert sold.locator(".rv-snippet").inner_text() == "album " + SOLD_SHORT
    assert sold.locator("input[name=span]").is_checked()  # a moved span is taken
    born = page.locator(f'input[name=span][value="{bob.pk}:1"]')
    born.focus()
    page.keyboard.press("x")  # take it, then narrow it from the right by two words with the keyboard
    page.keyboard.press("Shift+L")
    page.keyboard.press("Shift+L")
    assert page.locator(f'li[data-key="{bob.pk}:1"] .rv-snippet').inner_text() == "Sivan was born in"

    # A span nobody marked: select words of response 1, pick its type, add it.
    page.evaluate("""() => {
        const words = [...document.querySelectorAll('#rv-answer .rv-aw')];
        const at = words.findIndex((w) => w.textContent === 'second');
        const range = document.createRange();
        range.setStart(words[at].firstChild, 2);  // part of a word counts as the whole word
        range.setEnd(words[at + 2].firstChild, 3);
        const selection = getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
    }""")
    page.locator("#rv-new-type").select_option(index=0)
    chosen = page.locator("#rv-new-type").input_value()
    page.get_by_role("button", name="Add span").click()
    own = page.locator('li[data-key="own:0"]')
    assert own.locator(".rv-snippet").inner_text() == "second studio album" and "Yours" in own.inner_text()
    screenshot(page, "review-item-bounds", scroll_to="#gold-form")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#rv-gold-summary")

    drawn, album, born_start = offsets_of(TEXT, "second studio album"), offsets_of(TEXT, "album " + SOLD_SHORT), offsets_of(TEXT, BORN)[0]
    assert Adjudication.objects.get().errors == [
        {"error type": chosen, "explanation": "", "start": drawn[0], "end": drawn[1]},
        {**BOB["errors"][0], "start": album[0], "end": album[1]},
        {**BOB["errors"][1], "end": born_start + len("Sivan was born in")},
    ]
    assert page.locator('li[data-key="own:0"] input[name=span]').is_checked()  # back as the reviewer's own


def test_the_agreement_page_and_the_queue_look_finished(new_page, team, screenshot):
    _anna, _bob, campaign = team
    page = new_page()
    log_in(page, "rita")
    page.goto(f"/annotation/campaigns/{campaign.pk}/agreement/")
    assert page.locator("#ag-items").inner_text() == "2"
    assert page.locator(".ag-person").count() == 2
    screenshot(page, "agreement")
    page.goto(f"/annotation/campaigns/{campaign.pk}/review/")
    screenshot(page, "review-queue")
    page.goto(f"/annotation/campaigns/{campaign.pk}/")
    screenshot(page, "campaign-team")
    phone = new_page(PHONE)
    log_in(phone, "rita")
    phone.goto(f"/annotation/campaigns/{campaign.pk}/agreement/")
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "agreement-phone")


def test_an_annotator_reads_the_guidelines_and_flags_an_item(new_page, make_user, screenshot):

    anna = make_user("anna", role="annotator", password=PASSWORD)
    make_campaign(make_dataset(examples=2), [anna])
    page = new_page()
    log_in(page, "anna")
    page.goto("/annotation/work/")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/annotation/work/*/")
    page.keyboard.press("g")
    assert page.locator("#guidelines-panel .guidelines-body").is_visible()
    screenshot(page, "annotate-guidelines")
    page.keyboard.press("Escape")
    assert not page.locator("#guidelines-panel .guidelines-body").is_visible()
    # Time on the item: the page counts seconds in use and reports them when it is left.
    item_url = page.url
    page.mouse.move(200, 300)
    page.wait_for_function("() => Number(document.getElementById('team-bar').dataset.unsent) >= 2")
    page.goto("/annotation/work/")
    held = Assignment.objects.get(annotator=anna)
    wait_until(lambda: Assignment.objects.get(pk=held.pk).active_seconds >= 2)
    page.goto(item_url)
    page.locator("#flag-panel summary").click()
    page.locator("#flag-comment").fill("The passages are about another album.")
    page.get_by_role("button", name="Flag and move on").click()
    page.wait_for_url(lambda url: "/work/1/" not in url)
    assert ItemNote.objects.get().comment == "The passages are about another album."
    phone = new_page(PHONE)
    log_in(phone, "anna")
    phone.goto(page.url)  # the next item, where the flag moved anna on
    phone.locator("#guidelines-panel summary").click()
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "annotate-guidelines-phone")


def test_a_reviewer_settles_the_pairs_two_annotators_answered_differently(new_page, make_user, screenshot):
    anna = make_user("anna", role="annotator", password=PASSWORD)
    bob = make_user("bob", role="annotator", password=PASSWORD)
    make_user("rita", role="researcher", password=PASSWORD)
    campaign = disagreeing_item(anna, bob, task=CampaignTask.COMPARISON)
    page = new_page()
    log_in(page, "rita")
    page.goto(f"/annotation/campaigns/{campaign.pk}/review/comparison/1/")
    assert page.locator(".rv-dis-row").count() == 2
    screenshot(page, "review-comparison")
    # Pair 1 vs 3: anna said 1, bob said 3; the reviewer sides with bob.
    page.locator(".rv-dis-row").first.get_by_label("3 better").check()
    page.get_by_role("button", name="Save gold version").click()
    page.wait_for_selector("#rv-gold-summary")
    assert Adjudication.objects.get().preference[1] == 2
    phone = new_page(PHONE)
    log_in(phone, "rita")
    phone.goto(f"/annotation/campaigns/{campaign.pk}/review/comparison/1/")
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "review-comparison-phone", scroll_to="#gold-form")
