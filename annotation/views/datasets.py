"""Researcher pages for datasets: list, detail, upload, download."""

import io

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotation.models import Dataset
from annotation.permissions import researcher_required
from annotation.qa.errors import NotFound, Refused
from annotation.qa.format import FEEDBACK, FORMATS, FormatError
from annotation.selectors.datasets import (
    ExampleFilters,
    dataset_split_stats,
    example_annotations,
    example_filter_choices,
    example_rows,
    example_search,
)
from annotation.selectors.datasets import dataset_list as select_datasets
from annotation.services.datasets import dataset_export, dataset_import

SHOWN_PROBLEMS = 20
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
    annotations = example_annotations(dataset, split, number)
    if annotations is None:
        raise NotFound(f"{dataset.name}/{split} has no example {number}.")
    return render(
        request,
        "annotation/datasets/example.html",
        {"dataset": dataset, "split": split, "a": annotations, "example": annotations.example},
    )


@researcher_required
@require_http_methods(["GET", "POST"])
def dataset_upload(request):
    problems: list[str] = []
    status = 200
    if request.method == "POST":
        form = DatasetUploadForm(request.POST, request.FILES)
        status = 400  # the form as posted was not accepted
        if form.is_valid():
            try:
                summary = dataset_import(
                    path_or_file=form.cleaned_data["file"],
                    dataset_name=form.cleaned_data["dataset"],
                    split=form.cleaned_data["split"],
                    user=request.user,
                )
            except FormatError as exc:
                problems = exc.lines()
                form.add_error(None, f"{form.cleaned_data['file'].name} was not imported; nothing was written.")
                status = exc.status
            except Refused as exc:
                form.add_error(None, str(exc))
                status = exc.status
            else:
                messages.success(request, str(summary))
                return redirect("annotation:dataset_detail", name=summary.dataset)
    else:
        form = DatasetUploadForm(initial={"dataset": request.GET.get("dataset", "")})
    context = {
        "form": form,
        "problems": problems[:SHOWN_PROBLEMS],
        "more_problems": max(0, len(problems) - SHOWN_PROBLEMS),
        "dataset_names": Dataset.objects.values_list("name", flat=True),
    }
    return render(request, "annotation/datasets/upload.html", context, status=status)


@researcher_required
@require_GET
def dataset_download(request, name: str, split: str, fmt: str):
    if fmt not in FORMATS:
        raise NotFound(f"unknown format {fmt!r}")
    dataset = get_object_or_404(Dataset, name=name)
    buffer = io.StringIO()
    dataset_export(dataset=dataset, split=split, fmt=fmt, out=buffer)  # NotFound when the split has none
    content = buffer.getvalue()
    # Named like the shared files: dev_feedback.json for feedback, dev.json for inputs.
    filename = f"{dataset.name}-{split}{'_feedback' if fmt == FEEDBACK else ''}.json"
    response = HttpResponse(content.encode("utf-8"), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
