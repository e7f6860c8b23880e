"""The order in which a campaign's queue serves its items (Campaign.order; keys defined in annotation/qa/suggestions.py)."""

from django.db.models import F, FloatField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Cast, Coalesce

from annotation.models import Campaign, CampaignOrder, Example, ItemScore

# The ItemScore field each order sorts on, smallest first.
ORDER_KEYS = {CampaignOrder.UNCERTAIN: "uncertainty", CampaignOrder.DISAGREEMENT: "disagreement", CampaignOrder.RANDOM: "random_key"}
# Items without a key (not scored yet) come after every scored one, in input order.
UNSCORED = 1e6


def queue_ordered(campaign: Campaign, items: QuerySet[Example]) -> QuerySet[Example]:
    """`items` annotated with `queue_key` (smaller is served first) for the campaign's order, and sorted by it."""
    key = ORDER_KEYS.get(campaign.order)
    if key is None:
        return items.annotate(queue_key=Cast(F("position"), FloatField())).order_by("position")
    scored = ItemScore.objects.filter(campaign=campaign, example=OuterRef("pk")).values(key)[:1]
    fallback = Value(UNSCORED) + Cast(F("position"), FloatField())
    return items.annotate(queue_key=Coalesce(Subquery(scored, output_field=FloatField()), fallback)).order_by(
        "queue_key", "position"
    )
