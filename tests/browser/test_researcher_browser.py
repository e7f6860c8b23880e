"""The researcher's pages in a real browser: every page on a phone, run pages, charts, errors."""

from urllib.parse import urlparse

import pytest

from tests.browser.conftest import DESKTOP, PASSWORD, PHONE, log_in
from tests.browser.researcher_data import seed_researcher_pages

pytestmark = pytest.mark.browser

# Every page a researcher reaches from the navigation, with the data that makes it wide.
def researcher_pages(data) -> list[tuple[str, str]]:
    return [
        ("home", "/"),
        ("my_work", "/annotation/work/"),
        ("datasets", "/annotation/datasets/"),
        ("dataset_detail", f"/annotation/datasets/{data['dataset']}/"),
        ("dataset_example", f"/annotation/datasets/{data['dataset']}/dev/examples/1/"),
        ("dataset_upload", "/annotation/datasets/upload/"),
        ("campaigns", "/annotation/campaigns/"),
        ("campaign_detail", f"/annotation/campaigns/{data['campaign'].pk}/"),
        ("campaign_create", "/annotation/campaigns/new/"),
        ("rm_files", "/annotation/rm-data/"),
        ("runs", "/training/runs/"),
        ("run_launch", "/training/runs/new/"),
        ("run_launch_ppo", "/training/runs/new/?kind=ppo_fine_grained"),
        ("run_sft", f"/training/runs/{data['sft'].pk}/"),
        ("run_ppo", f"/training/runs/{data['ppo'].pk}/"),
    ]


@pytest.fixture
def seeded(make_user, qa_feedback_dir, tmp_path):
    researcher = make_user("rita", role="researcher", password=PASSWORD)
    annotators = [make_user(name, role="annotator", password=PASSWORD) for name in ("anna", "bob")]
    return seed_researcher_pages(qa_feedback_dir, tmp_path / "data", researcher=researcher, annotators=annotators)


def watch_failures(page) -> list[str]:
    """Responses of 400 and above (a missing favicon, a missing script) and console errors, as they happen."""
    failures: list[str] = []
    page.on("response", lambda response: failures.append(f"{response.status} {response.url}") if response.status >= 400 else None)
    page.on("console", lambda message: failures.append(f"console {message.type}: {message.text}") if message.type == "error" else None)
    return failures


def save_phone_screens(page, folder, name: str, *, most: int = 6) -> None:
    """The page as a phone shows it, one window-sized PNG per screenful from the top (<name>-1.png, ...)."""
    for old in folder.glob(f"{name}-*.png"):
        old.unlink()  # a page that got shorter leaves no stale screens behind
    height = page.evaluate("document.documentElement.scrollHeight")
    for index, top in enumerate(range(0, height, PHONE["height"])[:most], start=1):
        clip = {"x": 0, "y": top, "width": PHONE["width"], "height": min(PHONE["height"], height - top)}
        page.screenshot(path=str(folder / f"{name}-{index}.png"), full_page=True, clip=clip)


def wait_for_charts(page) -> None:
    """A run page's charts have drawn the points they were sent."""
    page.locator("#charts .chart-box canvas").first.wait_for()
    page.wait_for_function("""() => [...document.querySelectorAll('#charts canvas')].every(canvas => {
        const chart = window.Chart && window.Chart.getChart(canvas);
        return chart && chart.data.datasets[0].data.length > 0;
    })""")


def test_every_researcher_page_fits_a_phone_without_page_scroll(new_page, seeded, test_output_dir):
    page = new_page(PHONE)
    failures = watch_failures(page)
    log_in(page, "rita")
    folder = test_output_dir / "screenshots" / "phone"
    folder.mkdir(parents=True, exist_ok=True)
    too_wide = {}
    for name, url in researcher_pages(seeded):
        page.goto(url)
        page.locator("main h1").first.wait_for()
        if name.startswith("run_") and name != "run_launch" and name != "run_launch_ppo":
            wait_for_charts(page)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide[name] = width
        save_phone_screens(page, folder, name)
    assert not too_wide, f"pages wider than the phone: {too_wide}"
    assert not failures, "\n".join(failures)


def test_the_phone_navigation_takes_one_row_and_opens_as_a_menu(new_page, seeded, screenshot):
    page = new_page(PHONE)
    log_in(page, "rita")
    page.goto("/training/runs/")
    topbar = page.locator(".topbar")
    assert topbar.bounding_box()["height"] <= 64
    nav = page.get_by_role("navigation", name="Main")
    assert not nav.is_visible()
    menu = page.get_by_role("button", name="Menu")
    assert menu.get_attribute("aria-expanded") == "false"
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true"
    nav.get_by_role("link", name="Datasets").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "phone_menu_open")
    page.keyboard.press("Escape")
    nav.wait_for(state="hidden")
    assert menu.get_attribute("aria-expanded") == "false"
    menu.click()
    nav.get_by_role("link", name="Datasets").click()
    page.wait_for_url("**/annotation/datasets/")
    # On a desktop the links stay in the bar and there is no menu button.
    desktop = new_page(DESKTOP)
    log_in(desktop, "rita")
    assert desktop.get_by_role("navigation", name="Main").get_by_role("link", name="Training").is_visible()
    assert not desktop.get_by_role("button", name="Menu").is_visible()
    assert desktop.locator(".topbar").bounding_box()["height"] <= 64


# The labels each stacked cell shows, read from the page: the cells' data-label and what their ::before draws.
STACKED_CELLS = """table => ({
  heads: [...table.querySelectorAll('thead th')].slice(1).map(th => th.textContent.trim()),
  cells: [...table.querySelectorAll('tbody tr:first-child td')].slice(1).map(td => [td.dataset.label || '', getComputedStyle(td, '::before').content]),
  wide: table.parentElement.scrollWidth > table.parentElement.clientWidth,
})"""


def test_list_tables_show_one_block_per_row_on_a_phone_each_value_named_by_its_column(new_page, seeded, screenshot):
    from annotation.services.campaigns import assignment_next
    from django.contrib.auth import get_user_model

    from annotation.models import AssignmentStatus, DatasetJob

    for name in ("anna", "bob"):  # anna holds an item; bob's is submitted, so the review queue lists it
        held = assignment_next(campaign=seeded["campaign"], annotator=get_user_model().objects.get(username=name))
    held.status = AssignmentStatus.SUBMITTED
    held.save()
    DatasetJob.objects.create(kind=DatasetJob.Kind.EXPORT, dataset_name=seeded["dataset"], split="dev", fmt="json",
                              filename="qa-feedback-dev-dev.json", status=DatasetJob.Status.SUCCEEDED, examples=12)
    campaign = f"/annotation/campaigns/{seeded['campaign'].pk}/"  # its annotators
    lists = {"rita": ["/annotation/datasets/", f"/annotation/datasets/{seeded['dataset']}/", "/annotation/datasets/upload/",
                      "/annotation/campaigns/", campaign,
                      f"{campaign}review/", "/annotation/rm-data/", "/training/runs/"],
             "anna": ["/annotation/work/"]}
    for username, urls in lists.items():
        page = new_page(PHONE)
        log_in(page, username)
        for url in urls:
            page.goto(url)
            page.locator("table.stack-on-phone").first.wait_for()
            for table in page.locator("table.stack-on-phone").all():
                assert not table.locator("thead").is_visible()
                shown = table.evaluate(STACKED_CELLS)
                # Every value but the row's name (the block's head) carries its column's name, in the columns' order.
                assert [label for label, _ in shown["cells"]] == shown["heads"] and shown["heads"], (url, shown)
                assert all(content == f'"{label} "' for label, content in shown["cells"]), (url, shown)
                assert not shown["wide"], f"{url}: a table still scrolls sideways"
            screenshot(page, "phone_list" + url.rstrip("/").replace("/", "_"), scroll_to="table.stack-on-phone >> nth=-1")
    desktop = new_page(DESKTOP)
    log_in(desktop, "rita")
    desktop.goto("/training/runs/")
    table = desktop.locator("table.stack-on-phone")
    assert table.locator("thead").is_visible()
    assert all(content == "none" for _, content in table.evaluate(STACKED_CELLS)["cells"])  # columns, unlabelled


COLOURED_PIXELS = """() => [...document.querySelectorAll('#charts canvas')].map(canvas => {
  const chart = window.Chart.getChart(canvas);
  const colour = chart.data.datasets[0].borderColor;
  const [r, g, b] = [1, 3, 5].map(i => parseInt(colour.slice(i, i + 2), 16));
  const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let count = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 200 && Math.abs(data[i] - r) < 12 && Math.abs(data[i + 1] - g) < 12 && Math.abs(data[i + 2] - b) < 12) count++;
  }
  return {key: chart.data.datasets[0].label, points: chart.data.datasets[0].data.length, pixels: count};
})"""


def test_charts_with_one_point_draw_the_point(new_page, seeded, screenshot):
    page = new_page()
    log_in(page, "rita")
    page.goto(f"/training/runs/{seeded['ppo'].pk}/")
    wait_for_charts(page)
    charts = page.evaluate(COLOURED_PIXELS)
    assert len(charts) == 8 and all(chart["points"] == 1 for chart in charts)
    # A line needs two points; with one, only a drawn dot puts the series' colour on the canvas.
    assert all(chart["pixels"] >= 12 for chart in charts), charts
    screenshot(page, "run_ppo_step_1_charts", scroll_to="#charts")

    page.goto(f"/training/runs/{seeded['sft'].pk}/")
    wait_for_charts(page)
    charts = {chart["key"]: chart for chart in page.evaluate(COLOURED_PIXELS)}
    assert charts["eval/rouge_lsum"]["points"] == 1 and charts["eval/rouge_lsum"]["pixels"] >= 12, charts
    assert charts["train/loss"]["pixels"] >= 12
    screenshot(page, "run_sft_eval_charts", scroll_to=".chart-group[data-group=eval]")


BROKEN_NAMES = """() => {
  const broken = [];
  for (const code of document.querySelectorAll('.setting-name')) {
    const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const range = document.createRange();
      range.selectNodeContents(node);
      const tops = new Set([...range.getClientRects()].map(rect => Math.round(rect.top)));
      if (tops.size > 1) broken.push(code.textContent);
    }
  }
  return broken;
}"""


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_setting_names_never_break_inside_a_word(new_page, seeded, viewport, screenshot):
    page = new_page(viewport)
    log_in(page, "rita")
    for url in ("/training/runs/new/?kind=ppo_fine_grained", "/training/runs/new/?kind=sft", f"/training/runs/{seeded['ppo'].pk}/"):
        page.goto(url)
        assert page.locator(".setting-name").count() > 10
        assert page.evaluate(BROKEN_NAMES) == [], url
    page.goto("/training/runs/new/?kind=rm_relevance&preset=tiny")
    help_text = page.locator("tr[data-setting=base_model] .setting-help")
    assert "`" not in help_text.inner_text() and help_text.locator("code", has_text="{tiny_encoder}").is_visible()
    screenshot(page, f"launch_settings_{'phone' if viewport is PHONE else 'desktop'}", scroll_to="tr[data-setting=base_model]")


def test_cancel_asks_then_shows_the_cancel_as_a_state_and_offers_a_restart(new_page, seeded, screenshot, monkeypatch):
    from config.celery import app as celery_app
    from training import supervisor
    from training.models import RunStatus, TrainingRun

    # The restart queues a new run; nothing is sent to a broker here.
    sent = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, *args, **kwargs: sent.append(kwargs))

    run = seeded["sft"]
    page = new_page()
    log_in(page, "rita")
    page.goto(f"/training/runs/{run.pk}/")
    questions: list[str] = []

    def answer(accept: bool):
        def handle(dialog):
            questions.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()
        return handle

    page.once("dialog", answer(False))
    page.get_by_role("button", name="Cancel run").click()
    assert questions == [f"Stop run #{run.pk}? The trainer stops within a few seconds; what it has not saved in a checkpoint is lost."]
    run.refresh_from_db()
    assert not run.cancel_requested and page.get_by_role("button", name="Cancel run").is_enabled()

    page.once("dialog", answer(True))
    page.get_by_role("button", name="Cancel run").click()
    page.get_by_text("Cancel requested: the worker stops the trainer within a few seconds.").wait_for()
    assert page.locator(".messages").count() == 0
    # The worker stops the trainer; the page's poll picks the new state up by itself.
    supervisor.run_finish(run=TrainingRun.objects.get(pk=run.pk), status=RunStatus.CANCELLED, error="Cancelled by a user.")
    page.locator("#run-note.run-note-cancelled", has_text="Cancelled by a user.").wait_for(timeout=20_000)
    assert page.get_by_text("Cancel requested").count() == 0
    assert page.locator(".message-error, [role=alert]").count() == 0
    restart = page.get_by_role("button", name="Restart from the first step")
    assert restart.is_visible() and page.get_by_role("button", name="Resume").count() == 0
    screenshot(page, "run_cancelled_without_checkpoint")

    restart.click()
    page.wait_for_url(lambda url: f"/training/runs/{run.pk}/" not in url)
    again = TrainingRun.objects.get(resumed_from=run)
    page.get_by_text(f"Run #{again.pk} restarts run #{run.pk} from the first step").wait_for()
    page.get_by_text("Queued: it starts when a training worker is free.").wait_for()
    assert [kwargs["args"] for kwargs in sent] == [[again.pk]]
    screenshot(page, "run_restarted")


def test_error_pages_are_styled_and_lead_back(new_page, seeded, screenshot):
    page = new_page()
    log_in(page, "rita")
    response = page.goto("/training/runs/987654/")
    assert response.status == 404
    page.get_by_role("heading", name="Not found").wait_for()
    assert page.get_by_role("navigation", name="Main").get_by_role("link", name="Training").is_visible()
    screenshot(page, "error_404")
    page.get_by_role("link", name="Back to the start page").click()
    page.wait_for_url(lambda url: urlparse(url).path == "/")
    page.get_by_role("heading", name="Welcome, rita").wait_for()

    annotator = new_page(PHONE)
    log_in(annotator, "anna")
    response = annotator.goto("/training/runs/")
    assert response.status == 403
    annotator.get_by_role("heading", name="Not allowed").wait_for()
    annotator.get_by_text("This page is for researchers.").wait_for()
    assert annotator.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(annotator, "error_403_phone")
    annotator.get_by_role("button", name="Menu").click()
    annotator.get_by_role("navigation", name="Main").get_by_role("link", name="My work").click()
    annotator.wait_for_url("**/annotation/work/")
