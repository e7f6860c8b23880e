"""Campaign pages: researchers create campaigns and watch progress; annotators start work."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from annotation.forms_campaigns import CampaignForm
from annotation.models import Campaign, Dataset
from annotation.permissions import annotator_required, researcher_required
from annotation.selectors.campaigns import campaign_progress, campaigns_for_researcher
from annotation.services.campaigns import assignment_next, campaign_create as create_campaign, campaign_set_active
from annotation.views.campaign_suggest import suggest_panel_context


@researcher_required
@require_http_methods(["GET"])
def campaign_list(request: HttpRequest) -> HttpResponse:
    return render(request, "annotation/campaigns/list.html", {"rows": campaigns_for_researcher(now=timezone.now())})


@researcher_required
@require_http_methods(["GET", "POST"])
def campaign_create(request: HttpRequest) -> HttpResponse:
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        dataset_id, split = form.cleaned_data["dataset_split"]
        try:
            campaign = create_campaign(
                name=form.cleaned_data["name"],
                dataset=Dataset.objects.get(pk=dataset_id),
                split=split,
                task=form.cleaned_data["task"],
                annotators=form.cleaned_data["annotators"],
                annotators_per_item=form.cleaned_data["annotators_per_item"],
                created_by=request.user,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Campaign “{campaign.name}” created.")
            return redirect("annotation:campaign_detail", pk=campaign.pk)
    status = 422 if request.method == "POST" else 200
    return render(request, "annotation/campaigns/create.html", {"form": form}, status=status)


@researcher_required
@require_http_methods(["GET"])
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign.objects.select_related("dataset", "created_by"), pk=pk)
    progress = campaign_progress(campaign, now=timezone.now(), with_annotators=True)
    template = "annotation/campaigns/detail.html"
    context = {"campaign": campaign, "progress": progress}
    if request.htmx:
        template += "#progress"
    else:
        context.update(suggest_panel_context(campaign))
    return render(request, template, context)


@researcher_required
@require_POST
def campaign_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    campaign_set_active(campaign=campaign, is_active=not campaign.is_active)
    messages.success(request, f"Campaign “{campaign.name}” {'reopened' if campaign.is_active else 'closed'}.")
    return redirect("annotation:campaign_detail", pk=campaign.pk)


@annotator_required
@require_POST
def campaign_start(request: HttpRequest, pk: int) -> HttpResponse:
    """Lease the annotator's next item (or resume the one they hold) and open it."""
    campaign = get_object_or_404(Campaign, pk=pk)
    if not campaign.annotators.filter(pk=request.user.pk).exists():
        raise PermissionDenied("You are not an annotator of this campaign.")
    assignment = assignment_next(campaign=campaign, annotator=request.user)
    if assignment is None:
        messages.info(request, f"Nothing is left for you in “{campaign.name}” right now.")
        return redirect("annotation:my_work")
    return redirect("annotation:annotate", pk=assignment.pk)
