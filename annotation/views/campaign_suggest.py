"""The campaign page's model-in-the-loop panel: suggesters and order, scoring in the background, bias check, metrics."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotation.forms_suggest import SuggestSettingsForm
from annotation.models import Campaign
from annotation.permissions import researcher_required
from annotation.qa.errors import Refused
from annotation.selectors.suggestions import campaign_suggest_overview
from annotation.services.suggestions import campaign_suggest_settings_save, suggestion_job_request

PANEL = "annotation/campaigns/_suggest.html"


def suggest_panel_context(campaign: Campaign, form: SuggestSettingsForm | None = None) -> dict:
    return {"suggest": campaign_suggest_overview(campaign), "suggest_form": form or SuggestSettingsForm.for_campaign(campaign)}


@researcher_required
@require_GET
def campaign_suggest_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The panel alone (polled while a scoring job runs)."""
    campaign = get_object_or_404(Campaign, pk=pk)
    return render(request, PANEL + "#suggest-job", {"campaign": campaign, **suggest_panel_context(campaign)})


@researcher_required
@require_POST
def campaign_suggest_settings(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    form = SuggestSettingsForm.for_campaign(campaign, request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            campaign_suggest_settings_save(
                campaign=campaign,
                runs={role: data[role].pk if data[role] else None for role in ("relevance", "factuality", "preference")},
                no_suggestion_share=data["no_suggestion_percent"] / 100,
                order=data["order"],
                order_seed=data["order_seed"],
            )
        except Refused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Suggestion and queue settings saved.")
            return redirect("annotation:campaign_detail", pk=campaign.pk)
    return render(request, "annotation/campaigns/suggest_settings.html",
                  {"campaign": campaign, **suggest_panel_context(campaign, form)}, status=422)


@researcher_required
@require_POST
def campaign_suggest_score(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    suggestion_job_request(campaign=campaign, user=request.user)
    messages.success(request, "Scoring started: the responses are being scored on the GPU queue.")
    return redirect("annotation:campaign_detail", pk=campaign.pk)
