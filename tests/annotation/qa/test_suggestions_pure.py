"""The pure model-in-the-loop rules (annotation/qa/suggestions.py) on hand-made values."""

import pytest

from annotation.qa import suggestions as sq
from annotation.qa.spans import word_spans
from annotation.qa.vocab import ERROR_TYPES, FACTUAL_ERROR_TYPES, NON_FACTUAL_ERROR_TYPES

IRRELEVANT, REDUNDANT, INCOHERENT, UNVERIFIABLE, WRONG = ERROR_TYPES


@pytest.mark.parametrize("share, expected", [(0.0, 0), (0.2, 20), (0.25, 25), (1.0, 100)])
def test_the_control_group_holds_exactly_the_share_of_items(share, expected):
    assert len(sq.no_suggestion_items(range(1, 101), share=share, seed=3)) == expected


def test_the_control_group_is_stable_for_a_seed_and_changes_with_it():
    ids = list(range(500, 600))
    first = sq.no_suggestion_items(ids, share=0.2, seed=11)
    assert first == sq.no_suggestion_items(reversed(ids), share=0.2, seed=11)
    assert first != sq.no_suggestion_items(ids, share=0.2, seed=12)
    # Raising the share only adds items.
    assert first < sq.no_suggestion_items(ids, share=0.3, seed=11)


def test_uncertainty_is_the_probability_closest_to_one_half_else_the_preference_spread():
    assert sq.uncertainty_key([0.9, 0.45, 0.1]) == pytest.approx(0.05)
    assert sq.uncertainty_key([], [0.5, -1.0, 2.0]) == pytest.approx(3.0)
    assert sq.uncertainty_key([], []) is None


def test_expected_reward_weighs_each_segment_by_its_error_probability():
    # R1 segment p=0.25: 0.75*0.3 + 0.25*-0.3 = 0.15; R2 segment p=1: -0.5.
    assert sq.expected_reward([(sq.RELEVANCE, 0.25), (sq.FACTUALITY, 1.0)]) == pytest.approx(-0.35)


def test_disagreement_is_kendall_tau_between_the_two_rankings():
    assert sq.disagreement_key([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert sq.disagreement_key([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    # One swapped pair of six: (5 - 1) / 6.
    assert sq.disagreement_key([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(4 / 6)
    assert sq.disagreement_key([1, 1, 1, 1], [1, 2, 3, 4]) == 0.0
    assert sq.disagreement_key([1], [2]) is None


def test_word_level_counts_give_precision_recall_and_f1_by_hand():
    text = "one two three four five six"
    words = word_spans(text)  # six words
    predicted = sq.words_in(words, [(0, 13)])  # one two three
    gold = sq.words_in(words, [(8, 18)])  # three four
    counts = sq.Counts()
    counts.add(predicted, gold)
    assert (counts.tp, counts.fp, counts.fn) == (1, 2, 1)
    assert counts.precision == pytest.approx(1 / 3)
    assert counts.recall == pytest.approx(1 / 2)
    assert counts.f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    empty = sq.Counts()
    assert (empty.precision, empty.recall, empty.f1) == (None, None, None)


def test_gold_spans_keep_only_the_suggesters_error_types():
    errors = [{"error type": t, "start": i, "end": i + 1} for i, t in enumerate(ERROR_TYPES)]
    assert {errors[i]["error type"] for i, _ in enumerate(sq.gold_spans(errors, sq.RELEVANCE))} <= set(ERROR_TYPES)
    assert len(sq.gold_spans(errors, sq.RELEVANCE)) == len(NON_FACTUAL_ERROR_TYPES) == 3
    assert sq.gold_spans(errors, sq.FACTUALITY) == [(3, 4), (4, 5)]
    assert {UNVERIFIABLE, WRONG} == FACTUAL_ERROR_TYPES


def test_span_agreement_is_one_when_nobody_marks_anything():
    words = word_spans("a b c d")
    assert sq.span_agreement(words, [], []) == 1.0
    assert sq.span_agreement(words, [(0, 3)], [(2, 5)]) == pytest.approx(0.5)
    assert sq.span_agreement(words, [(0, 1)], []) == 0.0


def test_outline_runs_cut_the_text_at_suggestion_edges_and_cover_it_in_order():
    text = "Alpha beta. Gamma delta, epsilon."
    runs = [{"start": 0, "end": 5, "text": "Alpha", "index": 0}, {"start": 5, "end": len(text), "text": text[5:], "index": None}]
    suggestions = [
        {"id": 7, "start": 12, "end": len(text), "suggester": sq.FACTUALITY, "tag": "R2 80%"},
        {"id": 8, "start": 12, "end": 24, "suggester": sq.RELEVANCE, "tag": "R1 60%"},
    ]
    out = sq.outline_runs(runs, suggestions)
    assert "".join(r["text"] for r in out) == text
    assert all(text[r["start"] : r["end"]] == r["text"] for r in out)
    gamma = next(r for r in out if r["start"] == 12)
    assert gamma["text"] == "Gamma delta," and gamma["sug"] == "7 8" and gamma["sug_first"] == "7 8"
    assert gamma["sug_last"] == "8" and gamma["sug_tag"] == "R1 60%"
    assert gamma["sug_kinds"] == "sug-factuality sug-relevance"
    last = out[-1]
    assert last["text"] == " epsilon." and last["sug"] == "7" and last["sug_last"] == "7"
    assert out[0]["index"] == 0 and out[0]["sug"] == ""


def test_reward_pieces_cover_the_text_with_rewards_only_on_segments():
    text = "One two. Three four."
    pieces = sq.reward_pieces(text, [{"start": 0, "end": 8, "reward": 0.5, "label": "O"}, {"start": 9, "end": 20, "reward": -0.5, "label": "F-ERR"}])
    assert "".join(p["text"] for p in pieces) == text
    assert [p["reward"] for p in pieces] == [0.5, None, -0.5]
