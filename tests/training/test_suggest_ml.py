"""training/ml/suggest.py: per-segment error probabilities from tiny offline reward models."""

import pytest

from annotation.qa.text import load_splitter, segment_spans
from annotation.qa.vocab import NO_ERROR
from tests.annotation.annotate_data import PASSAGES, QUESTION, RESPONSES
from training.ml.reward_models import PreferenceRewardModel, TokenRewardModel, answer_words_from_segments, token_rm_words
from training.ml.suggest import ResponseInput, score_one_at_a_time, score_responses

TEXTS = ["  " + RESPONSES[1] + " ", *list(RESPONSES.values())[1:], ""]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from training.ml.tiny import build_tiny_reward_models

    paths = build_tiny_reward_models(tmp_path_factory.mktemp("rms"), texts=[QUESTION, *RESPONSES.values()])
    return (TokenRewardModel.load(paths["relevance"]), TokenRewardModel.load(paths["factuality"]),
            PreferenceRewardModel.load(paths["preference"]))


def test_it_scores_sub_sentences_for_r1_and_sentences_for_r2_with_offsets_into_the_text(models):
    r1, r2, preference = models
    nlp, _ = load_splitter()
    items = [ResponseInput(QUESTION, PASSAGES, text) for text in TEXTS]
    results = score_responses(items, nlp=nlp, relevance=r1, factuality=r2, preference=preference, batch_size=2)
    for text, result in zip(TEXTS, results):
        lead = len(text) - len(text.lstrip())
        assert [(s.start, s.end) for s in result.relevance] == [(lead + a, lead + b) for a, b in segment_spans(nlp, text.strip(), "subsentence")]
        assert [(s.start, s.end) for s in result.factuality] == [(lead + a, lead + b) for a, b in segment_spans(nlp, text.strip(), "sentence")]
        assert isinstance(result.preference, float)
    assert results[-1].relevance == [] and results[-1].factuality == []
    # The labels are exactly what the reward model predicts for the same inputs (R1 without, R2 with passages).
    first = results[0]
    words = [text_words.split() for text_words in (TEXTS[0][s.start : s.end] for s in first.relevance)]
    expected = r1.predict([token_rm_words(question=QUESTION, answer_words=answer_words_from_segments(words))])[0]
    assert [s.label for s in first.relevance] == expected
    words = [TEXTS[0][s.start : s.end].split() for s in first.factuality]
    expected = r2.predict([token_rm_words(question=QUESTION, answer_words=answer_words_from_segments(words), passages=PASSAGES)])[0]
    assert [s.label for s in first.factuality] == expected
    assert all((s.label != NO_ERROR) == (s.probability > 0.5) for s in first.relevance + first.factuality)
    assert preference.score([f"question: {QUESTION}"])  # loads and scores


def test_batched_scoring_equals_scoring_one_at_a_time(models):
    r1, r2, preference = models
    nlp, _ = load_splitter()
    items = [ResponseInput(QUESTION, PASSAGES, text) for text in TEXTS]
    batched = score_responses(items, nlp=nlp, relevance=r1, factuality=r2, preference=preference, batch_size=3)
    single = score_one_at_a_time(items, nlp=nlp, relevance=r1, factuality=r2, preference=preference)
    for a, b in zip(batched, single):
        assert [(s.start, s.end, s.label) for s in a.relevance] == [(s.start, s.end, s.label) for s in b.relevance]
        assert [s.probability for s in a.factuality] == pytest.approx([s.probability for s in b.factuality], abs=1e-4)
        assert a.preference == pytest.approx(b.preference, abs=1e-4)
