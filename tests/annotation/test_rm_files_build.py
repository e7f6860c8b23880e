"""Reward-model files from the database: the build_rm_data command, the background build and its page."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from annotation.models import Comparison, ErrorSpan, FeedbackStatus, FineGrainedFeedback, Response, RmDataBuild
from annotation.qa.errors import BadRequest
from annotation.qa.rm_files import OUTPUT_NAMES, output_paths
from annotation.qa.vocab import IGNORE, IRRELEVANT, NF_ERR, NF_ERR_SUBSENTENCE, RM_FILE_NAMES
from annotation.services.datasets import dataset_import
from annotation.services.rm_files import rm_data_build, rm_data_build_request, rm_data_build_run


def build_command(*args, **options) -> str:
    stdout = io.StringIO()
    call_command("build_rm_data", *args, stdout=stdout, stderr=io.StringIO(), **options)
    return stdout.getvalue()


@pytest.fixture
def dev_dataset(db, qa_feedback_dir):
    dataset_import(path_or_file=qa_feedback_dir / "dev_feedback.json", dataset_name="qa", split="dev")
    return "qa"


@pytest.fixture
def small_dataset(db, qa_feedback_dir, tmp_path):
    """The first 12 shared examples, imported as dataset `small`, split `dev`."""
    records = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))[:12]
    path = tmp_path / "small.json"
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    dataset_import(path_or_file=path, dataset_name="small", split="dev")
    return records


def not_sent(sent: list | None = None):
    """Stands in for the build task's apply_async: records what would be queued instead of sending it."""

    def apply_async(args=(), kwargs=None, **options):
        if sent is not None:
            sent.append({"args": list(args), **options})

    return apply_async


@pytest.mark.parametrize("jobs", [1, 3])
def test_it_builds_the_three_files_byte_identical_after_import(dev_dataset, qa_feedback_dir, tmp_path, jobs):
    out = tmp_path / "rm"
    printed = build_command(dataset="qa", split="dev", out=str(out), splitter="sentencizer", jobs=jobs)
    for name in RM_FILE_NAMES:
        built = (out / name / "dev.json").read_bytes()
        assert built == (qa_feedback_dir / "reference" / name / "dev.json").read_bytes(), name
    assert "Sentence splitter: sentencizer" in printed
    assert "most recently submitted" in printed
    summary = json.loads((out / "summary" / "dev.json").read_text())
    assert summary["examples"] == 500 and summary["splitter"] == "sentencizer"
    pairs = (out / "preference_pairs" / "dev.jsonl").read_text().splitlines()
    assert len(pairs) == summary["files"]["preference_pairs"]["written"] > 0


def test_it_refuses_a_number_of_jobs_below_one(small_dataset, tmp_path):
    with pytest.raises(CommandError, match="--jobs: must be a whole number of at least 1, not '0'"):
        build_command("--jobs", "0", dataset="small", split="dev", out=str(tmp_path / "rm"))
    assert not (tmp_path / "rm").exists()


def test_it_prints_the_splitter_the_setting_chose(small_dataset, settings, tmp_path):
    import spacy.util

    settings.SENTENCE_SPLITTER = "auto"
    printed = build_command(dataset="small", split="dev", out=str(tmp_path / "rm"))
    resolved = "en_core_web_sm" if spacy.util.is_package("en_core_web_sm") else "sentencizer"
    assert f"Sentence splitter: {resolved}" in printed


def test_it_refuses_an_unknown_dataset_split_or_splitter(small_dataset, tmp_path):
    out = tmp_path / "rm"
    with pytest.raises(CommandError, match="no dataset 'nope'"):
        build_command(dataset="nope", split="dev", out=str(out))
    with pytest.raises(CommandError, match="small/test has no example"):
        build_command(dataset="small", split="test", out=str(out))
    with pytest.raises(CommandError, match="no_such_model"):
        build_command(dataset="small", split="dev", out=str(out), splitter="no_such_model")
    assert not out.exists()


def test_it_uses_the_most_recent_submitted_annotation_and_says_so(small_dataset, make_user, tmp_path):
    before = rm_data_build(dataset="small", split="dev", out_dir=tmp_path / "before", splitter="sentencizer")
    response = Response.objects.get(example__dataset__name="small", example__position=0, number=1)
    later = FineGrainedFeedback.objects.create(
        response=response,
        annotator=make_user("second"),
        status=FeedbackStatus.SUBMITTED,
        submitted_at=timezone.now() + timedelta(minutes=5),
    )
    text = response.text
    ErrorSpan.objects.create(feedback=later, position=0, error_type=IRRELEVANT, start=0, end=len(text))
    # A newer draft by a third annotator is not submitted, so it must not count.
    FineGrainedFeedback.objects.create(
        response=response, annotator=make_user("third"), status=FeedbackStatus.DRAFT, submitted_at=None
    )
    after = rm_data_build(dataset="small", split="dev", out_dir=tmp_path / "after", splitter="sentencizer")
    assert after["items_with_several_feedback"] == 1 and before["items_with_several_feedback"] == 0
    assert "most recently submitted" in after["annotation_rule"]
    first_line = json.loads((tmp_path / "after" / NF_ERR_SUBSENTENCE / "dev.json").read_text().splitlines()[0])
    labels = [t for t in first_line["feedback_tags"] if t != IGNORE]
    assert labels and set(labels) == {NF_ERR}  # the whole answer is now one irrelevant span
    old_line = json.loads((tmp_path / "before" / NF_ERR_SUBSENTENCE / "dev.json").read_text().splitlines()[0])
    assert old_line["feedback_tags"] != first_line["feedback_tags"]


def test_it_counts_items_with_several_comparisons(small_dataset, make_user, tmp_path):
    example = Comparison.objects.filter(example__dataset__name="small").first().example
    Comparison.objects.create(
        example=example,
        annotator=make_user("second"),
        preference=[0, 0, 0, 0, 0, 0],
        status=FeedbackStatus.SUBMITTED,
        submitted_at=timezone.now() + timedelta(minutes=5),
    )
    summary = rm_data_build(dataset="small", split="dev", out_dir=tmp_path, splitter="sentencizer")
    assert summary["items_with_several_comparisons"] == 1
    pairs = [json.loads(line) for line in output_paths(tmp_path, "dev")["preference_pairs"].read_text().splitlines()]
    # Every pair of that example is now tied, so none of its pairs is exported.
    assert summary["files"]["preference_pairs"]["written"] == len(pairs)
    assert all(pair["prompt"].startswith("question: ") for pair in pairs)


# --- the background build and its page ------------------------------------------------------------


def test_the_page_is_for_researchers_only(client, researcher, annotator):
    url = reverse("annotation:rm_data")
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(annotator)
    assert client.get(url).status_code == 403
    client.force_login(researcher)
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="splitter"' in page.content.decode()


def test_a_posted_build_runs_in_the_background_and_offers_its_files(
    small_dataset, researcher_client, eager_celery, django_capture_on_commit_callbacks, qa_feedback_dir
):
    with django_capture_on_commit_callbacks(execute=True):
        response = researcher_client.post(
            reverse("annotation:rm_data"), {"dataset": "small", "split": "dev", "splitter": "sentencizer"}
        )
    assert response.status_code == 302
    build = RmDataBuild.objects.get()
    assert build.status == RmDataBuild.Status.SUCCEEDED, build.error
    assert build.progress_done == build.progress_total == len(small_dataset)
    page = researcher_client.get(reverse("annotation:rm_data")).content.decode()
    for name in OUTPUT_NAMES:
        assert reverse("annotation:rm_data_download", args=[build.pk, name]) in page
    download = researcher_client.get(reverse("annotation:rm_data_download", args=[build.pk, NF_ERR_SUBSENTENCE]))
    assert download.status_code == 200
    assert "attachment" in download["Content-Disposition"]
    reference = (qa_feedback_dir / "reference" / NF_ERR_SUBSENTENCE / "dev.json").read_bytes()
    assert b"".join(download.streaming_content) == b"".join(reference.splitlines(keepends=True)[:12])


def test_it_queues_the_build_on_the_default_queue_only_after_commit(
    small_dataset, researcher, monkeypatch, django_capture_on_commit_callbacks
):
    from annotation.tasks import build_rm_data

    sent = []
    monkeypatch.setattr(build_rm_data, "apply_async", not_sent(sent))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        build = rm_data_build_request(dataset="small", split="dev", splitter="sentencizer", user=researcher)
    assert sent == [] and build.status == RmDataBuild.Status.QUEUED
    for callback in callbacks:
        callback()
    assert sent == [{"args": [build.pk], "queue": "default"}]


def test_the_job_list_polls_while_a_build_is_active_and_then_stops(small_dataset, researcher, researcher_client):
    with pytest.MonkeyPatch.context() as patch:
        from annotation.tasks import build_rm_data

        patch.setattr(build_rm_data, "apply_async", not_sent())
        build = rm_data_build_request(dataset="small", split="dev", splitter="sentencizer", user=researcher)
    polled = researcher_client.get(reverse("annotation:rm_data"), HTTP_HX_REQUEST="true")
    assert polled.status_code == 200
    assert 'hx-trigger="every 2s"' in polled.content.decode()
    assert "<form" not in polled.content.decode()  # only the job list is swapped
    rm_data_build_run(build_id=build.pk)
    finished = researcher_client.get(reverse("annotation:rm_data"), HTTP_HX_REQUEST="true")
    assert finished.status_code == 286  # htmx stops polling
    assert "Succeeded" in finished.content.decode()


def test_it_refuses_a_build_with_nothing_to_build_from(small_dataset, researcher_client):
    response = researcher_client.post(
        reverse("annotation:rm_data"), {"dataset": "small", "split": "test", "splitter": "sentencizer"}
    )
    assert response.status_code == 400
    assert "small/test has no example" in response.content.decode()
    assert not RmDataBuild.objects.exists()


def test_it_refuses_a_splitter_that_is_not_installed(small_dataset, researcher):
    with pytest.raises(BadRequest, match="not_a_model"):
        rm_data_build_request(dataset="small", split="dev", splitter="not_a_model", user=researcher)


def test_a_failed_build_records_why(small_dataset, researcher, monkeypatch):
    from annotation.tasks import build_rm_data

    monkeypatch.setattr(build_rm_data, "apply_async", not_sent())
    build = rm_data_build_request(dataset="small", split="dev", splitter="sentencizer", user=researcher)
    Comparison.objects.all().delete()  # the split has nothing complete any more
    build = rm_data_build_run(build_id=build.pk)
    assert build.status == RmDataBuild.Status.FAILED
    assert "has no example" in build.error
    assert build.finished_at is not None


def test_downloads_are_for_researchers_and_known_files_only(small_dataset, researcher, annotator, client, monkeypatch):
    from annotation.tasks import build_rm_data

    monkeypatch.setattr(build_rm_data, "apply_async", not_sent())
    build = rm_data_build_request(dataset="small", split="dev", splitter="sentencizer", user=researcher)
    url = reverse("annotation:rm_data_download", args=[build.pk, "summary"])
    client.force_login(researcher)
    assert client.get(url).status_code == 404  # not built yet
    rm_data_build_run(build_id=build.pk)
    assert client.get(url).status_code == 200
    assert client.get(reverse("annotation:rm_data_download", args=[build.pk, "passwords"])).status_code == 404
    client.force_login(annotator)
    assert client.get(url).status_code == 403
