"""Researcher pages for datasets: list, detail, upload, download; annotators are kept out."""

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotation.models import Dataset, Example, Response
from annotation.qa.vocab import REDUNDANT, WRONG_GROUNDING
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
