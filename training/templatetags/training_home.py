"""The training app's card on the home page, so the home view needs no training code."""

from django import template

from annotation.roles import is_researcher
from training.models import RunStatus, TrainingRun

register = template.Library()


@register.inclusion_tag("training/_home_card_body.html", takes_context=True)
def training_home_card(context):
    user = context["request"].user
    if not is_researcher(user):
        return {"show": False}
    runs = TrainingRun.objects.order_by("-created_at")
    return {
        "show": True,
        "active": runs.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).count(),
        "recent": list(runs[:4]),
    }
