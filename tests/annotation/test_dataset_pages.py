"""Researcher pages for datasets: list, detail, upload, download; annotators are kept out."""

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotation.models import Dataset, Example
from annotation.services.datasets import dataset_import

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
DEMO_FEEDBACK = DEMO_DIR / "qa_feedback_demo.json"
DEMO_INPUTS = DEMO_DIR / "qa_feedback_demo_inputs.json"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashing costs about half a second per account; these tests create several.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def upload(client, path_or_bytes, *, dataset="demo", split="dev", name="file.json"):
    content = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    return client.post(
        reverse("annotation:dataset_upload"),
        {
            "file": SimpleUploadedFile(name, content, content_type="application/json"),
            "dataset": dataset,
            "split": split,
        },
    )


@pytest.fixture
def demo(db):
    dataset_import(path_or_file=DEMO_FEEDBACK, dataset_name="demo", split="dev")
    dataset_import(path_or_file=DEMO_INPUTS, dataset_name="demo", split="dev")
    return Dataset.objects.get(name="demo")


def test_it_uploads_a_feedback_file_and_shows_the_dataset(researcher_client, researcher):
    response = upload(researcher_client, DEMO_FEEDBACK)
    assert response.status_code == 302
    assert response["Location"] == reverse("annotation:dataset_detail", args=["demo"])
    assert Example.objects.filter(dataset__name="demo", split="dev", has_feedback_format=True).count() == 12
    assert Dataset.objects.get(name="demo").created_by == researcher

    page = researcher_client.get(response["Location"])
    assert "Imported 12 examples (feedback format, 12 new) into demo/dev" in page.content.decode()
    assert "Why is the sky blue?" in page.content.decode()


def test_it_shows_why_an_upload_was_refused_and_writes_nothing(researcher_client):
    records = json.loads(DEMO_FEEDBACK.read_text())
    records[5]["preference"] = [1, 2, 9, 0, 0, 0]
    response = upload(researcher_client, json.dumps(records).encode(), name="bad.json")
    assert response.status_code == 400
    html = response.content.decode()
    assert "bad.json was not imported; nothing was written." in html
    assert "example 6, field preference[2]: 9 is not 0, 1 or 2 (pair 1-4)" in html
    assert not Dataset.objects.exists()


def test_it_refuses_an_upload_that_is_not_json(researcher_client):
    response = upload(researcher_client, b"question,answer\n", name="data.csv")
    assert response.status_code == 400
    assert "the file is not valid JSON" in response.content.decode()
    assert not Example.objects.exists()


def test_it_refuses_a_second_upload_of_the_same_format(researcher_client, demo):
    response = upload(researcher_client, DEMO_FEEDBACK)
    assert response.status_code == 400
    assert "demo/dev already holds the feedback format (12 examples)" in response.content.decode()


def test_it_checks_the_upload_form_fields(researcher_client):
    response = upload(researcher_client, DEMO_FEEDBACK, dataset="not a slug")
    assert response.status_code == 400
    assert "Enter a valid “slug”" in response.content.decode()
    assert not Dataset.objects.exists()


def test_it_lists_datasets_with_split_counts(researcher_client, demo):
    dataset_import(path_or_file=DEMO_INPUTS, dataset_name="demo", split="test")
    html = researcher_client.get(reverse("annotation:dataset_list")).content.decode()
    assert reverse("annotation:dataset_detail", args=["demo"]) in html
    assert "dev · 12" in html and "test · 12" in html


def test_it_shows_split_counts_and_download_links_on_the_detail_page(researcher_client, demo):
    response = researcher_client.get(reverse("annotation:dataset_detail", args=["demo"]))
    html = response.content.decode()
    assert response.status_code == 200
    assert reverse("annotation:dataset_download", args=["demo", "dev", "feedback"]) in html
    assert reverse("annotation:dataset_download", args=["demo", "dev", "inputs"]) in html
    assert "Feedback (12)" in html and "Policy inputs (12)" in html
    assert "0 by annotators" in html and "12 imported" in html


@pytest.mark.parametrize(
    ("fmt", "source", "filename"),
    [("feedback", DEMO_FEEDBACK, "demo-dev_feedback.json"), ("inputs", DEMO_INPUTS, "demo-dev.json")],
)
def test_it_downloads_each_format_byte_for_byte(researcher_client, demo, fmt, source, filename):
    response = researcher_client.get(reverse("annotation:dataset_download", args=["demo", "dev", fmt]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert response.content == source.read_bytes()


def test_it_answers_404_for_unknown_formats_splits_and_datasets(researcher_client, demo):
    assert researcher_client.get(reverse("annotation:dataset_download", args=["demo", "dev", "csv"])).status_code == 404
    assert (
        researcher_client.get(reverse("annotation:dataset_download", args=["demo", "test", "inputs"])).status_code
        == 404
    )
    assert researcher_client.get(reverse("annotation:dataset_detail", args=["nope"])).status_code == 404


def test_it_keeps_annotators_out_of_every_dataset_page(annotator_client, demo):
    urls = [
        reverse("annotation:dataset_list"),
        reverse("annotation:dataset_upload"),
        reverse("annotation:dataset_detail", args=["demo"]),
        reverse("annotation:dataset_download", args=["demo", "dev", "feedback"]),
    ]
    for url in urls:
        assert annotator_client.get(url).status_code == 403, url
    assert upload(annotator_client, DEMO_INPUTS, split="other").status_code == 403
    assert not Example.objects.filter(split="other").exists()


def test_it_sends_visitors_who_are_not_logged_in_to_the_login_page(client, demo):
    response = client.get(reverse("annotation:dataset_list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
