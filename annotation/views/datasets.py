"""Researcher pages for datasets: list, detail, upload and export (as background jobs), download."""

from django import forms
from django.conf import settings
from django.core.paginator import Paginator
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from annotation.models import Dataset, DatasetJob
from annotation.permissions import researcher_required
from annotation.qa.agreement import RULE_LABELS
from annotation.qa.errors import NotFound, Refused, TooLarge
from annotation.selectors.dataset_jobs import dataset_job_file, dataset_job_progress, dataset_jobs_recent
from annotation.selectors.datasets import (
    ExampleFilters,
    dataset_split_stats,
    example_annotations,
    example_filter_choices,
    example_rows,
    example_search,
)
from annotation.selectors.datasets import dataset_list as select_datasets
from annotation.services.dataset_jobs import dataset_export_request, dataset_import_request
from annotation.services.datasets import EXPORT_FORMATS
from annotation.templatetags.long_text import CLIP_CHARS, showing_all
from annotation.upload_handlers import DatasetUploadHandler, StoredUpload

SHOWN_PROBLEMS = 20
ANNOTATOR_CHOICE = "annotator:"
EXAMPLES_PER_PAGE = 25


class DatasetUploadForm(forms.Form):
    file = forms.FileField(
        help_text="A qa-feedback JSON file: policy inputs (like dev.json) or feedback (like dev_feedback.json)."
    )
    dataset = forms.SlugField(max_length=100, help_text="Created if it does not exist yet.")
    split = forms.SlugField(
        max_length=32,
        initial="dev",
        # `pattern` is compiled with the `v` flag, where a "-" in a class must be escaped.
        widget=forms.TextInput(attrs={"pattern": r"[a-zA-Z0-9_\-]+", "title": "Letters, digits, hyphens and underscores"}),
    )
    annotator = forms.CharField(
        max_length=150,
        required=False,
        help_text="Feedback files only, optional: the file's feedback and preferences become this annotator's "
        "submitted work (the account is made, without a password, if it does not exist). Empty: they belong to "
        "the dataset's import account.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "pattern": r"[\w.@+\-]+", "title": "Letters, digits and @ . + - _"}),
    )


@researcher_required
@require_GET
def dataset_list(request):
    return render(request, "annotation/datasets/list.html", {"rows": select_datasets()})


def _example_filters(query, choices) -> ExampleFilters:
    """The list's filters from the query string; values the dataset does not have are ignored."""
    round_text = query.get("round", "")
    return ExampleFilters(
        split=query.get("split", "") if query.get("split") in choices.splits else "",
        text=query.get("q", "").strip()[:200],
        feedback=query.get("feedback", "") if query.get("feedback") in ("yes", "no") else "",
        error_type=query.get("error", "") if query.get("error") in dict(choices.error_types) else "",
        round=int(round_text) if round_text.isdigit() and int(round_text) in choices.rounds else None,
    )


@researcher_required
@require_GET
def dataset_detail(request, name: str):
    """The splits with their counts and downloads, and the paged, searchable list of examples.

    An htmx request from the list (search, filters, pages) gets only the list back.
    """
    dataset = get_object_or_404(Dataset, name=name)
    choices = example_filter_choices(dataset)
    filters = _example_filters(request.GET, choices)
    page = Paginator(example_search(dataset, filters), EXAMPLES_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "dataset": dataset,
        "choices": choices,
        "filters": filters,
        "page": page,
        "rows": example_rows(list(page.object_list)),
        "query": _query_without_page(request.GET),
    }
    if request.htmx and request.htmx.target == "examples":
        return render(request, "annotation/datasets/detail.html#examples", context)
    context["stats"] = dataset_split_stats(dataset)
    context["rules"] = list(RULE_LABELS.items())
    context["annotator_choice"] = ANNOTATOR_CHOICE
    context["jobs"] = dataset_jobs_recent(dataset_name=dataset.name)
    return render(request, "annotation/datasets/detail.html", context)


def _query_without_page(query) -> str:
    """The list's query string minus its page number, for the pager's links."""
    kept = query.copy()
    kept.pop("page", None)
    return kept.urlencode()


@researcher_required
@require_GET
def example_detail(request, name: str, split: str, number: int):
    """One example, read-only, with every fine-grained feedback and comparison recorded on it."""
    dataset = get_object_or_404(Dataset, name=name)
    clip = None if showing_all(request) else CLIP_CHARS
    annotations = example_annotations(dataset, split, number, clip=clip)
    if annotations is None:
        raise NotFound(f"{dataset.name}/{split} has no example {number}.")
    return render(
        request,
        "annotation/datasets/example.html",
        {"dataset": dataset, "split": split, "a": annotations, "example": annotations.example},
    )


@csrf_exempt  # checked inside, once the upload handler is in place
@researcher_required
@require_http_methods(["GET", "POST"])
def dataset_upload(request):
    """The upload form; a posted file goes straight to disk and is imported by a background job.

    The handler that writes the file and enforces MAX_UPLOAD_MB must be set
    before anything reads the body, and the CSRF check reads it: so the
    check runs inside, after the handler is set.
    """
    request.upload_handlers = [DatasetUploadHandler(request)]
    try:
        return _dataset_upload(request)
    except TooLarge as exc:
        form = DatasetUploadForm(initial={"dataset": request.GET.get("dataset", "")})
        return render(request, "annotation/datasets/upload.html", _upload_context(form, str(exc)), status=exc.status)
    finally:
        # A file that did not become a job (bad form, failed CSRF check) is not kept; a job's was moved away.
        for upload in getattr(request, "_files", {}).values():
            if isinstance(upload, StoredUpload):
                upload.discard()


def _upload_context(form: DatasetUploadForm, refusal: str = "") -> dict:
    return {
        "form": form,
        "refusal": refusal,
        "dataset_names": Dataset.objects.values_list("name", flat=True),
        "max_upload_mb": settings.MAX_UPLOAD_MB,
        "jobs": dataset_jobs_recent(),
    }


@csrf_protect
def _dataset_upload(request):
    status = 200
    if request.method == "POST":
        form = DatasetUploadForm(request.POST, request.FILES)
        status = 400  # the form as posted was not accepted
        upload = request.FILES.get("file")
        if form.is_valid():
            try:
                job = dataset_import_request(
                    upload=upload.path,
                    filename=upload.name,
                    dataset_name=form.cleaned_data["dataset"],
                    split=form.cleaned_data["split"],
                    user=request.user,
                    annotator=form.cleaned_data["annotator"],
                )
            except Refused as exc:
                form.add_error(None, str(exc))
                status = exc.status
            else:
                return redirect("annotation:dataset_job", pk=job.pk)
    else:
        form = DatasetUploadForm(initial={"dataset": request.GET.get("dataset", "")})
    return render(request, "annotation/datasets/upload.html", _upload_context(form), status=status)


@researcher_required
@require_POST
def dataset_export_start(request, name: str, split: str, fmt: str):
    """Queue an export of one split in one format, and show its job."""
    if fmt not in EXPORT_FORMATS:
        raise NotFound(f"unknown format {fmt!r}")
    dataset = get_object_or_404(Dataset, name=name)
    # The feedback form's "whose" choice: an aggregation rule, or "annotator:NAME" for one annotator's own work.
    whose = request.POST.get("whose", "")
    annotator = whose.removeprefix(ANNOTATOR_CHOICE) if whose.startswith(ANNOTATOR_CHOICE) else ""
    rule = "" if annotator else whose
    job = dataset_export_request(
        dataset=dataset, split=split, fmt=fmt, user=request.user, annotator=annotator, rule=rule
    )  # NotFound, BadRequest
    return redirect("annotation:dataset_job", pk=job.pk)


@researcher_required
@require_GET
def dataset_job(request, pk: int):
    """One import or export job: its progress while it runs (htmx polls the status part), then its result."""
    job = get_object_or_404(DatasetJob, pk=pk)
    context = {
        "job": job,
        "progress": dataset_job_progress(job),
        "problems": job.problems[:SHOWN_PROBLEMS],
        "more_problems": max(0, len(job.problems) - SHOWN_PROBLEMS),
    }
    if request.htmx:
        response = render(request, "annotation/datasets/job.html#status", context)
        # Finished: tell htmx to stop polling.
        return response if job.active else HttpResponseStopPolling(response.content)
    return render(request, "annotation/datasets/job.html", context)


@researcher_required
@require_GET
def dataset_job_download(request, pk: int):
    job = get_object_or_404(DatasetJob, pk=pk)
    path = dataset_job_file(job)
    if path is None:
        raise NotFound(f"job #{pk} has no file to download")
    content_type = "application/jsonl" if job.filename.endswith(".jsonl") else "application/json"
    return FileResponse(path.open("rb"), as_attachment=True, filename=job.filename, content_type=content_type)
