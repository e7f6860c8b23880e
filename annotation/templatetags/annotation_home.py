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


@register.simple_tag(takes_context=True)
def annotation_start_state(context) -> dict:
    """What the empty "My work" page can honestly suggest: whether a Start button is shown above it,
    whether the user is in any open campaign at all, and whether they may be added to one."""
    user = context["request"].user
    annotator = is_annotator(user)
    cards = campaigns_for_annotator(annotator=user, now=timezone.now()) if (annotator or is_researcher(user)) else []
    return {
        "startable": any(card.has_work for card in cards),
        "in_campaigns": bool(cards),
        # Campaigns list accounts with the annotator role only.
        "can_be_added": annotator,
    }
