import json

import pytest

from annotation.qa import drafts
from annotation.qa.format import validate_feedback_block
from annotation.qa.vocab import (
    INCOHERENT,
    IRRELEVANT,
    MISSING_ANSWER,
    MISSING_MINOR,
    REDUNDANT,
    UNVERIFIABLE,
    WRONG_GROUNDING,
)
from tests.annotation.annotate_data import PASSAGES, RESPONSES, offsets_of

TEXT = RESPONSES[1]


@pytest.fixture
def draft():
    return drafts.empty_fine_grained(TEXT)


def test_it_starts_a_draft_as_an_empty_qa_feedback_block_with_the_response_as_correction(draft):
    assert draft == {"errors": [], "missing-info": [], "corrected-prediction": TEXT}
    assert validate_feedback_block(draft, prediction=TEXT, passages=PASSAGES) == []


def test_it_snaps_a_selection_to_the_whole_words_it_touches(draft):
    start, end = offsets_of(TEXT, "ten million copies")
    index = drafts.add_error(draft, text=TEXT, start=start + 2, end=end - 3, error_type=UNVERIFIABLE)
    assert index == 0
    assert draft["errors"] == [{"error type": UNVERIFIABLE, "explanation": "", "start": start, "end": end}]


def test_it_reads_a_backwards_selection_forwards(draft):
    start, end = offsets_of(TEXT, "first week.")
    drafts.add_error(draft, text=TEXT, start=end, end=start, error_type=IRRELEVANT)
    assert (draft["errors"][0]["start"], draft["errors"][0]["end"]) == (start, end)


def test_it_refuses_a_selection_of_only_spaces(draft):
    space = TEXT.index(" ")
    with pytest.raises(drafts.DraftError, match="at least one word"):
        drafts.add_error(draft, text=TEXT, start=space, end=space + 1, error_type=IRRELEVANT)
    assert draft["errors"] == []


def test_it_refuses_an_overlapping_span_and_names_the_span_it_overlaps(draft):
    start, end = offsets_of(TEXT, "It was released on 31 August 2018.", occurrence=2)
    drafts.add_error(draft, text=TEXT, start=start, end=end, error_type=REDUNDANT)
    overlap_start, _ = offsets_of(TEXT, "2018. The album")
    with pytest.raises(drafts.DraftError) as refused:
        drafts.add_error(draft, text=TEXT, start=overlap_start, end=overlap_start + 15, error_type=IRRELEVANT)
    assert "overlaps span 1 (Repetitive" in str(refused.value)
    assert len(draft["errors"]) == 1


def test_it_accepts_spans_that_touch_without_overlapping(draft):
    first = offsets_of(TEXT, "The album sold")
    second = offsets_of(TEXT, "ten million copies")
    drafts.add_error(draft, text=TEXT, start=first[0], end=first[1], error_type=IRRELEVANT)
    drafts.add_error(draft, text=TEXT, start=second[0], end=second[1], error_type=UNVERIFIABLE)
    assert [e["error type"] for e in draft["errors"]] == [IRRELEVANT, UNVERIFIABLE]


def test_it_refuses_an_unknown_error_type(draft):
    with pytest.raises(drafts.DraftError, match="not an error type"):
        drafts.add_error(draft, text=TEXT, start=0, end=5, error_type="Boring")


def test_it_writes_the_grounding_explanation_exactly_as_the_shared_files_do(draft):
    start, end = offsets_of(TEXT, "born in Perth, Australia.")
    drafts.add_error(draft, text=TEXT, start=start, end=end, error_type=WRONG_GROUNDING)
    drafts.set_grounding(draft, index=0, passage_id=2, sentence_ids=[2], passages=PASSAGES)
    assert draft["errors"][0]["explanation"] == '{"passage_id":2,"sentence_id":[2]}'
    drafts.set_grounding(draft, index=0, passage_id=1, sentence_ids=[3, 1, 3], passages=PASSAGES)
    assert draft["errors"][0]["explanation"] == '{"passage_id":1,"sentence_id":[1,3]}'
    assert drafts.parse_grounding(draft["errors"][0]["explanation"]) == (1, [1, 3])


def test_it_refuses_a_grounding_sentence_that_does_not_exist(draft):
    drafts.add_error(draft, text=TEXT, start=0, end=5, error_type=WRONG_GROUNDING)
    with pytest.raises(drafts.DraftError, match=r"Passage 2 has no sentence 9; it has sentences 1-3 \(0 is its title\)"):
        drafts.set_grounding(draft, index=0, passage_id=2, sentence_ids=[9], passages=PASSAGES)
    with pytest.raises(drafts.DraftError, match="no passage 3"):
        drafts.set_grounding(draft, index=0, passage_id=3, sentence_ids=[1], passages=PASSAGES)


def test_it_gives_text_explanations_only_to_repetitive_spans(draft):
    drafts.add_error(draft, text=TEXT, start=0, end=5, error_type=IRRELEVANT)
    with pytest.raises(drafts.DraftError, match="not Repetitive"):
        drafts.set_explanation(draft, index=0, explanation="anything")


def test_it_clears_the_explanation_when_a_span_changes_type(draft):
    drafts.add_error(draft, text=TEXT, start=0, end=5, error_type=REDUNDANT)
    drafts.set_explanation(draft, index=0, explanation="Bloom")
    drafts.set_error_type(draft, index=0, error_type=WRONG_GROUNDING)
    assert draft["errors"][0] == {"error type": WRONG_GROUNDING, "explanation": "", "start": 0, "end": 5}


def test_it_adds_and_removes_missing_information(draft):
    drafts.add_missing(draft, error_type=MISSING_ANSWER, passage_id=1, sentence_ids=[2], passages=PASSAGES)
    drafts.add_missing(draft, error_type=MISSING_MINOR, passage_id=1, sentence_ids=[4, 3], passages=PASSAGES)
    assert draft["missing-info"] == [
        {"error type": MISSING_ANSWER, "passage_id": 1, "sentence_id": [2]},
        {"error type": MISSING_MINOR, "passage_id": 1, "sentence_id": [3, 4]},
    ]
    with pytest.raises(drafts.DraftError, match="already listed"):
        drafts.add_missing(draft, error_type=MISSING_ANSWER, passage_id=1, sentence_ids=[2], passages=PASSAGES)
    drafts.remove_missing(draft, index=0)
    assert [m["error type"] for m in draft["missing-info"]] == [MISSING_MINOR]
    with pytest.raises(drafts.DraftError, match="kind of missing information"):
        drafts.add_missing(draft, error_type="", passage_id=1, sentence_ids=[2], passages=PASSAGES)


def test_it_asks_for_the_explanations_that_repetitive_and_inconsistent_spans_need(draft):
    drafts.add_error(draft, text=TEXT, start=0, end=5, error_type=REDUNDANT)
    start, end = offsets_of(TEXT, "born in Perth, Australia.")
    drafts.add_error(draft, text=TEXT, start=start, end=end, error_type=WRONG_GROUNDING)
    problems = drafts.completeness_problems(draft)
    assert problems == [
        ("feedback.errors[0].explanation", "span 1 (Repetitive): give the earlier text it repeats"),
        ("feedback.errors[1].explanation", "span 2 (Inconsistent Fact): click the passage sentence it contradicts"),
    ]
    drafts.set_explanation(draft, index=0, explanation="Bloom is")
    drafts.set_grounding(draft, index=1, passage_id=2, sentence_ids=[2], passages=PASSAGES)
    assert drafts.completeness_problems(draft) == []
    assert validate_feedback_block(draft, prediction=TEXT, passages=PASSAGES) == []


def test_it_cuts_the_response_into_plain_and_marked_runs_in_text_order(draft):
    late = offsets_of(TEXT, "first week.")
    early = offsets_of(TEXT, "Bloom is")
    drafts.add_error(draft, text=TEXT, start=late[0], end=late[1], error_type=IRRELEVANT)
    drafts.add_error(draft, text=TEXT, start=early[0], end=early[1], error_type=INCOHERENT)
    runs = drafts.response_segments(TEXT, draft["errors"])
    assert "".join(run["text"] for run in runs) == TEXT
    assert [(run["text"], run["index"]) for run in runs if run["index"] is not None] == [("Bloom is", 1), ("first week.", 0)]
    assert all(TEXT[run["start"] : run["end"]] == run["text"] for run in runs)


def test_it_counts_offsets_in_code_points_like_python_does():
    text = "Emoji 😀 then words here"
    draft = drafts.empty_fine_grained(text)
    start, end = offsets_of(text, "then words")
    drafts.add_error(draft, text=text, start=start, end=end, error_type=IRRELEVANT)
    assert text[draft["errors"][0]["start"] : draft["errors"][0]["end"]] == "then words"
    assert json.dumps(draft["errors"][0]["start"]) == str(text.index("then"))


def test_it_records_preferences_by_pair_index():
    draft = drafts.empty_comparison()
    drafts.set_preference(draft, index=5, value=2)
    drafts.set_preference(draft, index=0, value=0)
    assert draft["preference"] == [0, None, None, None, None, 2]
    with pytest.raises(drafts.DraftError):
        drafts.set_preference(draft, index=6, value=1)
    with pytest.raises(drafts.DraftError):
        drafts.set_preference(draft, index=0, value=3)
