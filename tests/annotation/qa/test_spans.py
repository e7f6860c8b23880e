"""Span rules, checked exhaustively on small texts against brute-force definitions."""

import itertools
import json

import pytest

from annotation.qa.spans import snap_to_words, span_problems, word_spans
from annotation.qa.vocab import FIRST_PREDICTION

# Every whitespace kind str.split() knows about behaves the same; a few stand for them all.
ALPHABET = ("a", "b", " ", "\n", "\u00a0")


def small_texts(max_length: int = 5):
    for length in range(max_length + 1):
        for chars in itertools.product(ALPHABET, repeat=length):
            yield "".join(chars)


def whole_word_runs(text: str) -> set[tuple[int, int]]:
    """Brute force: every (start, end) covering words i..j, built from str.split() alone."""
    words = text.split()
    starts, offset = [], 0
    for word in words:
        offset = text.index(word, offset)
        starts.append(offset)
        offset += len(word)
    return {(starts[i], starts[j] + len(words[j])) for i in range(len(words)) for j in range(i, len(words))}


def test_it_splits_words_exactly_like_str_split():
    for text in small_texts():
        assert [text[s:e] for s, e in word_spans(text)] == text.split(), repr(text)


def test_it_treats_unicode_whitespace_as_str_split_does():
    text = "a\u2003b\u3000c\x1cd\u200be"
    assert [text[s:e] for s, e in word_spans(text)] == text.split() == ["a", "b", "c", "d\u200be"]


def test_it_accepts_exactly_the_runs_of_whole_words():
    for text in small_texts():
        valid = whole_word_runs(text)
        for start in range(-1, len(text) + 2):
            for end in range(-1, len(text) + 2):
                problems = span_problems(text, [(start, end)])
                assert (problems == []) == ((start, end) in valid), (text, start, end, problems)


def test_it_reports_spans_past_the_end_with_the_text_length():
    assert span_problems("one two", [(0, 3), (4, 12)]) == ["error 1: end 12 is past the end of the text (length 7)"]


def test_it_reports_a_start_inside_a_word():
    assert span_problems("hello world", [(2, 5)]) == ["error 0: start 2 is not at the start of a word"]


def test_it_reports_an_end_inside_a_word():
    assert span_problems("hello world", [(0, 8)]) == ["error 0: end 8 is not at the end of a word"]


def test_it_reports_a_span_that_ends_in_whitespace():
    assert span_problems("foo  bar", [(0, 4)]) == ["error 0: end 4 is not at the end of a word"]


def test_it_reports_empty_and_reversed_spans():
    assert span_problems("a b", [(2, 2), (2, 0)]) == [
        "error 0: end 2 is not after start 2",
        "error 1: end 0 is not after start 2",
    ]


def test_it_reports_negative_starts_and_starts_past_the_end():
    assert span_problems("ab", [(-1, 2), (2, 3)]) == [
        "error 0: start -1 is negative",
        "error 1: start 2 is past the end of the text (length 2)",
        "error 1: end 3 is past the end of the text (length 2)",
    ]


def test_it_flags_overlaps_exactly_when_ranges_intersect():
    text = "a b c d"
    runs = sorted(whole_word_runs(text))
    for first, second in itertools.product(runs, repeat=2):
        problems = span_problems(text, [first, second])
        intersect = max(first[0], second[0]) < min(first[1], second[1])
        assert bool(problems) == intersect, (first, second, problems)


def test_it_names_both_spans_of_an_overlap_by_list_index_later_start_first():
    text = "one two three four five"
    problems = span_problems(text, [(14, 18), (0, 3), (8, 13), (4, 13)])
    assert problems == ["error 2 overlaps error 3 (characters 4-13)"]


def test_it_reports_every_overlap_in_a_chain():
    text = "a b c d"
    assert span_problems(text, [(0, 3), (2, 5), (4, 7)]) == [
        "error 1 overlaps error 0 (characters 0-3)",
        "error 2 overlaps error 1 (characters 2-5)",
    ]


def test_it_allows_adjacent_spans_and_spans_in_any_order():
    text = "one two three"
    assert span_problems(text, [(8, 13), (0, 3), (4, 7)]) == []


def test_it_snaps_every_selection_to_the_words_it_touches():
    for text in small_texts():
        words = word_spans(text)
        for start in range(0, len(text) + 1):
            for end in range(start, len(text) + 1):
                touched = [w for w in words if w[0] < end and w[1] > start]
                if not touched:
                    with pytest.raises(ValueError):
                        snap_to_words(text, start, end)
                    continue
                snapped = snap_to_words(text, start, end)
                assert snapped == (touched[0][0], touched[-1][1])
                assert span_problems(text, [snapped]) == []


def test_it_snaps_backwards_and_out_of_range_selections():
    text = "hello big world"
    assert snap_to_words(text, 8, 2) == (0, 9)
    assert snap_to_words(text, -5, 100) == (0, 15)


def test_it_refuses_a_selection_of_only_whitespace():
    with pytest.raises(ValueError, match="covers no word"):
        snap_to_words("one   two", 3, 6)


def test_it_accepts_every_span_of_the_shared_dev_feedback(qa_feedback_dir):
    records = json.loads((qa_feedback_dir / "dev_feedback.json").read_text())
    problems = {
        index: span_problems(r[FIRST_PREDICTION], [(e["start"], e["end"]) for e in r["feedback"]["errors"]])
        for index, r in enumerate(records)
    }
    assert len(records) == 500
    assert {index: p for index, p in problems.items() if p} == {}
