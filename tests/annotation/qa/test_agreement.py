"""Agreement figures and the majority rule against hand-computed cases (annotation.qa.agreement)."""


import krippendorff
import numpy as np
import pytest

from annotation.qa.agreement import (
    agreement,
    annotator_agreement,
    disagreement_order,
    item_agreement,
    majority,
    majority_preference,
    majority_spans,
    word_labels,
)
from annotation.qa.vocab import ERROR_TYPES, INCOHERENT, IRRELEVANT, REDUNDANT, UNVERIFIABLE

TEXT = "a b c d"  # words at 0-1, 2-3, 4-5, 6-7


def ann(errors, preference, prediction=TEXT):
    return {"prediction": prediction, "errors": errors, "preference": preference}


# X: "a" Irrelevant; Y: "a b" Irrelevant; Z: no span and no comparison. A second item has X alone.
ITEMS = [
    {
        "X": ann([(0, 1, IRRELEVANT)], [1, 1, 1, 0, 0, 0]),
        "Y": ann([(0, 3, IRRELEVANT)], [1, 1, 2, 0, 0, 0]),
        "Z": ann([], None),
    },
    {"X": ann([(0, 1, REDUNDANT)], [2, 2, 2, 2, 2, 2], prediction="e f")},
]


def test_it_computes_errors_alpha_by_hand():
    # Units (words) with values: a {I, I, N}, b {I, N, N}, c {N, N, N}, d {N, N, N}.
    # Coincidences (m_u = 3): o_II = 1, o_IN = o_NI = 2, o_NN = 7; n = 12, n_I = 3, n_N = 9.
    # D_o = 4/12, D_e = 2*3*9 / (12*11) = 54/132, alpha = 1 - (4/12)/(54/132) = 30/162.
    figures = agreement(ITEMS)
    assert figures["errors"]["alpha"] == pytest.approx(30 / 162)
    # Irrelevant is the only type used: its binary alpha is the same figure.
    assert figures["errors"]["per_type"][IRRELEVANT] == pytest.approx(30 / 162)


def test_a_type_with_no_variation_is_undefined():
    figures = agreement(ITEMS)
    # Redundant appears only in the item X annotated alone, which is ignored: all shared words are 0.
    for error_type in set(ERROR_TYPES) - {IRRELEVANT}:
        assert figures["errors"]["per_type"][error_type] is None


def test_it_computes_preference_alpha_by_hand_ignoring_a_unit_with_one_annotator():
    # Z gave no preference, so each unit has X and Y: (1,1) (1,1) (1,2) (0,0) (0,0) (0,0).
    # o_11 = 4, o_12 = o_21 = 1, o_00 = 6; n = 12, n_0 = 6, n_1 = 5, n_2 = 1.
    # D_o = 2/12, D_e = 2*(30 + 6 + 5)/132 = 82/132, alpha = 1 - (2/12)/(82/132) = 720/984.
    # The second item (X alone, all 2s) would change every count if it were not ignored.
    figures = agreement(ITEMS)
    assert figures["preference"]["alpha"] == pytest.approx(720 / 984)
    assert figures["items"] == 1
    assert figures["annotators"] == ["X", "Y", "Z"]


def test_it_agrees_with_krippendorff_on_a_reliability_matrix():
    # The same preference units as a coders x units matrix, NaN for missing values.
    data = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 2, 0, 0, 0], [np.nan] * 6])
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert agreement(ITEMS)["preference"]["alpha"] == pytest.approx(expected)


def test_it_computes_exact_span_f1_by_hand():
    items = [
        {"A": ann([(0, 1, IRRELEVANT), (4, 5, INCOHERENT)], None), "B": ann([(0, 1, IRRELEVANT)], None)},
        {"A": ann([], None), "B": ann([(2, 3, UNVERIFIABLE)], None), "C": ann([(2, 3, UNVERIFIABLE)], None)},
        # Same span, other type: not a true positive.
        {"A": ann([(6, 7, REDUNDANT)], None), "C": ann([(6, 7, IRRELEVANT)], None)},
    ]
    # A-B: TP = 1 over items 1-2, |A| + |B| = 2 + 2 -> 2*1/4 = 0.5.
    # A-C: TP = 0, |A| + |C| = 1 + 2 -> 0.  B-C: TP = 1, |B| + |C| = 1 + 1 -> 1.0.
    figures = agreement(items)
    assert figures["errors"]["span_f1_exact"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert figures["preference"]["alpha"] is None  # nobody compared


def test_everything_is_undefined_without_two_annotators():
    figures = agreement([{"X": ann([(0, 1, IRRELEVANT)], [1, 1, 1, 1, 1, 1])}])
    assert figures == {
        "items": 0,
        "annotators": [],
        "preference": {"alpha": None},
        "errors": {"alpha": None, "per_type": dict.fromkeys(ERROR_TYPES), "span_f1_exact": None},
    }


def test_perfect_agreement_with_variation_is_one():
    items = [{"X": ann([(0, 3, IRRELEVANT)], [1, 2, 0, 1, 2, 0]), "Y": ann([(0, 3, IRRELEVANT)], [1, 2, 0, 1, 2, 0])}]
    figures = agreement(items)
    assert figures["preference"]["alpha"] == 1.0
    assert figures["errors"]["alpha"] == 1.0
    assert figures["errors"]["span_f1_exact"] == 1.0


def test_a_word_takes_the_type_of_a_span_holding_any_of_its_characters():
    labels = word_labels("alpha beta gamma", [(2, 7, REDUNDANT)])
    assert labels.tolist() == [1 + ERROR_TYPES.index(REDUNDANT), 1 + ERROR_TYPES.index(REDUNDANT), 0]


def test_each_annotator_is_measured_against_the_others_pairwise():
    per = annotator_agreement(ITEMS)
    # X and Y alone on the preference units: the same six units as above (Z gave none).
    assert per["X"]["others"]["Y"]["preference_alpha"] == pytest.approx(720 / 984)
    assert per["X"]["others"]["Z"]["preference_alpha"] is None
    assert per["X"]["preference_alpha"] == pytest.approx(720 / 984)
    # X vs Z on words: a {I, N}, b {N, N}, c, d {N, N}: o_IN = o_NI = 1, o_NN = 6, n = 8, n_I = 1, n_N = 7.
    # D_o = 2/8, D_e = 2*7/56, alpha = 1 - (2/8)/(14/56) = 0.
    assert per["X"]["others"]["Z"]["errors_alpha"] == pytest.approx(0.0)
    assert per["Z"]["items"] == 1 and set(per["Z"]["others"]) == {"X", "Y"}


def test_items_are_ordered_by_disagreement_most_first():
    calm = {"X": ann([(0, 1, IRRELEVANT)], [1] * 6), "Y": ann([(0, 1, IRRELEVANT)], [1] * 6)}
    stormy = {"X": ann([(0, 7, IRRELEVANT)], [1] * 6), "Y": ann([], [2] * 6)}
    lonely = {"X": ann([], [1] * 6)}
    assert item_agreement(calm)["disagreement"] == 0.0
    # Words: 0 of 4 pairs agree; preferences: 0 of 6 -> disagreement 1.
    assert item_agreement(stormy)["disagreement"] == 1.0
    assert item_agreement(lonely)["disagreement"] is None
    order = disagreement_order([("calm", item_agreement(calm)), ("lonely", item_agreement(lonely)), ("stormy", item_agreement(stormy))])
    assert [key for key, _ in order] == ["stormy", "calm", "lonely"]


def block(errors, corrected="", missing=()):
    return {
        "errors": [{"error type": t, "explanation": x, "start": s, "end": e} for s, e, t, x in errors],
        "missing-info": list(missing),
        "corrected-prediction": corrected,
    }


def test_majority_keeps_words_more_than_half_marked_and_rebuilds_spans():
    text = "one two three four five six"  # 0-3 4-7 8-13 14-18 19-23 24-27
    annotations = {
        "A": {"feedback": block([(0, 7, IRRELEVANT, ""), (14, 23, REDUNDANT, "repeats x")], "fix A"), "preference": [1, 1, 1, 2, 2, 0]},
        "B": {"feedback": block([(4, 13, IRRELEVANT, ""), (19, 23, REDUNDANT, "repeats y")], "fix B"), "preference": [1, 2, 1, 2, 0, 0]},
        "C": {"feedback": block([(24, 27, INCOHERENT, "")], "fix C", [{"error type": "Missing-Answer", "passage_id": 1, "sentence_id": [1]}]), "preference": [2, 0, 1, 1, 1, 0]},
        "D": {"feedback": block([(4, 7, IRRELEVANT, "")], "fix D"), "preference": None},
    }
    # Four annotators gave spans: a word needs 3 votes. "two": A, B, D Irrelevant -> kept; "one": A only;
    # "three": B only; "five": A, B Redundant (2 of 4) -> not kept.
    result = majority(text, annotations)
    assert [(e["start"], e["end"], e["error type"]) for e in result["feedback"]["errors"]] == [(4, 7, IRRELEVANT)]
    # Three preferences (D gave none): per pair the value two of three gave, else 0.
    assert result["preference"] == [1, 0, 1, 2, 0, 0]
    # Distances to the majority: D has exactly the span (0 words) but no preference (6); B differs on two
    # words ("three", "five") and one pair -> 3; A: "one", "four", "five" + 2 pairs -> 5; C: 2 words + 3 -> 5.
    assert result["closest"] == "B"
    assert result["feedback"]["corrected-prediction"] == "fix B"


def test_majority_joins_consecutive_words_of_one_type_and_splits_at_another():
    text = "w0 w1 w2 w3 w4"  # words at 0, 3, 6, 9, 12
    a = [(0, 5, IRRELEVANT), (6, 11, REDUNDANT)]
    b = [(0, 2, IRRELEVANT), (3, 5, IRRELEVANT), (6, 14, REDUNDANT)]
    c = [(0, 8, IRRELEVANT)]
    # w0 w1: Irrelevant by all; w2: Redundant by a and b; w3: Redundant by a, b; w4: b only.
    # Between w0 and w1 only b cuts (1 of 3): one span. w2-w3 run of Redundant.
    assert majority_spans(text, [a, b, c]) == [(0, 5, IRRELEVANT), (6, 11, REDUNDANT)]


def test_majority_keeps_a_cut_that_most_annotators_made():
    text = "w0 w1 w2"
    two = [(0, 2, IRRELEVANT), (3, 8, IRRELEVANT)]
    one = [(0, 8, IRRELEVANT)]
    assert majority_spans(text, [two, two, one]) == two
    assert majority_spans(text, [two, one, one]) == one


def test_the_majority_of_identical_annotations_is_that_annotation(qa_feedback_dir):
    import json

    for record in json.loads((qa_feedback_dir / "dev_feedback.json").read_text()):
        same = {"feedback": record["feedback"], "preference": record["preference"]}
        result = majority(record["prediction 1"], {"a": same, "b": same, "c": same})
        assert result["feedback"]["errors"] == sorted(record["feedback"]["errors"], key=lambda e: e["start"])
        assert result["preference"] == record["preference"]


def test_majority_preference_ties_give_no_preference():
    assert majority_preference([[1, 2, 0, 0, 0, 0], [2, 2, 0, 1, 1, 1]]) == [0, 2, 0, 0, 0, 0]
    assert majority_preference([]) is None


def test_majority_explanation_comes_from_an_overlapping_span_of_that_type_first_annotator_on_a_tie():
    text = "one two three"
    annotations = {
        "A": {"feedback": block([(0, 13, REDUNDANT, "long")]), "preference": None},
        "B": {"feedback": block([(4, 7, REDUNDANT, "short")]), "preference": None},
    }
    result = majority(text, annotations)
    assert result["feedback"]["errors"] == [{"error type": REDUNDANT, "explanation": "long", "start": 4, "end": 7}]
