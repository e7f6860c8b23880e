"""The order in which a campaign's queue serves its items (Campaign.order; keys defined in annotation/qa/suggestions.py)."""

from annotation.models import Campaign, CampaignOrder

# The ItemScore column each order sorts on, smallest first.
ORDER_KEYS = {CampaignOrder.UNCERTAIN: "uncertainty", CampaignOrder.DISAGREEMENT: "disagreement", CampaignOrder.RANDOM: "random_key"}
# Items without a key (not scored yet) come after every scored one, in input order.
UNSCORED = 1e6


def queue_order_sql(campaign: Campaign, example: str) -> tuple[str, list, str]:
    """SQL for the queue key of the example row aliased `example` (smaller is served first), its parameters,
    and the ORDER BY that serves the queue (key, then position).

    Input order sorts on the position column itself, so that the database
    can walk the position index and stop at the first open item.
    """
    position = f"{example}.position"
    key = ORDER_KEYS.get(campaign.order)
    if key is None:
        return f"CAST({position} AS DOUBLE PRECISION)", [], position
    scored = f"SELECT s.{key} FROM annotation_itemscore s WHERE s.campaign_id = %s AND s.example_id = {example}.id"
    return f"COALESCE(({scored}), {UNSCORED!r} + CAST({position} AS DOUBLE PRECISION))", [campaign.pk], f"queue_key, {position}"
