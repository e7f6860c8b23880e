"""The dataset pages in a real browser: the upload form's checks, the example list, an example's annotations."""

import pytest

from tests.browser.conftest import PASSWORD, log_in

pytestmark = pytest.mark.browser


def test_the_upload_form_checks_names_in_the_browser_without_console_errors(new_page, make_user, screenshot):
    make_user("rita", role="researcher", password=PASSWORD)
    page = new_page()
    console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}") if message.type in ("error", "warning") else None)
    log_in(page, "rita")
    page.goto("/annotation/datasets/upload/")
    page.get_by_label("Dataset").wait_for()
    # Chromium logs an invalid `pattern` as an error and then skips the check.
    assert not [line for line in console if "pattern" in line], console
    for label in ("Dataset", "Split"):
        field = page.get_by_label(label, exact=True)
        field.fill("not a name!")
        assert field.evaluate("input => input.validity.patternMismatch") is True
        field.fill("dev-2_b")
        assert field.evaluate("input => input.validity.patternMismatch") is False
    page.get_by_label("Dataset", exact=True).fill("bad name")
    page.get_by_role("button", name="Import").click()
    assert page.get_by_label("Dataset", exact=True).evaluate("input => input.matches(':invalid')")
    assert page.url.endswith("/annotation/datasets/upload/")  # the browser kept the form from being sent
    screenshot(page, "dataset_upload_invalid_name")
