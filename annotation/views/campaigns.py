"""Campaign pages: researchers create campaigns and watch progress; annotators start work."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from annotation.forms_campaigns import CampaignForm, TeamSettingsForm
from annotation.guidelines import default_guidelines
from annotation.models import Campaign, Dataset
from annotation.permissions import annotator_required, researcher_required
from annotation.selectors.campaigns import campaign_progress, campaigns_for_researcher, shared_item_ids
from annotation.selectors.reviews import annotator_times, open_flags, team_agreement
from annotation.services.campaigns import (
    assignment_next,
    campaign_create as create_campaign,
    campaign_set_active,
    campaign_update_team_settings,
)
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
                shared_share=form.cleaned_data["shared_percent"] / 100,
                guidelines=form.cleaned_data["guidelines"],
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
    context.update(team_figures(campaign, progress))
    context.setdefault("settings_form", _settings_form(campaign))
    return render(request, template, context)


def _settings_form(campaign: Campaign, data=None) -> TeamSettingsForm:
    initial = {
        "annotators_per_item": campaign.annotators_per_item,
        "shared_percent": round(100 * campaign.shared_share),
        "guidelines": campaign.guidelines or default_guidelines(),
    }
    return TeamSettingsForm(data, initial=initial)


@researcher_required
@require_POST
def campaign_settings(request: HttpRequest, pk: int) -> HttpResponse:
    """Change the overlap, the share every annotator does and the guidelines."""
    campaign = get_object_or_404(Campaign.objects.select_related("dataset", "created_by"), pk=pk)
    form = _settings_form(campaign, request.POST)
    if form.is_valid():
        try:
            campaign_update_team_settings(
                campaign=campaign,
                annotators_per_item=form.cleaned_data["annotators_per_item"],
                shared_share=form.cleaned_data["shared_percent"] / 100,
                guidelines=form.cleaned_data["guidelines"],
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, "Team settings saved; new items follow them.")
            return redirect("annotation:campaign_detail", pk=campaign.pk)
    campaign.refresh_from_db()
    progress = campaign_progress(campaign, now=timezone.now(), with_annotators=True)
    context = {"campaign": campaign, "progress": progress, "settings_form": form, "settings_open": True,
               **team_figures(campaign, progress)}
    return render(request, "annotation/campaigns/detail.html", context, status=422)


def team_figures(campaign: Campaign, progress) -> dict:
    """Per annotator on the campaign page: time per item and agreement with the others; flags; shared items."""
    times = annotator_times(campaign)
    agreement = team_agreement(campaign)
    for row in progress.annotators:
        row.time = times.get(row.user.pk)
        row.agreement = agreement.get(row.user.get_username())
    kinds = [k.kind for k in progress.kinds]
    return {"open_flags": open_flags(campaign), "shared_items": len(shared_item_ids(campaign, kinds[0])) if kinds else 0}


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
