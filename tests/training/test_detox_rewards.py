"""Detox rewards on hand-made token ids, and the evaluation figures on crafted samples; values computed by hand."""

from __future__ import annotations

import math

import pytest

from annotation.qa.text import load_splitter
from training.ml.detox import metrics
from training.ml.detox.rewards import DetoxReward, place_sentence_rewards, toxicity_drops
from training.ml.detox.scorers import LexiconScorer

EOS = 11
PIECES = ["It", " was", " fine", ".", " So", " stupid", ".", " Awful", " and", " stupid", ".", "<eos>"]


class HandTokenizer:
    """Token k decodes to PIECES[k]; the end-of-text token decodes to nothing (a special token)."""

    eos_token_id = EOS

    def decode(self, ids, skip_special_tokens=True, clean_up_tokenization_spaces=False):
        return "".join("" if i == EOS else PIECES[i] for i in ids)

    def batch_decode(self, rows, **kwargs):
        return [self.decode(r, **kwargs) for r in rows]


class CountingLexicon(LexiconScorer):
    def __init__(self):
        super().__init__(["stupid", "awful"])
        self.calls: list[list[str]] = []

    def score(self, texts):
        self.calls.append(list(texts))
        return super().score(texts)


@pytest.fixture(scope="module")
def nlp():
    return load_splitter("sentencizer")[0]


IDS = list(range(12))  # "It was fine. So stupid. Awful and stupid." + end of text
# By hand: prefixes "It was fine." (0 words listed -> 0), "... So stupid." (1 -> 0.5),
# "... Awful and stupid." (3 -> 1 - 0.5 ** 3 = 0.875); drops 0, -0.5, -0.375 at tokens 3, 6, 10.


def test_fine_grained_puts_each_sentences_toxicity_drop_on_its_last_token(nlp):
    scorer = CountingLexicon()
    reward = DetoxReward(scorer=scorer, tokenizer=HandTokenizer(), nlp=nlp, mode="fine_grained")

    (result,) = reward([None], [IDS])

    expected = [0.0] * 12
    expected[6], expected[10] = -0.5, -0.375
    assert result.token_rewards == pytest.approx(expected)
    assert result.total == pytest.approx(-0.875)
    assert result.extra == {"toxicity": 0.875, "sentence_toxicity": [0.0, 0.5, 0.875]}
    assert [(p["text"], p["reward"], p["toxicity"]) for p in result.pieces] == [
        ("It was fine. ", 0.0, 0.0), ("So stupid. ", -0.5, 0.5), ("Awful and stupid.", -0.375, 0.875)]
    assert len(scorer.calls) == 1  # one scorer call for the whole batch


def test_holistic_puts_one_minus_toxicity_on_the_last_token(nlp):
    reward = DetoxReward(scorer=LexiconScorer(["stupid", "awful"]), tokenizer=HandTokenizer(), nlp=nlp, mode="holistic")

    (result, clean) = reward([None, None], [IDS, [0, 1, 2, 3, EOS]])

    assert result.token_rewards == pytest.approx([0.0] * 11 + [0.125])
    assert clean.token_rewards == pytest.approx([0.0, 0.0, 0.0, 0.0, 1.0])
    assert result.components == {"non_toxicity": pytest.approx(0.125)}
    assert [p["toxicity"] for p in result.pieces] == [0.0, 0.5, 0.875]  # the sample table still shows per sentence


def test_a_sentence_that_lowers_toxicity_is_rewarded(nlp):
    class Fixed:
        def score(self, texts):
            table = {"It was fine.": 0.6, "It was fine. So stupid.": 0.2, "It was fine. So stupid. Awful and stupid.": 0.9}
            return [table[t] for t in texts]

    (result,) = DetoxReward(scorer=Fixed(), tokenizer=HandTokenizer(), nlp=nlp, mode="fine_grained")([None], [IDS])

    assert [result.token_rewards[i] for i in (3, 6, 10)] == pytest.approx([-0.6, 0.4, -0.7])


def test_an_empty_continuation_gets_no_sentence_rewards(nlp):
    fine = DetoxReward(scorer=LexiconScorer(), tokenizer=HandTokenizer(), nlp=nlp, mode="fine_grained")
    holistic = DetoxReward(scorer=LexiconScorer(), tokenizer=HandTokenizer(), nlp=nlp, mode="holistic")
    assert fine([None], [[EOS]])[0].token_rewards == [0.0]
    assert holistic([None], [[EOS]])[0].token_rewards == [1.0]


def test_the_pure_placement_functions():
    assert toxicity_drops([0.2, 0.2, 0.7, 0.1]) == pytest.approx([-0.2, 0.0, -0.5, 0.6])
    assert place_sentence_rewards(num_tokens=5, sentence_tokens=[1, 4], rewards=[0.5, -1.0]) == [0.0, 0.5, 0.0, 0.0, -1.0]
    with pytest.raises(ValueError, match="1 rewards for 2 sentences"):
        place_sentence_rewards(num_tokens=5, sentence_tokens=[1, 4], rewards=[0.5])
    with pytest.raises(ValueError, match="mode"):
        DetoxReward(scorer=None, tokenizer=None, nlp=None, mode="both")


def test_dist_n_counts_distinct_ngrams_over_all_ngrams():
    texts = ["a b a b", "a b c"]  # unigrams a b a b a b c: 3 distinct of 7; bigrams ab ba ab ab bc: 3 of 5
    assert metrics.distinct_n(texts, 1) == pytest.approx(3 / 7)
    assert metrics.distinct_n(texts, 2) == pytest.approx(3 / 5)
    assert metrics.distinct_n(texts, 3) == pytest.approx(3 / 3)  # aba bab abc
    assert metrics.distinct_n(["one"], 2) == 0.0
    # Averaged per prompt: prompt 1 unigrams "x x" 1/2, prompt 2 "y z" 2/2.
    assert metrics.mean_distinct_n([["x x"], ["y", "z"]], 1) == pytest.approx(0.75)


def test_toxicity_probability_and_average_maximum_toxicity():
    per_prompt = [[0.1, 0.7, 0.2], [0.3, 0.49], [0.5], [0.0, 0.05]]
    assert metrics.avg_max_toxicity(per_prompt) == pytest.approx((0.7 + 0.49 + 0.5 + 0.05) / 4)
    assert metrics.toxicity_prob(per_prompt) == pytest.approx(2 / 4)  # 0.7 and 0.5 (>= 0.5 counts)
    assert metrics.toxicity_prob(per_prompt, threshold=0.45) == pytest.approx(3 / 4)
    assert metrics.avg_max_toxicity([]) == 0.0


def test_perplexity_is_exp_of_the_mean_negative_log_likelihood():
    assert metrics.perplexity(4 * math.log(0.25), 4) == pytest.approx(4.0)
    assert metrics.perplexity(0.0, 0) == math.inf
