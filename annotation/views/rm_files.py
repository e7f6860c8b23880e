"""Researcher page: build reward-model training files in the background and download them."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseStopPolling

from annotation.models import Dataset, RmDataBuild
from annotation.permissions import researcher_required
from annotation.qa.agreement import LATEST, RULE_LABELS, RULES
from annotation.qa.errors import NotFound, Refused
from annotation.qa.rm_files import OUTPUT_NAMES
from annotation.qa.text import AUTO, SENTENCIZER
from annotation.selectors.rm_files import (
    dataset_split_choices,
    rm_data_build_file,
    rm_data_builds,
    rm_data_builds_active,
)
from annotation.services.rm_files import rm_data_build_request

ACTIVE = (RmDataBuild.Status.QUEUED, RmDataBuild.Status.RUNNING)


class RmDataBuildForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"), to_field_name="name")
    split = forms.SlugField(max_length=32, initial="dev")
    splitter = forms.CharField(
        max_length=100,
        help_text=f"'{AUTO}' (en_core_web_sm if installed, else spaCy's rule-based sentencizer), "
        f"'{SENTENCIZER}', or an installed spaCy model name.",
    )
    aggregate = forms.ChoiceField(
        label="Several annotators",
        choices=[(rule, RULE_LABELS[rule]) for rule in RULES],
        initial=LATEST,
        required=False,  # a post without it (an older form, a script) means the latest rule
        help_text="Which version each example contributes when several annotators labelled it.",
    )


def _page_context(form: RmDataBuildForm) -> dict:
    return {
        "form": form,
        "builds": rm_data_builds(),
        "polling": rm_data_builds_active(),
        "splits": dataset_split_choices(),
        "output_names": OUTPUT_NAMES,
    }


@researcher_required
@require_http_methods(["GET", "POST"])
def rm_data_page(request):
    status = 200
    if request.method == "POST":
        form = RmDataBuildForm(request.POST)
        status = 400  # the form as posted was not accepted
        if form.is_valid():
            try:
                build = rm_data_build_request(
                    dataset=form.cleaned_data["dataset"],
                    split=form.cleaned_data["split"],
                    splitter=form.cleaned_data["splitter"],
                    aggregate=form.cleaned_data["aggregate"] or LATEST,
                    user=request.user,
                )
            except Refused as exc:
                form.add_error(None, str(exc))
                status = exc.status
            else:
                messages.success(request, f"Build #{build.pk} of {build.dataset.name}/{build.split} queued.")
                return redirect("annotation:rm_data")
    else:
        form = RmDataBuildForm(initial={"splitter": settings.SENTENCE_SPLITTER})
    if request.htmx and request.method == "GET":
        response = render(request, "annotation/rm_data.html#builds", _page_context(form))
        # Nothing left to watch: tell htmx to stop polling.
        return response if rm_data_builds_active() else HttpResponseStopPolling(response.content)
    return render(request, "annotation/rm_data.html", _page_context(form), status=status)


@researcher_required
@require_GET
def rm_data_download(request, pk: int, name: str):
    build = get_object_or_404(RmDataBuild, pk=pk)
    path = rm_data_build_file(build=build, name=name)
    if path is None:
        raise NotFound(f"build #{pk} has no {name} file")
    filename = f"{build.dataset.name}-{build.split}-{name}{path.suffix}"
    return FileResponse(path.open("rb"), as_attachment=True, filename=filename, content_type="application/json")
