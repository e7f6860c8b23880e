"""Sentence and sub-sentence splitting (annotation/qa/text.py): pure, no database."""

import random
from itertools import pairwise

import pytest

from annotation.qa import text as splitting
from annotation.qa.text import (
    SplitterNotAvailable,
    load_splitter,
    segment_spans,
    sentence_words,
    sentences_many,
    split_sentences,
    split_subsentences,
    subsentence_starts,
    subsentence_words,
)
from annotation.qa.vocab import SENTENCE, SUBSENTENCE


@pytest.fixture(scope="module")
def nlp():
    return load_splitter("sentencizer")[0]


def test_it_resolves_the_sentencizer_by_name():
    _, name = load_splitter("sentencizer")
    assert name == "sentencizer"


def test_it_loads_each_pipeline_once():
    assert load_splitter("sentencizer")[0] is load_splitter("sentencizer")[0]


def test_it_resolves_auto_to_the_model_when_installed_else_the_sentencizer():
    import spacy.util

    expected = "en_core_web_sm" if spacy.util.is_package("en_core_web_sm") else "sentencizer"
    assert load_splitter("auto")[1] == expected


def test_it_reads_the_default_splitter_from_the_environment(monkeypatch):
    monkeypatch.setenv("SENTENCE_SPLITTER", "sentencizer")
    assert load_splitter()[1] == "sentencizer"
    monkeypatch.setenv("SENTENCE_SPLITTER", "")
    assert splitting.default_splitter_name() == "auto"


def test_it_names_an_unknown_splitter_in_the_error():
    with pytest.raises(SplitterNotAvailable, match="no_such_spacy_model"):
        load_splitter("no_such_spacy_model")


def test_it_splits_sentences_into_whitespace_words(nlp):
    assert split_sentences(nlp, "The cat sat.  It was\nhappy. ") == [["The", "cat", "sat."], ["It", "was", "happy."]]


def test_it_keeps_the_pieces_of_a_word_spacy_splits_between_sentences(nlp):
    words = sentence_words(nlp, "It ended in victory.She left.")
    assert [[w.text for w in s] for s in words] == [["It", "ended", "in", "victory."], ["She", "left."]]
    assert words[1][0].start == "It ended in victory.She left.".index("She")


def test_it_returns_no_sentences_for_blank_text(nlp):
    assert split_sentences(nlp, "") == []
    assert split_sentences(nlp, " \n\t ") == []
    assert segment_spans(nlp, "   ", SENTENCE) == []
    assert sentences_many(nlp, ["", "One. Two.", "  "])[0] == []


def test_it_splits_many_texts_like_one_at_a_time(nlp):
    texts = ["One here. Two there.", "", "Alpha, beta; gamma!", "Ünïcode — text. ok"]
    assert sentences_many(nlp, texts) == [splitting.sentences(nlp, t) for t in texts]


def test_it_cuts_a_sub_sentence_after_a_comma_when_enough_words_follow():
    words = ["one", "two", "three", "four", "five", "six,", "seven", "eight", "nine", "ten", "eleven", "twelve"]
    starts = subsentence_starts(words)
    assert [w for w, s in zip(words, starts) if s] == ["one", "seven"]


def test_it_never_leaves_fewer_than_five_words_after_a_cut():
    words = ["one", "two", "three", "four", "five", "six,", "seven", "eight", "nine", "ten", "eleven"]
    # i + 5 < len(words) fails for "seven" (6 + 5 == 11).
    assert subsentence_starts(words) == [True] + [False] * (len(words) - 1)


def test_it_does_not_cut_a_short_first_sub_sentence():
    words = ["Yes,", "it", "is", "true", "that", "the", "sky", "is", "blue"]
    assert subsentence_starts(words) == [True] + [False] * (len(words) - 1)


def test_it_moves_the_start_of_a_short_later_sub_sentence_to_the_new_cut():
    words = ["a", "b", "c", "d", "e", "f,", "g", "h;", "i", "j", "k", "l", "m", "n", "o"]
    starts = subsentence_starts(words)
    # "g" starts a sub-sentence after "f,"; "i" comes only 2 words later, so the cut moves to "i".
    assert [w for w, s in zip(words, starts) if s] == ["a", "i"]


@pytest.mark.parametrize("end_char", list(",;!?"))
def test_it_cuts_after_each_sub_sentence_punctuation(end_char):
    words = f"one two three four five six{end_char} seven eight nine ten eleven twelve".split()
    assert sum(subsentence_starts(words)) == 2


def test_it_does_not_cut_after_other_punctuation():
    words = ["one", "two", "three", "four", "five", "six:", "seven", "eight", "nine", "ten", "eleven", "twelve"]
    assert sum(subsentence_starts(words)) == 1


def test_sub_sentences_never_cross_a_sentence_end(nlp):
    text = "One two three four five six, seven eight nine ten eleven. Twelve, thirteen fourteen."
    subs = split_subsentences(nlp, text)
    sentences = split_sentences(nlp, text)
    assert [w for s in subs for w in s] == [w for s in sentences for w in s]
    assert subs[-1] == sentences[-1]


def test_segment_spans_point_at_the_words_in_the_original_text(nlp):
    text = "  Ça va, très bien merci beaucoup mon ami,  vraiment bien.\n\nZürich is   big!  "
    for level, segments in ((SENTENCE, sentence_words(nlp, text)), (SUBSENTENCE, subsentence_words(nlp, text))):
        spans = segment_spans(nlp, text, level)
        assert len(spans) == len(segments)
        for (start, end), words in zip(spans, segments):
            assert text[start:end].split() == [w.text for w in words]
            assert not text[start].isspace() and not text[end - 1].isspace()
        assert all(a[1] <= b[0] for a, b in pairwise(spans))


def test_it_refuses_an_unknown_segment_level(nlp):
    with pytest.raises(ValueError, match="paragraph"):
        segment_spans(nlp, "Hello there.", "paragraph")


AWKWARD_TEXTS = [
    "", "   ", "...", "Hi... there. Yes?! No!", "The U.S. economy grew. It did.", '"Quoted." Then more.',
    "victory.S the next", "No punctuation at all", "Ends with space. ", "中文句子。第二句！", "a\u00a0b. c\u00a0d.",
    "Mr. Smith went to Washington D.C. on Monday. He left.", "Tabs\tand\nnewlines. More\n\nlines!",
    # Runs of plain words (not tokenised one by one) at either end, around odd whitespace, beside punctuation.
    "x", "x. x", " plain words only ", "words  with double  spaces. And\nnew lines\n\nhere",
    "It costs $100 now. (Then) it cost 5km.", "cannot stop. gonna go! 3.5 times? e.g. this", "end.\u201d Next one",
]


PIECES = [
    "word", "Word", "x", "a", "cannot", "gonna", "3.5", "U.S.", "Mr.", "e.g.", "$100", "100%", "end.", "end?!",
    "...", ".", "!", "?", "\u3002", "\uff01", "(aside)", "(open", "close)", '"quote', 'quote."', "'s", "it's", "don't",
    "x.", "http://a.b/c.", ":)", "-", "--", "\u2014", "word,", "word;", "5km.", "victory.She", "end.\u201d",
    "\u201cStart", "na\u00efve.", "\u65e5\u672c", "word.word", "x)", "(x", "...and",
]
SEPARATORS = [" "] * 12 + ["  ", "\n", "\n\n", "\t", " \n ", "\u00a0"]


def _random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        words = [rng.choice(PIECES) for _ in range(rng.randint(0, 20))]
        gaps = [rng.choice(SEPARATORS) for _ in words]
        lead = rng.choice(["", "", "", " ", "\n"])
        texts.append(lead + "".join(word + gap for word, gap in zip(words, gaps))[: -1 if rng.random() < 0.8 else None])
    return texts


@pytest.mark.parametrize(
    "punct_chars",
    [None, [";", ".", "x", "--"]],
    ids=["default punct_chars", "punct_chars with a letter"],
)
def test_the_fast_sentencizer_path_matches_spacys_own_pipeline_on_random_texts(punct_chars):
    """Plain-word runs stand in for their words while tokenising: random mixes of words, punctuation
    and whitespace must still cut exactly where spaCy cuts, whatever the sentencizer's punct_chars."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer", config={"punct_chars": punct_chars} if punct_chars else {})
    texts = _random_texts(seed=len(punct_chars or ()), count=1500)
    expected = [
        [] if not text or text.isspace() else [(s.start_char, s.text) for s in nlp(text).sents if s.text.strip()]
        for text in texts
    ]
    assert splitting._plain_sentencizer(nlp) is not None
    assert [[(s.start, s.text) for s in found] for found in splitting.sentences_many(nlp, texts)] == expected


def test_the_fast_sentencizer_path_matches_spacys_own_pipeline(nlp, qa_feedback_dir):
    """`sentences_many` places sentence starts itself for a plain sentencizer pipeline; it must
    cut exactly where spaCy's `nlp.pipe` + `doc.sents` cut, on real answers and odd inputs."""
    import json

    records = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))[:150]
    texts = AWKWARD_TEXTS + [r[f"prediction {k}"] for r in records for k in range(1, 5)]
    texts += [sentence for r in records for passage in r["passages"] for sentence in passage[1:]]
    assert splitting._plain_sentencizer(nlp) is not None  # the fast path is the one under test
    expected = [
        [] if not text or text.isspace() else [(s.start_char, s.text) for s in nlp(text).sents if s.text.strip()]
        for text in texts
    ]
    assert [[(s.start, s.text) for s in found] for found in splitting.sentences_many(nlp, texts)] == expected
