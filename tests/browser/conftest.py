"""Browser tests: Playwright drives Debian's chromium against pytest-django's live server.

Chromium comes from the distribution (`apt-get install chromium`), never from
`playwright install`; the tests are skipped with a reason when it is absent.

Pages run under the site's Content-Security-Policy, which refuses eval: give
`page.wait_for_function` an arrow function ("() => ..."), never a bare
expression, which Playwright would eval inside the page.
"""

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("GRANARY_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "pw-for-browser-1"
CSP_REPORTER = """document.addEventListener('securitypolicyviolation', (e) =>
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber));"""


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"chromium not found at {CHROMIUM}; install it with `apt-get install chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, live_server, transactional_db):
    """Open pages on the live server; each call is a fresh browser context (its own cookies).

    A JavaScript error or a Content-Security-Policy violation on any page fails the test.
    """
    contexts = []
    errors: list[str] = []
    violations: list[str] = []

    def _on_console(page, message) -> None:
        if "Content Security Policy" in message.text or message.text.startswith("CSP violation"):
            violations.append(f"{page.url}: {message.text}")

    def _open(viewport: dict | None = None):
        context = browser.new_context(viewport=viewport or DESKTOP, base_url=live_server.url)
        context.set_default_timeout(10_000)
        # Init scripts run outside the page's policy; report each violation on the console.
        context.add_init_script(CSP_REPORTER)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: _on_console(page, message))
        return page

    yield _open
    for context in contexts:
        context.close()
    assert not errors, "JavaScript errors:\n" + "\n".join(errors)
    assert not violations, "Content-Security-Policy violations:\n" + "\n".join(violations)


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.fixture
def screenshot(test_output_dir):
    """Save what the window shows under <test output>/screenshots/<name>.png.

    From the top of the page, or with `scroll_to` (a selector) scrolled into
    view. Window-sized on purpose: a full-page capture draws the sticky
    panels where no annotator ever sees them.
    """
    folder = test_output_dir / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def _shoot(page, name: str, *, scroll_to: str | None = None) -> Path:
        if scroll_to:
            page.locator(scroll_to).evaluate("element => element.scrollIntoView({block: 'start'})")
        else:
            page.evaluate("window.scrollTo(0, 0)")
        path = folder / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    return _shoot


def log_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login" not in url)
