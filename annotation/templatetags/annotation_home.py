"""The annotation app's cards on the home page, so the home view needs no annotation code."""

from django import template
from django.utils import timezone

from annotation.roles import is_annotator, is_researcher
from annotation.selectors.campaigns import campaigns_for_annotator, campaigns_for_researcher

register = template.Library()


@register.inclusion_tag("annotation/campaigns/_home_cards_body.html", takes_context=True)
def annotation_home_cards(context):
    request = context["request"]
    user = request.user
    now = timezone.now()
    researcher = is_researcher(user)
    open_campaigns = [row for row in campaigns_for_researcher(now=now) if row.campaign.is_active] if researcher else []
    return {
        "request": request,
        "csrf_token": context.get("csrf_token"),
        "cards": campaigns_for_annotator(annotator=user, now=now) if (is_annotator(user) or researcher) else [],
        "is_researcher": researcher,
        "is_annotator": is_annotator(user),
        "open_campaigns": open_campaigns,
    }
