"""The qa-feedback formats as pure functions: detection, validation, byte-exact writing."""

import copy
import io
import json
import random
from pathlib import Path

import pytest

from annotation.qa import format as q
from annotation.qa.format import FormatError, validate_feedback_block, validate_preference
from annotation.qa.vocab import (
    ERROR_TYPES,
    IRRELEVANT,
    MISSING_ANSWER,
    MISSING_INFO_TYPES,
    MISSING_MINOR,
    UNVERIFIABLE,
    WRONG_GROUNDING,
)

DEMO_DIR = Path(__file__).resolve().parents[3] / "demo"

PREDICTION = "Paris is the capital of France. It has two million people."
PASSAGES = [
    ["Paris", "Paris is the capital of France.", "About two million people live there."],
    ["France", "France is in Europe."],
]


def block(**overrides) -> dict:
    feedback = {
        "errors": [{"error type": IRRELEVANT, "explanation": "", "start": 32, "end": 58}],
        "missing-info": [{"error type": MISSING_MINOR, "passage_id": 2, "sentence_id": [1]}],
        "corrected-prediction": "Paris is the capital of France.",
    }
    feedback.update(overrides)
    return feedback


@pytest.fixture(scope="module")
def shared_feedback(qa_feedback_dir) -> str:
    return (qa_feedback_dir / "dev_feedback.json").read_text()


@pytest.fixture(scope="module")
def shared_inputs(qa_feedback_dir) -> str:
    return (qa_feedback_dir / "dev.json").read_text()


def test_it_accepts_a_valid_feedback_block():
    assert PREDICTION[32:58] == "It has two million people."
    assert validate_feedback_block(block(), prediction=PREDICTION, passages=PASSAGES) == []


def test_it_names_the_field_of_a_span_past_the_prediction():
    feedback = block(errors=[{"error type": IRRELEVANT, "explanation": "", "start": 32, "end": 99}])
    assert validate_feedback_block(feedback, prediction=PREDICTION, passages=PASSAGES) == [
        ("feedback.errors[0].end", "end 99 is past the end of prediction 1 (length 58)")
    ]


def test_it_names_overlapping_errors_by_their_list_index():
    errors = [
        {"error type": IRRELEVANT, "explanation": "", "start": 32, "end": 58},
        {"error type": UNVERIFIABLE, "explanation": "", "start": 0, "end": "5"},
        {"error type": UNVERIFIABLE, "explanation": "", "start": 39, "end": 58},
    ]
    problems = validate_feedback_block(block(errors=errors), prediction=PREDICTION, passages=PASSAGES)
    assert problems == [
        ("feedback.errors[1].end", "must be a whole number, not a string"),
        ("feedback.errors[2]", "overlaps error 0 (characters 32-58)"),
    ]


def test_it_refuses_unknown_error_and_missing_info_types():
    feedback = block(
        errors=[{"error type": "Typo", "explanation": "", "start": 0, "end": 5}],
        **{"missing-info": [{"error type": "Missing-Everything", "passage_id": 1, "sentence_id": [1]}]},
    )
    problems = dict(validate_feedback_block(feedback, prediction=PREDICTION, passages=PASSAGES))
    assert problems["feedback.errors[0].error type"].startswith("'Typo' is not one of Irrelevant, Redundant")
    assert problems["feedback.missing-info[0].error type"].startswith("'Missing-Everything' is not one of")


def test_it_refuses_passage_and_sentence_ids_that_do_not_exist():
    feedback = block()
    feedback["missing-info"] = [
        {"error type": MISSING_ANSWER, "passage_id": 3, "sentence_id": [1]},
        {"error type": MISSING_ANSWER, "passage_id": 1, "sentence_id": [2, 3]},
        {"error type": MISSING_ANSWER, "passage_id": 1, "sentence_id": []},
    ]
    assert validate_feedback_block(feedback, prediction=PREDICTION, passages=PASSAGES) == [
        ("feedback.missing-info[0].passage_id", "passage 3 does not exist (the example has passages 1-2)"),
        ("feedback.missing-info[1].sentence_id[1]", "sentence 3 does not exist in passage 1 (it has sentences 1-2)"),
        ("feedback.missing-info[2].sentence_id", "must name at least one sentence"),
    ]


def test_it_accepts_sentence_zero_which_the_shared_data_uses_for_the_title():
    feedback = block()
    feedback["missing-info"] = [{"error type": MISSING_MINOR, "passage_id": 1, "sentence_id": [0]}]
    assert validate_feedback_block(feedback, prediction=PREDICTION, passages=PASSAGES) == []


def test_it_refuses_missing_info_when_there_are_no_passages():
    problems = validate_feedback_block(block(), prediction=PREDICTION, passages=[])
    assert problems == [
        ("feedback.missing-info[0].passage_id", "passage 2 does not exist (the example has no passages)")
    ]


def test_it_checks_wrong_grounding_explanations_point_at_real_sentences():
    def with_explanation(explanation):
        errors = [{"error type": WRONG_GROUNDING, "explanation": explanation, "start": 32, "end": 58}]
        return validate_feedback_block(block(errors=errors), prediction=PREDICTION, passages=PASSAGES)

    assert with_explanation(q.grounding_explanation(1, [2])) == []
    assert with_explanation("") == []
    assert with_explanation(q.grounding_explanation(1, [5])) == [
        ("feedback.errors[0].explanation", "sentence 5 does not exist in passage 1 (it has sentences 1-2)")
    ]
    assert with_explanation("passage 1")[0][1].startswith(f"a {WRONG_GROUNDING} explanation must look like")


def test_it_spells_grounding_explanations_as_the_shared_data_does(shared_feedback):
    explanations = {
        e["explanation"]
        for r in json.loads(shared_feedback)
        for e in r["feedback"]["errors"]
        if e["error type"] == WRONG_GROUNDING
    }
    assert len(explanations) > 30
    for explanation in explanations:
        ref = json.loads(explanation)
        assert q.grounding_explanation(ref["passage_id"], ref["sentence_id"]) == explanation


def test_it_refuses_missing_and_unexpected_keys_in_a_block():
    feedback = block()
    del feedback["corrected-prediction"]
    feedback["score"] = 3
    assert validate_feedback_block(feedback, prediction=PREDICTION, passages=PASSAGES) == [
        ("feedback.corrected-prediction", "missing key"),
        ("feedback.score", "unexpected key"),
    ]


@pytest.mark.parametrize(
    ("preference", "expected"),
    [
        ([1, 2, 0, 1, 2, 0], []),
        ([1, 2, 0], [("preference", "must hold 6 values (one per pair of predictions), not 3")]),
        ([1, 2, 0, 1, 2, 3], [("preference[5]", "3 is not 0, 1 or 2 (pair 3-4)")]),
        ([1, True, 0, 1, 2, 0], [("preference[1]", "True is not 0, 1 or 2 (pair 1-3)")]),
        ("121", [("preference", "must be a list of 6 numbers, not a string")]),
    ],
)
def test_it_checks_preference_length_and_values(preference, expected):
    assert validate_preference(preference) == expected


def test_it_detects_each_format_by_its_keys(shared_feedback, shared_inputs):
    assert q.detect_format(json.loads(shared_feedback)) == q.FEEDBACK
    assert q.detect_format(json.loads(shared_inputs)) == q.INPUTS
    with pytest.raises(FormatError, match="example 1: cannot tell the format"):
        q.detect_format([{"prompt": "x"}])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"question": "x"}, "the file must hold a list of examples, not an object"),
        ([], "the file holds no examples"),
        (["text"], "example 1: must be an object, not a string"),
    ],
)
def test_it_refuses_files_of_the_wrong_shape(data, message):
    with pytest.raises(FormatError) as caught:
        q.parse_records(data)
    assert str(caught.value) == message


def test_it_refuses_text_that_is_not_json():
    with pytest.raises(FormatError, match=r"not valid JSON: Expecting ':' delimiter \(line 1, column 7\)") as caught:
        q.read_file(io.BytesIO(b'[{"a" 1}]'))
    assert caught.value.index is None


def test_it_refuses_bytes_that_are_not_utf8():
    with pytest.raises(FormatError, match="not UTF-8"):
        q.read_file(io.BytesIO(b'["\xff"]'))


def test_it_locates_every_problem_and_reports_the_first(shared_feedback):
    records = json.loads(shared_feedback)[:20]
    del records[17]["gold"]
    records[19]["preference"] = [1]
    with pytest.raises(FormatError) as caught:
        q.parse_records(records)
    error = caught.value
    assert (error.index, error.field) == (17, "gold")
    assert str(error) == "example 18, field gold: missing key (and 1 more problem)"
    assert error.lines() == [
        "example 18, field gold: missing key",
        "example 20, field preference: must hold 6 values (one per pair of predictions), not 1",
    ]


def test_it_refuses_a_record_of_the_other_format_in_the_middle(shared_feedback, shared_inputs):
    records = json.loads(shared_feedback)[:3] + json.loads(shared_inputs)[:1]
    with pytest.raises(FormatError) as caught:
        q.parse_records(records)
    assert (caught.value.index, caught.value.field, caught.value.detail) == (3, "gold", "missing key")


def test_it_refuses_a_format_other_than_the_one_asked_for(shared_inputs):
    with pytest.raises(FormatError, match="expected the feedback format but the file is in the inputs format"):
        q.parse_records(json.loads(shared_inputs)[:2], fmt=q.FEEDBACK)


def test_it_writes_both_shared_files_back_byte_for_byte(shared_feedback, shared_inputs):
    assert q.dumps(q.read_file(io.StringIO(shared_feedback)).records, fmt=q.FEEDBACK) == shared_feedback
    assert q.dumps(q.read_file(io.StringIO(shared_inputs)).records, fmt=q.INPUTS) == shared_inputs


def test_it_restores_key_order_whatever_order_records_arrive_in(shared_feedback):
    records = json.loads(shared_feedback)[:5]
    shuffled = []
    rng = random.Random(7)
    for record in records:
        items = list(copy.deepcopy(record).items())
        rng.shuffle(items)
        shuffled.append(dict(items))
        shuffled[-1]["feedback"] = dict(reversed(list(record["feedback"].items())))
    assert q.dumps(shuffled, fmt=q.FEEDBACK) == json.dumps(records, indent=2)


def test_it_streams_exactly_what_json_dumps_writes(shared_inputs):
    records = json.loads(shared_inputs)[:7]
    chunks = list(q.iter_dump(records, fmt=q.INPUTS))
    assert len(chunks) == 8
    assert "".join(chunks) == json.dumps(records, indent=4)
    assert q.dumps([], fmt=q.FEEDBACK) == json.dumps([], indent=2)


def test_it_accepts_both_demo_files_and_they_hold_the_same_questions():
    feedback = q.read_file(DEMO_DIR / "qa_feedback_demo.json")
    inputs = q.read_file(DEMO_DIR / "qa_feedback_demo_inputs.json")
    assert (feedback.format, inputs.format) == (q.FEEDBACK, q.INPUTS)
    assert len(feedback.records) >= 12
    assert [r["question"] for r in feedback.records] == [r["question"] for r in inputs.records]
    assert q.dumps(feedback.records, fmt=q.FEEDBACK) == (DEMO_DIR / "qa_feedback_demo.json").read_text()
    assert q.dumps(inputs.records, fmt=q.INPUTS) == (DEMO_DIR / "qa_feedback_demo_inputs.json").read_text()


def test_it_finds_real_feedback_in_the_demo_data():
    records = q.read_file(DEMO_DIR / "qa_feedback_demo.json").records
    kinds = {e["error type"] for r in records for e in r["feedback"]["errors"]}
    assert kinds == set(ERROR_TYPES)
    assert {m["error type"] for r in records for m in r["feedback"]["missing-info"]} == set(MISSING_INFO_TYPES)
    assert all(r["feedback"]["corrected-prediction"] for r in records)


def test_its_fast_writer_gives_json_dumps_bytes_for_any_shape():
    rng = random.Random(11)
    scalars = ["", 'a"b\\c', "é\u2028\U0001f600", "\x00\x1f", 0, -5, 10**30, True, False, None, 1.5, 1e-7]

    def value(depth=0):
        roll = rng.random()
        if depth > 3 or roll < 0.3:
            return rng.choice(scalars)
        if roll < 0.65:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(["a", "b", "é", "", "x y"]): value(depth + 1) for _ in range(rng.randint(0, 3))}

    for _ in range(3000):
        item = value()
        for indent in (2, 4):
            assert q._encode(item, " " * indent, "") == json.dumps(item, indent=indent), item


def test_its_feedback_writer_matches_the_generic_one_on_odd_records(shared_feedback):
    records = json.loads(shared_feedback)[:3]
    records[0]["passages"] = []
    records[1]["feedback"]["errors"] = []
    records[1]["feedback"]["missing-info"][0]["sentence_id"] = []
    records[2]["preference"] = [True, 0, 1, 2, 0, 1]  # not the usual shape: the generic encoder takes it
    assert q.dumps(records, fmt=q.FEEDBACK) == json.dumps(records, indent=2)


def test_its_feedback_writer_takes_every_shared_record_itself_with_json_dumps_bytes(shared_feedback):
    # The fast writer itself, not its fallback: a record it gave up on would be slow, not wrong.
    for record in json.loads(shared_feedback):
        for step in ("  ", "    "):
            text = q._feedback_text(record, step, step)
            assert text == q._reindent(json.dumps(record, indent=len(step)), step)


def test_its_feedback_writer_gives_json_dumps_bytes_for_odd_values_or_leaves_them_to_the_generic_one():
    rng = random.Random(5)
    strings = ["", "plain", 'a"b\\c/d', "é\u2028\U0001f600", "\x00\x1f\x7f", "line\nbreak\ttab"]
    odd = [True, False, None, 1.5, -0.0, 10**30, "3", [], {}]

    def string():
        return rng.choice(odd) if rng.random() < 0.03 else rng.choice(strings)

    def integer():
        return rng.choice(odd) if rng.random() < 0.03 else rng.choice([0, 1, 7, 10**20, -3])

    def ints(n):
        return [integer() for _ in range(rng.randint(0, n))]

    for _ in range(2000):
        record = {
            "question": string(),
            "passages": [[string() for _ in range(rng.randint(0, 3))] for _ in range(rng.randint(0, 3))],
            "gold": string(),
            **{key: string() for key in q.PREDICTION_KEYS},
            "feedback": {
                "errors": [
                    {"error type": string(), "explanation": string(), "start": integer(), "end": integer()}
                    for _ in range(rng.randint(0, 3))
                ],
                "missing-info": [
                    {"error type": string(), "passage_id": integer(), "sentence_id": ints(3)}
                    for _ in range(rng.randint(0, 2))
                ],
                "corrected-prediction": string(),
            },
            "preference": ints(6),
        }
        expected = json.dumps([record], indent=2)
        assert q.dumps([record], fmt=q.FEEDBACK) == expected, record
        try:
            fast = q._feedback_text(record, "  ", "  ")
        except (KeyError, TypeError):
            continue
        assert f"[\n  {fast}\n]" == expected, record


def test_it_reads_a_file_one_example_at_a_time(shared_feedback, tmp_path):
    path = tmp_path / "f.json"
    path.write_text(shared_feedback)
    with q.RecordReader(path) as reader:
        assert reader.format == q.FEEDBACK and reader.bytes_total == path.stat().st_size
        first = next(iter(reader))
        assert first[0] == 0 and reader.bytes_read < reader.bytes_total  # not the whole file yet
    with q.RecordReader(path) as reader:
        assert sum(1 for _ in reader) == 500 and reader.finished and reader.bytes_read == reader.bytes_total


def test_it_stops_giving_examples_at_the_first_problem_but_lists_the_later_ones(shared_feedback):
    records = json.loads(shared_feedback)[:20]
    records[4]["gold"] = 7
    records[9]["preference"] = [1]
    given = []
    with pytest.raises(FormatError) as caught:
        for index, _ in q.RecordReader(io.StringIO(json.dumps(records))):
            given.append(index)
    assert given == [0, 1, 2, 3]
    assert caught.value.lines() == [
        "example 5, field gold: must be a string, not a number",
        "example 10, field preference: must hold 6 values (one per pair of predictions), not 1",
    ]


INPUT = '{"text": "t", "answer": ["a"], "passages": [], "question": "Why?"}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"[{INPUT}] x", "the file is not valid JSON: Extra data (line 1, column 70)"),
        (f"[{INPUT},\n]", "the file is not valid JSON: Expecting value (line 2, column 1)"),
        ('"text"', "the file must hold a list of examples, not a string"),
        ("[]", "the file holds no examples"),
        ('[{"text": "\\udc00", "answer": [], "passages": [], "question": "q"}]', "example 1, field text: holds \\udc00"),
    ],
)
def test_it_words_file_problems_as_json_loads_does(text, message):
    with pytest.raises(FormatError) as caught:
        q.read_file(io.StringIO(text))
    assert str(caught.value).startswith(message)
