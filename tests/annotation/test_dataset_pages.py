"""Researcher pages for datasets: list, detail, uploads and exports as background jobs, downloads; annotators are kept out."""

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotation.models import Dataset, DatasetJob, Example, Response
from annotation.qa.vocab import REDUNDANT, WRONG_GROUNDING
from annotation.selectors.dataset_jobs import JOBS_DIR, PROGRESS_NAME, dataset_job_dir
from annotation.services.dataset_jobs import dataset_job_run
from annotation.services.datasets import dataset_import
from tests.test_production import _assert_nothing_inline

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
DEMO_FEEDBACK = DEMO_DIR / "qa_feedback_demo.json"
DEMO_INPUTS = DEMO_DIR / "qa_feedback_demo_inputs.json"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashing costs about half a second per account; these tests create several.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def upload(client, path_or_bytes, *, dataset="demo", split="dev", name="file.json", annotator=""):
    content = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    return client.post(
        reverse("annotation:dataset_upload"),
        {
            "file": SimpleUploadedFile(name, content, content_type="application/json"),
            "dataset": dataset,
            "split": split,
            "annotator": annotator,
        },
    )


@pytest.fixture
def demo(db):
    dataset_import(path_or_file=DEMO_FEEDBACK, dataset_name="demo", split="dev")
    dataset_import(path_or_file=DEMO_INPUTS, dataset_name="demo", split="dev")
    return Dataset.objects.get(name="demo")


@pytest.fixture
def run_jobs(eager_celery, django_capture_on_commit_callbacks):
    """Post with the background job run in place once the request commits, as a worker would."""

    def _post(client, url, data=None):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data or {})

    return _post


def upload_run(client, run_jobs, content, *, dataset="demo", split="dev", name="file.json", annotator=""):
    content = content.read_bytes() if isinstance(content, Path) else content
    file = SimpleUploadedFile(name, content, content_type="application/json")
    data = {"file": file, "dataset": dataset, "split": split, "annotator": annotator}
    return run_jobs(client, reverse("annotation:dataset_upload"), data)


def job_page(client, job, *, htmx=False):
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.get(reverse("annotation:dataset_job", args=[job.pk]), **headers)


def files_left(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / JOBS_DIR
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_an_upload_is_stored_and_queued_not_imported_in_the_request(
    researcher_client, monkeypatch, settings, django_capture_on_commit_callbacks
):
    from annotation.tasks import run_dataset_job

    sent = []
    monkeypatch.setattr(run_dataset_job, "apply_async", lambda args=(), kwargs=None, **options: sent.append((list(args), options)))
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(researcher_client, DEMO_FEEDBACK)

    job = DatasetJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("annotation:dataset_job", args=[job.pk])
    assert sent == [([job.pk], {"queue": "default"})]
    assert (job.kind, job.status, job.dataset_name, job.split, job.filename) == ("import", "queued", "demo", "dev", "file.json")
    assert [p.read_bytes() for p in files_left(settings)] == [DEMO_FEEDBACK.read_bytes()]  # in the job's folder
    assert not Example.objects.exists()
    polled = job_page(researcher_client, job, htmx=True)
    assert polled.status_code == 200 and 'hx-trigger="every 1s"' in polled.content.decode()
    assert "waiting for a worker" in polled.content.decode()


def test_a_background_import_shows_its_progress_and_then_its_result(
    researcher_client, researcher, monkeypatch, django_capture_on_commit_callbacks
):
    from annotation.services import dataset_jobs, datasets
    from annotation.tasks import run_dataset_job

    monkeypatch.setattr(run_dataset_job, "apply_async", lambda *args, **options: None)  # the worker comes later
    with django_capture_on_commit_callbacks(execute=True):
        upload(researcher_client, DEMO_FEEDBACK)
    job = DatasetJob.objects.get()

    # While it runs, the page shows how far the import has come, from the file the worker keeps up to date.
    DatasetJob.objects.filter(pk=job.pk).update(status="running")
    dataset_jobs._write_json(dataset_job_dir(job) / PROGRESS_NAME, {"done": 1000, "total": 4000, "examples": 5})
    running = job_page(researcher_client, job, htmx=True)
    html = running.content.decode()
    assert running.status_code == 200 and 'hx-trigger="every 1s"' in html  # still polling
    assert "5 examples checked" in html and 'aria-valuenow="25"' in html and 'class="pct-25"' in html
    _assert_nothing_inline("job page", job_page(researcher_client, job).content.decode())
    assert "1000\xa0bytes of 3.9\xa0KB read" in html

    # The worker writes that file as it goes: once per batch of examples here.
    monkeypatch.setattr(datasets, "BATCH", 5)
    monkeypatch.setattr(dataset_jobs, "PROGRESS_EVERY_S", 0)
    written = []
    write_json = dataset_jobs._write_json
    monkeypatch.setattr(dataset_jobs, "_write_json", lambda path, data: written.append(data) or write_json(path, data))
    job = dataset_job_run(job_id=job.pk)

    assert [entry["examples"] for entry in written] == [5, 10, 12]
    assert written[-1]["done"] == written[-1]["total"] == DEMO_FEEDBACK.stat().st_size
    assert job.status == "succeeded", job.error
    finished = job_page(researcher_client, job, htmx=True)
    assert finished.status_code == 286  # htmx stops polling
    html = finished.content.decode()
    assert "Imported 12 examples (feedback format, 12 new) into demo/dev" in html
    assert "hx-trigger" not in html
    _assert_nothing_inline("finished job page", job_page(researcher_client, job).content.decode())
    assert Example.objects.filter(dataset__name="demo", split="dev", has_feedback_format=True).count() == 12
    assert Dataset.objects.get(name="demo").created_by == researcher
    page = researcher_client.get(reverse("annotation:dataset_detail", args=["demo"])).content.decode()
    assert "Why is the sky blue?" in page and reverse("annotation:dataset_job", args=[job.pk]) in page


def test_an_upload_runs_on_the_worker_when_the_request_commits(researcher_client, run_jobs):
    response = upload_run(researcher_client, run_jobs, DEMO_FEEDBACK)
    job = DatasetJob.objects.get()
    assert response["Location"] == reverse("annotation:dataset_job", args=[job.pk])
    assert job.status == "succeeded" and job.examples == 12


def test_a_refused_upload_shows_each_problem_and_writes_nothing(researcher_client, run_jobs, settings):
    records = json.loads(DEMO_FEEDBACK.read_text())
    records[5]["preference"] = [1, 2, 9, 0, 0, 0]
    upload_run(researcher_client, run_jobs, json.dumps(records).encode(), name="bad.json")
    job = DatasetJob.objects.get()
    assert job.status == "failed"
    html = job_page(researcher_client, job).content.decode()
    assert "bad.json was not imported; nothing was written." in html
    assert "example 6, field preference[2]: 9 is not 0, 1 or 2 (pair 1-4)" in html
    assert not Dataset.objects.exists()
    assert files_left(settings) == []  # the upload is not kept


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"question,answer\n", "the file is not valid JSON: Expecting value (line 1, column 1)"),
        (b'[{"question": "a\\u0000b", "text": "", "answer": [], "passages": []}]', "example 1, field question: holds a NUL"),
        (b'[{"question": "a", "question": "b", "text": "", "answer": [], "passages": []}]', "field question: key &#x27;question&#x27; appears twice"),
    ],
)
def test_it_refuses_uploads_that_are_not_clean_json(researcher_client, run_jobs, content, message):
    upload_run(researcher_client, run_jobs, content, name="data.json")
    job = DatasetJob.objects.get()
    assert job.status == "failed"
    assert message in job_page(researcher_client, job).content.decode()
    assert not Example.objects.exists()


def test_it_refuses_a_second_upload_of_the_same_format(researcher_client, run_jobs, demo):
    upload_run(researcher_client, run_jobs, DEMO_FEEDBACK)
    job = DatasetJob.objects.get()
    assert job.status == "failed"
    assert "demo/dev already holds the feedback format (12 examples)" in job_page(researcher_client, job).content.decode()


def test_an_upload_can_make_the_file_one_annotators_work_and_export_it_back_byte_for_byte(
    researcher_client, run_jobs, demo
):
    from annotation.models import Comparison, FineGrainedFeedback

    upload_run(researcher_client, run_jobs, DEMO_FEEDBACK, annotator=" alice ")
    job = DatasetJob.objects.get()
    assert (job.status, job.annotator) == ("succeeded", "alice"), job.error
    assert FineGrainedFeedback.objects.filter(annotator__username="alice", status="submitted").count() == 12
    assert Comparison.objects.filter(annotator__username="alice", status="submitted").count() == 12
    assert "as alice's work" in job_page(researcher_client, job).content.decode()

    # The dataset page offers alice's own work beside the aggregation rules.
    page = researcher_client.get(reverse("annotation:dataset_detail", args=["demo"])).content.decode()
    assert '<option value="annotator:alice">alice</option>' in page
    assert '<option value="majority">Majority of the annotators</option>' in page
    run_jobs(researcher_client, reverse("annotation:dataset_export", args=["demo", "dev", "feedback"]), {"whose": "annotator:alice"})
    job = DatasetJob.objects.filter(kind="export").get()
    assert (job.status, job.annotator, job.filename, job.examples) == ("succeeded", "alice", "demo-dev_feedback-alice.json", 12)
    download = researcher_client.get(reverse("annotation:dataset_job_download", args=[job.pk]))
    assert b"".join(download.streaming_content) == DEMO_FEEDBACK.read_bytes()


def test_an_export_can_aggregate_by_another_rule(researcher_client, run_jobs, demo):
    run_jobs(researcher_client, reverse("annotation:dataset_export", args=["demo", "dev", "feedback"]), {"whose": "majority"})
    job = DatasetJob.objects.get()
    assert (job.status, job.rule, job.filename, job.examples) == ("succeeded", "majority", "demo-dev_feedback-majority.json", 12), job.error
    # One annotator's work agrees with itself: the majority is the imported file.
    download = researcher_client.get(reverse("annotation:dataset_job_download", args=[job.pk]))
    assert b"".join(download.streaming_content) == DEMO_FEEDBACK.read_bytes()
    assert "rule majority" in job_page(researcher_client, job).content.decode()


@pytest.mark.parametrize(
    ("fmt", "whose", "status", "message"),
    [
        ("feedback", "annotator:nobody", 404, "no annotator named"),
        ("feedback", "loudest", 400, "unknown aggregation rule"),
        ("inputs", "majority", 400, "the inputs format takes no annotator or aggregation rule"),
    ],
)
def test_it_refuses_an_export_for_an_unknown_annotator_or_rule(researcher_client, demo, fmt, whose, status, message):
    response = researcher_client.post(reverse("annotation:dataset_export", args=["demo", "dev", fmt]), {"whose": whose})
    assert response.status_code == status
    assert message in response.content.decode()
    assert not DatasetJob.objects.exists()


@pytest.mark.parametrize("annotator", ["import@demo", "two words"])
def test_it_refuses_an_upload_for_an_annotator_no_account_can_be(researcher_client, settings, annotator):
    response = upload(researcher_client, DEMO_FEEDBACK, annotator=annotator)
    assert response.status_code == 400
    assert f"annotator &#x27;{annotator}&#x27;" in response.content.decode()
    assert not DatasetJob.objects.exists()
    assert files_left(settings) == []


def test_it_checks_the_upload_form_fields(researcher_client, settings):
    response = upload(researcher_client, DEMO_FEEDBACK, dataset="not a slug")
    assert response.status_code == 400
    assert "Enter a valid “slug”" in response.content.decode()
    assert not Dataset.objects.exists() and not DatasetJob.objects.exists()
    assert files_left(settings) == []


@pytest.mark.parametrize("megabytes", [1.02, 5])  # over by less than the form's room (counted as it arrives), by more
def test_it_refuses_an_upload_over_max_upload_mb_and_keeps_nothing(researcher_client, settings, megabytes):
    settings.MAX_UPLOAD_MB = 1
    response = upload(researcher_client, b" " * int(megabytes * 1024 * 1024) + b"[]", name="big.json")
    assert response.status_code == 413
    html = response.content.decode()
    assert "uploads are limited to 1 MB (MAX_UPLOAD_MB)" in html and "<form" in html
    assert not DatasetJob.objects.exists()
    assert files_left(settings) == []


def test_the_upload_page_states_the_limit(researcher_client, settings):
    settings.MAX_UPLOAD_MB = 7
    assert "up to 7 MB" in researcher_client.get(reverse("annotation:dataset_upload")).content.decode()


def test_it_lists_datasets_with_split_counts(researcher_client, demo):
    dataset_import(path_or_file=DEMO_INPUTS, dataset_name="demo", split="test")
    html = researcher_client.get(reverse("annotation:dataset_list")).content.decode()
    assert reverse("annotation:dataset_detail", args=["demo"]) in html
    assert "dev · 12" in html and "test · 12" in html


def test_it_shows_split_counts_and_export_buttons_on_the_detail_page(researcher_client, demo):
    response = researcher_client.get(reverse("annotation:dataset_detail", args=["demo"]))
    html = response.content.decode()
    assert response.status_code == 200
    assert reverse("annotation:dataset_export", args=["demo", "dev", "feedback"]) in html
    assert reverse("annotation:dataset_export", args=["demo", "dev", "inputs"]) in html
    assert "Feedback (12)" in html and "Policy inputs (12)" in html
    assert "0 by annotators" in html and "12 imported" in html


@pytest.mark.parametrize(
    ("fmt", "source", "filename"),
    [("feedback", DEMO_FEEDBACK, "demo-dev_feedback.json"), ("inputs", DEMO_INPUTS, "demo-dev.json")],
)
def test_an_export_is_built_in_the_background_then_downloaded_byte_for_byte(
    researcher_client, run_jobs, demo, fmt, source, filename
):
    response = run_jobs(researcher_client, reverse("annotation:dataset_export", args=["demo", "dev", fmt]))
    job = DatasetJob.objects.get()
    assert response["Location"] == reverse("annotation:dataset_job", args=[job.pk])
    assert (job.kind, job.status, job.examples) == ("export", "succeeded", 12), job.error
    html = job_page(researcher_client, job).content.decode()
    assert f"Exported 12 examples ({fmt} format) of demo/dev" in html
    download = researcher_client.get(reverse("annotation:dataset_job_download", args=[job.pk]))
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert b"".join(download.streaming_content) == source.read_bytes()


def test_an_export_is_queued_on_the_default_queue_and_offers_no_file_before_it_ran(
    researcher_client, demo, monkeypatch, django_capture_on_commit_callbacks
):
    from annotation.tasks import run_dataset_job

    sent = []
    monkeypatch.setattr(run_dataset_job, "apply_async", lambda args=(), kwargs=None, **options: sent.append((list(args), options)))
    with django_capture_on_commit_callbacks(execute=True):
        researcher_client.post(reverse("annotation:dataset_export", args=["demo", "dev", "feedback"]))
    job = DatasetJob.objects.get()
    assert sent == [([job.pk], {"queue": "default"})] and job.status == "queued"
    assert researcher_client.get(reverse("annotation:dataset_job_download", args=[job.pk])).status_code == 404


def test_a_feedback_export_starts_from_the_split_size_and_ends_with_the_exact_count(
    researcher_client, demo, monkeypatch, django_capture_on_commit_callbacks
):
    # The request only checks that one complete example exists; the job's bar is made exact when it ends.
    from annotation.models import Comparison

    assert Comparison.objects.filter(example__dataset=demo, example__position=3).delete()[0] == 1
    queued = []
    monkeypatch.setattr("annotation.services.dataset_jobs._enqueue", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        researcher_client.post(reverse("annotation:dataset_export", args=["demo", "dev", "feedback"]))
    job = DatasetJob.objects.get()
    assert (job.status, job.progress_total, queued) == ("queued", 12, [job.pk])
    job = dataset_job_run(job_id=job.pk)
    assert (job.status, job.examples, job.progress_done, job.progress_total) == ("succeeded", 11, 11, 11), job.error


def test_a_split_without_a_complete_feedback_record_queues_no_feedback_export(researcher_client, db):
    dataset_import(path_or_file=DEMO_INPUTS, dataset_name="demo", split="inputs-only")
    response = researcher_client.post(reverse("annotation:dataset_export", args=["demo", "inputs-only", "feedback"]))
    assert response.status_code == 404
    assert "no examples in the feedback format" in response.content.decode()
    assert not DatasetJob.objects.exists()


def test_it_answers_404_for_unknown_formats_splits_and_datasets(researcher_client, demo):
    def export(*args):
        return researcher_client.post(reverse("annotation:dataset_export", args=args)).status_code

    assert export("demo", "dev", "csv") == 404
    assert export("demo", "test", "inputs") == 404
    assert export("nope", "dev", "inputs") == 404
    assert researcher_client.get(reverse("annotation:dataset_detail", args=["nope"])).status_code == 404
    assert researcher_client.get(reverse("annotation:dataset_job", args=[999])).status_code == 404
    assert not DatasetJob.objects.exists()


def test_it_keeps_annotators_out_of_every_dataset_page(annotator_client, researcher, demo):
    job = DatasetJob.objects.create(kind="export", dataset_name="demo", split="dev", fmt="feedback", created_by=researcher)
    urls = [
        reverse("annotation:dataset_list"),
        reverse("annotation:dataset_upload"),
        reverse("annotation:dataset_detail", args=["demo"]),
        reverse("annotation:dataset_job", args=[job.pk]),
        reverse("annotation:dataset_job_download", args=[job.pk]),
    ]
    for url in urls:
        assert annotator_client.get(url).status_code == 403, url
    assert upload(annotator_client, DEMO_INPUTS, split="other").status_code == 403
    assert annotator_client.post(reverse("annotation:dataset_export", args=["demo", "dev", "feedback"])).status_code == 403
    assert DatasetJob.objects.count() == 1


def test_it_sends_visitors_who_are_not_logged_in_to_the_login_page(client, demo):
    response = client.get(reverse("annotation:dataset_list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- the example list and the example view ------------------------------------------


def test_it_lists_the_examples_numbered_from_1_with_links_to_each(researcher_client, demo):
    html = researcher_client.get(reverse("annotation:dataset_detail", args=["demo"])).content.decode()
    assert "12 examples" in html
    for number in (1, 12):
        assert reverse("annotation:dataset_example", args=["demo", "dev", number]) in html
        assert f">Example {number}</a>" in html
    assert ">Example 0<" not in html and "#0" not in html
    assert "Why is the sky blue?" in html and "Who invented the telephone?" in html


def test_it_pages_the_example_list_and_answers_htmx_with_the_list_only(researcher_client):
    from tests.annotation.annotate_data import make_dataset

    make_dataset("big", examples=30)
    url = reverse("annotation:dataset_detail", args=["big"])
    first = researcher_client.get(url).content.decode()
    assert "showing 1–25" in first and "Page 1 of 2" in first
    assert ">Example 25</a>" in first and ">Example 26</a>" not in first
    assert 'href="?page=2" hx-get="?page=2"' in first
    second = researcher_client.get(url, {"page": 2}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="examples")
    html = second.content.decode()
    assert html.lstrip().startswith('<section id="examples"')
    assert "<html" not in html and "Splits" not in html
    assert ">Example 26</a>" in html and ">Example 30</a>" in html and ">Example 25</a>" not in html
    assert 'href="?page=1"' in html and "Next →" not in html
    # A page past the end shows the last one.
    assert ">Example 30</a>" in researcher_client.get(url, {"page": 99}).content.decode()


def test_it_searches_and_filters_the_examples_and_keeps_the_filters_in_the_pager(researcher_client, demo):
    url = reverse("annotation:dataset_detail", args=["demo"])
    html = researcher_client.get(url, {"q": "who the"}).content.decode()
    assert "3 examples match" in html
    assert ">Example 3</a>" in html and ">Example 6</a>" in html and ">Example 12</a>" in html
    assert ">Example 10</a>" not in html
    assert 'value="who the"' in html
    html = researcher_client.get(url, {"error": REDUNDANT}).content.decode()
    assert "3 examples match" in html and f'<option value="{REDUNDANT}" selected>' in html
    html = researcher_client.get(url, {"feedback": "no"}).content.decode()
    assert "No example matches these filters." in html
    # Unknown values filter nothing rather than failing.
    html = researcher_client.get(url, {"error": "Typo", "round": "7", "feedback": "maybe", "split": "x"}).content.decode()
    assert "12 examples" in html and "match" not in html.split("12 examples")[1][:10]
    Response.objects.filter(example__position=1, number=3).update(round=1)
    html = researcher_client.get(url, {"round": "1"}).content.decode()
    assert "1 example matches" in html and ">Example 2</a>" in html


def test_it_keeps_the_filters_in_the_page_links(researcher_client):
    from tests.annotation.annotate_data import make_dataset

    make_dataset("big", examples=30)
    html = researcher_client.get(reverse("annotation:dataset_detail", args=["big"]), {"q": "bloom", "page": "1"}).content.decode()
    assert 'href="?q=bloom&amp;page=2"' in html


def test_it_shows_an_example_read_only_with_all_its_annotations(researcher_client, demo, make_user):
    from annotation.services.feedback import comparison_submit

    example = Example.objects.get(dataset__name="demo", position=0)
    comparison_submit(example=example, annotator=make_user("anna", role="annotator"), preference=[1, 1, 1, 0, 2, 2], submit_token="t", base_version=0)
    response = researcher_client.get(reverse("annotation:dataset_example", args=["demo", "dev", 1]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Example 1</h1>" in html and "Why is the sky blue?" in html
    assert "Passage 1" in html and "Response 4" in html
    assert html.count('class="feedback"') == 1 and "Imported" in html
    assert f'data-error-type="{WRONG_GROUNDING}"' in html and "Inconsistent Fact" in html and "contradicts passage" in html
    assert "Missing information" in html and "Corrected response" in html
    assert "anna" in html and "2 = 3" in html and "4 &gt; 2" in html  # the annotator's comparison beside the imported one
    assert reverse("annotation:dataset_example", args=["demo", "dev", 2]) in html
    assert "<form" not in html.split('id="main"')[1]  # read-only: nothing to submit
    assert researcher_client.get(reverse("annotation:dataset_example", args=["demo", "dev", 13])).status_code == 404
    assert researcher_client.get(reverse("annotation:dataset_example", args=["demo", "dev", 0])).status_code == 404


def test_the_dataset_page_and_the_annotation_page_give_a_question_the_same_number(client, researcher, annotator):
    from annotation.services.campaigns import assignment_next
    from tests.annotation.annotate_data import QUESTION, make_campaign, make_dataset

    dataset = make_dataset("bloom", examples=3)
    campaign = make_campaign(dataset, [annotator])
    assignment = assignment_next(campaign=campaign, annotator=annotator)
    assert assignment.example.position == 0
    client.force_login(annotator)
    annotate_html = client.get(reverse("annotation:annotate", args=[assignment.pk])).content.decode()
    assert "bloom/dev · example 1" in annotate_html and f"{QUESTION} (#1)" in annotate_html
    client.force_login(researcher)
    list_html = client.get(reverse("annotation:dataset_detail", args=["bloom"])).content.decode()
    row = list_html.split(">Example 1</a>")[1].split("</tr>")[0]
    assert f"{QUESTION} (#1)" in row
    example_html = client.get(reverse("annotation:dataset_example", args=["bloom", "dev", 1])).content.decode()
    assert "<h1>Example 1</h1>" in example_html and f"{QUESTION} (#1)" in example_html
    assert str(assignment.example) == "bloom/dev example 1"


def test_it_keeps_annotators_out_of_the_example_view(annotator_client, demo):
    assert annotator_client.get(reverse("annotation:dataset_example", args=["demo", "dev", 1])).status_code == 403


def test_long_texts_are_shown_cut_with_a_way_to_see_them_whole(researcher_client, tmp_path):
    records = json.loads(DEMO_FEEDBACK.read_text())[:2]
    records[0]["question"] = "Why " + "very " * 400_000 + "long?"  # 2 MB
    records[0]["prediction 1"] += " and" + " so on" * 200_000
    records[0]["feedback"]["corrected-prediction"] = "fixed " * 100_000
    path = tmp_path / "long.json"
    path.write_text(json.dumps(records))
    dataset_import(path_or_file=path, dataset_name="long", split="dev")

    listing = researcher_client.get(reverse("annotation:dataset_detail", args=["long"]))
    assert len(listing.content) < 100_000 and "Why very very" in listing.content.decode()
    url = reverse("annotation:dataset_example", args=["long", "dev", 1])
    page = researcher_client.get(url)
    assert page.status_code == 200 and len(page.content) < 100_000
    html = page.content.decode()
    assert "Show all 2,000,009 characters" in html and 'href="?full=1"' in html
    assert html.count("long-text-more") >= 3  # question, highlighted response, correction
    whole = researcher_client.get(url + "?full=1")
    assert len(whole.content) > 2_000_000 and "Show all" not in whole.content.decode()


def test_the_upload_form_still_needs_its_csrf_token(researcher, settings):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    response = upload(client, DEMO_FEEDBACK)
    assert response.status_code == 403
    assert not DatasetJob.objects.exists() and files_left(settings) == []
