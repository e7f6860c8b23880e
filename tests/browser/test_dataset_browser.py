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
    annotator = page.get_by_label("Annotator", exact=True)
    annotator.fill("two words")
    assert annotator.evaluate("input => input.validity.patternMismatch") is True
    annotator.fill("ann.b+1@lab-x_y")  # what Django's usernames allow
    assert annotator.evaluate("input => input.validity.patternMismatch") is False
    page.get_by_label("Dataset", exact=True).fill("bad name")
    page.get_by_role("button", name="Import").click()
    assert page.get_by_label("Dataset", exact=True).evaluate("input => input.matches(':invalid')")
    assert page.url.endswith("/annotation/datasets/upload/")  # the browser kept the form from being sent
    screenshot(page, "dataset_upload_invalid_name")


def _demo_plus_many():
    """The demo dataset (12 examples with imported feedback) and 30 more questions without any."""
    from pathlib import Path

    from annotation.services.datasets import dataset_import
    from tests.annotation.annotate_data import make_example

    demo = Path(__file__).resolve().parents[2] / "demo"
    dataset_import(path_or_file=demo / "qa_feedback_demo.json", dataset_name="demo", split="dev")
    dataset_import(path_or_file=demo / "qa_feedback_demo_inputs.json", dataset_name="demo", split="dev")
    from annotation.models import Dataset

    dataset = Dataset.objects.get(name="demo")
    for position in range(12, 42):
        make_example(dataset, position, question=f"Extra question number {position + 1} about albums?")


NO_PAGE_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


def test_the_example_list_pages_searches_and_filters_in_place_and_opens_an_example(new_page, make_user, screenshot):
    from tests.browser.conftest import PHONE

    make_user("rita", role="researcher", password=PASSWORD)
    _demo_plus_many()
    page = new_page()
    log_in(page, "rita")
    page.goto("/annotation/datasets/demo/")
    count = page.locator(".examples-count")
    assert "42 examples · showing 1–25" in count.inner_text()
    screenshot(page, "dataset_examples", scroll_to="#examples-title")
    whose = page.get_by_label("Whose feedback")
    assert whose.input_value() == "latest"
    assert "import@demo" in whose.locator("option").all_inner_texts()
    screenshot(page, "dataset_splits")

    # Paging swaps the list only; the address follows, and Back goes back.
    page.evaluate("window.__same_page = true")
    page.get_by_role("link", name="Next →").click()
    page.get_by_role("link", name="Example 42", exact=True).wait_for()
    assert page.url.endswith("?page=2") and page.evaluate("window.__same_page === true")
    assert "showing 26–42" in count.inner_text()

    # Typing searches (the page stays, the address records the search).
    page.get_by_label("Question contains").fill("who the")
    page.wait_for_url(lambda url: "q=who%20the" in url or "q=who+the" in url)
    page.get_by_text("3 examples match").wait_for()
    assert page.evaluate("window.__same_page === true")
    assert [link.inner_text() for link in page.locator(".example-no a").all()] == ["Example 3", "Example 6", "Example 12"]

    page.get_by_label("Question contains").fill("")
    page.get_by_text("42 examples").wait_for()
    page.get_by_label("Fine-grained feedback").select_option("no")
    page.get_by_text("30 examples match").wait_for()
    page.get_by_label("Fine-grained feedback").select_option("")
    page.get_by_label("Error type").select_option(label="Repetitive")
    page.get_by_text("3 examples match").wait_for()
    assert [link.inner_text() for link in page.locator(".example-no a").all()] == ["Example 2", "Example 7", "Example 12"]
    assert page.get_by_label("Round").is_visible()
    screenshot(page, "dataset_examples_filtered", scroll_to="#examples-title")

    # The address restores the same list on a reload.
    page.reload()
    page.get_by_text("3 examples match").wait_for()
    assert page.get_by_label("Error type").input_value() == "Redundant"

    page.get_by_role("link", name="Example 7", exact=True).click()
    page.get_by_role("heading", name="Example 7", level=1).wait_for()
    assert page.get_by_text("Where is the Great Barrier Reef?").is_visible()
    assert page.locator(".feedback mark.err").count() >= 2
    assert page.locator("main form, main input, main textarea, main select").count() == 0  # read-only
    screenshot(page, "dataset_example_7")
    screenshot(page, "dataset_example_7_comparisons", scroll_to="#comparisons-title")
    page.get_by_role("link", name="Example 8 →").click()
    page.get_by_role("heading", name="Example 8", level=1).wait_for()

    phone = new_page(PHONE)
    log_in(phone, "rita")
    for path, name in [("/annotation/datasets/demo/", "dataset_splits_phone"), ("/annotation/datasets/demo/?error=Redundant", "dataset_examples_phone"), ("/annotation/datasets/demo/dev/examples/7/", "dataset_example_phone")]:
        phone.goto(path)
        assert phone.evaluate(NO_PAGE_SCROLL), f"{path} scrolls sideways at 390 px"
        screenshot(phone, name, scroll_to="#examples-title" if "error=" in path else None)


def test_an_upload_is_followed_on_its_job_page_until_the_worker_has_imported_it(new_page, make_user, monkeypatch):
    from pathlib import Path

    from annotation.models import DatasetJob, Example
    from annotation.services.dataset_jobs import dataset_job_run
    from annotation.tasks import run_dataset_job

    monkeypatch.setattr(run_dataset_job, "apply_async", lambda *args, **options: None)  # the worker is this test
    make_user("rita", role="researcher", password=PASSWORD)
    page = new_page()
    log_in(page, "rita")
    page.goto("/annotation/datasets/upload/")
    page.get_by_label("File").set_input_files(str(Path(__file__).resolve().parents[2] / "demo" / "qa_feedback_demo.json"))
    page.get_by_label("Dataset", exact=True).fill("demo")
    page.get_by_role("button", name="Import").click()

    status = page.locator("#job-status")
    status.get_by_text("Queued").wait_for()
    assert status.get_attribute("hx-trigger") == "every 1s"  # the page polls while the job waits and runs
    job = DatasetJob.objects.get()
    assert not Example.objects.exists()

    dataset_job_run(job_id=job.pk)
    page.get_by_text("Imported 12 examples (feedback format, 12 new) into demo/dev").wait_for(timeout=30_000)
    assert page.locator("#job-status").get_attribute("hx-trigger") is None  # and stops once it is done
    page.get_by_role("link", name="Open demo").click()
    page.get_by_text("Why is the sky blue?").wait_for()
