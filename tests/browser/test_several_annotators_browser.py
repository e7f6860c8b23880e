"""The dataset page with several annotators' work: the "every annotator" export, on a desktop and a phone."""

import json
from pathlib import Path

import pytest

from tests.browser.conftest import PASSWORD, PHONE, log_in

pytestmark = pytest.mark.browser

DEMO = Path(__file__).resolve().parents[2] / "demo" / "qa_feedback_demo.json"


def test_a_researcher_exports_every_annotators_work_from_the_dataset_page(new_page, make_user, screenshot, tmp_path, monkeypatch):
    from annotation.models import DatasetJob
    from annotation.services.dataset_jobs import dataset_job_run
    from annotation.services.datasets import dataset_import
    from annotation.tasks import run_dataset_job
    from tests.annotation.annotators_data import feedback_text, variant

    records = json.loads(DEMO.read_text(encoding="utf-8"))
    for name, seed in (("ana", None), ("ben", 1)):
        path = tmp_path / f"{name}.json"
        path.write_text(feedback_text(records if seed is None else variant(records, seed)), encoding="utf-8")
        dataset_import(path_or_file=path, dataset_name="team", split="dev", annotator=name)
    monkeypatch.setattr(run_dataset_job, "apply_async", lambda *args, **options: None)  # the worker is this test
    make_user("rita", role="researcher", password=PASSWORD)
    page = new_page()
    log_in(page, "rita")
    page.goto("/annotation/datasets/team/")
    button = page.get_by_role("button", name="Every annotator (JSON lines)")
    button.wait_for()
    screenshot(page, "dataset_several_annotators")
    button.click()
    page.locator("#job-status").get_by_text("Queued").wait_for()
    dataset_job_run(job_id=DatasetJob.objects.get().pk)
    page.get_by_text("Exported 24 lines for 12 examples (disagreement format) of team/dev, rule majority").wait_for(timeout=30_000)
    screenshot(page, "dataset_disagreement_export_done")

    phone = new_page(PHONE)
    log_in(phone, "rita")
    phone.goto("/annotation/datasets/team/")
    phone.get_by_role("button", name="Every annotator (JSON lines)").wait_for()
    screenshot(phone, "dataset_several_annotators_phone")
