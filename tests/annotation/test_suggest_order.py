"""The queue serves items in the campaign's order: uncertain, disagreement, random (seeded), input."""

import pytest

from annotation.models import CampaignOrder, ItemScore, Suggestion
from annotation.qa import suggestions as sq
from annotation.services.campaigns import assignment_next, assignment_skip
from annotation.services.suggestions import campaign_suggest_settings_save, item_scores_refresh
from tests.annotation.annotate_data import make_campaign, make_dataset

pytestmark = pytest.mark.django_db


def _served(campaign, annotator) -> list[int]:
    """Positions of the items the queue hands out, one after another (each skipped to get the next)."""
    order = []
    while (item := assignment_next(campaign=campaign, annotator=annotator)) is not None:
        order.append(item.example.position)
        assignment_skip(assignment=item)
    return order


def _whole(campaign, response, suggester, p, position=0):
    Suggestion.objects.create(campaign=campaign, response=response, suggester=suggester, position=position,
                              start=0, end=len(response.text), label="F-ERR" if p > 0.5 else "O", probability=p)


def _set_order(campaign, order, seed=0):
    campaign_suggest_settings_save(campaign=campaign, runs={}, no_suggestion_share=0.2, order=order, order_seed=seed)


def _examples(campaign):
    return list(campaign.dataset.examples.order_by("position"))


def test_uncertain_serves_probabilities_closest_to_one_half_first_then_preference_spread_then_unscored(annotator):
    campaign = make_campaign(make_dataset(examples=5), [annotator])
    ex = _examples(campaign)
    first = [e.responses.get(number=1) for e in ex]
    _whole(campaign, first[0], sq.RELEVANCE, 0.9)  # key 0.4
    _whole(campaign, first[1], sq.FACTUALITY, 0.55)  # key 0.05
    _whole(campaign, first[2], sq.RELEVANCE, 0.3)  # keys 0.2 and 0.3: 0.2
    _whole(campaign, first[2], sq.FACTUALITY, 0.8)
    ItemScore.objects.create(campaign=campaign, example=ex[3], scores={"preference": {"1": 0.1, "2": 0.12, "3": 0.0, "4": 0.05}})  # 0.12
    # ex[4] has no scores: served last.
    _set_order(campaign, CampaignOrder.UNCERTAIN)
    assert _served(campaign, annotator) == [1, 3, 2, 0, 4]


def test_disagreement_serves_items_whose_two_rankings_are_most_opposed_first(annotator):
    campaign = make_campaign(make_dataset(examples=4), [annotator])
    ex = _examples(campaign)
    # Error probabilities per answer 1-4 (the expected fine-grained reward falls as p rises) and preference scores.
    crafted = {
        0: ([0.1, 0.2, 0.3, 0.4], [4.0, 3.0, 2.0, 1.0]),  # same ranking: tau 1
        1: ([0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 4.0]),  # reversed: tau -1
        2: ([0.1, 0.2, 0.3, 0.4], [4.0, 3.0, 1.0, 2.0]),  # one pair swapped: tau 4/6
        3: ([0.1, 0.2, 0.3, 0.4], None),  # no preference model scores: last
    }
    for index, (probabilities, preference) in crafted.items():
        for number, p in enumerate(probabilities, start=1):
            _whole(campaign, ex[index].responses.get(number=number), sq.FACTUALITY, p)
        if preference:
            ItemScore.objects.create(campaign=campaign, example=ex[index],
                                     scores={"preference": {str(n): v for n, v in enumerate(preference, start=1)}})
    _set_order(campaign, CampaignOrder.DISAGREEMENT)
    keys = dict(ItemScore.objects.filter(campaign=campaign).values_list("example__position", "disagreement"))
    assert keys[0] == pytest.approx(1.0) and keys[1] == pytest.approx(-1.0) and keys[2] == pytest.approx(4 / 6)
    assert keys[3] is None
    assert _served(campaign, annotator) == [1, 2, 0, 3]


def test_random_order_follows_the_seeded_keys_and_is_the_same_for_the_same_seed(annotator, make_user):
    campaign = make_campaign(make_dataset(examples=6), [annotator])
    ex = _examples(campaign)
    _set_order(campaign, CampaignOrder.RANDOM, seed=7)
    expected = [e.position for e in sorted(ex, key=lambda e: sq.random_key(e.pk, seed=7))]
    assert _served(campaign, annotator) == expected
    other = make_user("bob", role="annotator")
    campaign.annotators.add(other)
    assert _served(campaign, other) == expected  # stable for the seed
    _set_order(campaign, CampaignOrder.RANDOM, seed=8)
    third = make_user("cyd", role="annotator")
    campaign.annotators.add(third)
    reseeded = _served(campaign, third)
    assert sorted(reseeded) == sorted(expected) and reseeded != expected


def test_input_order_is_untouched(annotator):
    campaign = make_campaign(make_dataset(examples=3), [annotator])
    ex = _examples(campaign)
    ItemScore.objects.create(campaign=campaign, example=ex[2], uncertainty=0.0)
    item_scores_refresh(campaign=campaign)
    assert _served(campaign, annotator) == [0, 1, 2]
