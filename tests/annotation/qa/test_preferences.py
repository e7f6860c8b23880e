from itertools import product

from annotation.qa.preferences import intransitive_cycles, pair_index, unanswered
from annotation.qa.vocab import PREFERENCE_PAIRS


def test_it_orders_pairs_like_the_qa_feedback_preference_list():
    assert PREFERENCE_PAIRS == ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))
    assert pair_index(2, 4) == 4


def test_it_finds_no_cycle_in_a_strict_ranking():
    # 1 > 2 > 3 > 4
    assert intransitive_cycles([1, 1, 1, 1, 1, 1]) == []


def test_it_finds_no_cycle_in_a_ranking_with_ties():
    # 1 = 2 > 3 = 4
    assert intransitive_cycles([0, 1, 1, 1, 1, 0]) == []


def test_it_names_a_three_way_cycle():
    # 1 > 2, 2 > 3, 3 > 1; response 4 loses to all.
    preference = [1, 2, 1, 1, 1, 2]
    preference[pair_index(3, 4)] = 1
    assert intransitive_cycles(preference) == ["1 > 2, 2 > 3, 3 > 1"]


def test_it_flags_ties_that_cannot_hold_together():
    # 1 = 2 and 2 = 3 but 1 > 3.
    preference = [None] * 6
    preference[pair_index(1, 2)] = 0
    preference[pair_index(2, 3)] = 0
    preference[pair_index(1, 3)] = 1
    assert intransitive_cycles(preference) == ["1 = 2, 2 = 3, 1 > 3"]


def test_it_ignores_unanswered_pairs():
    preference = [1, None, None, 1, None, None]  # 1 > 2, 2 > 3: 1 vs 3 still open
    assert intransitive_cycles(preference) == []
    assert unanswered(preference) == ["1 vs 3", "1 vs 4", "2 vs 4", "3 vs 4"]


def test_it_flags_a_four_way_cycle_with_only_the_cycle_answered():
    preference = [None] * 6
    preference[pair_index(1, 2)] = 1  # 1 > 2
    preference[pair_index(2, 3)] = 1  # 2 > 3
    preference[pair_index(3, 4)] = 1  # 3 > 4
    preference[pair_index(1, 4)] = 2  # 4 > 1
    assert intransitive_cycles(preference) == ["1 > 2, 4 > 1, 2 > 3, 3 > 4"]


def test_it_never_flags_answers_read_off_a_ranking():
    for ranks in product(range(4), repeat=4):
        assert intransitive_cycles(_answers(ranks)) == [], ranks


def test_it_flags_every_complete_answer_set_that_no_ranking_explains():
    rankings = {tuple(_answers(ranks)) for ranks in product(range(4), repeat=4)}
    flagged = 0
    for answers in product((0, 1, 2), repeat=6):
        cycles = intransitive_cycles(list(answers))
        assert bool(cycles) == (answers not in rankings)
        flagged += bool(cycles)
    assert flagged == 3**6 - len(rankings)


def _answers(ranks):
    return [0 if ranks[a - 1] == ranks[b - 1] else (1 if ranks[a - 1] < ranks[b - 1] else 2) for a, b in PREFERENCE_PAIRS]


def test_a_kept_result_is_a_fresh_list_each_time():
    preference = [1, 2, None, 1, None, None]  # 1 > 2, 3 > 1, 2 > 3: a cycle
    first = intransitive_cycles(preference)
    first.append("changed by a caller")
    assert intransitive_cycles(list(preference)) == ["1 > 2, 2 > 3, 3 > 1"]
    assert intransitive_cycles(tuple(preference)) is not intransitive_cycles(preference)
