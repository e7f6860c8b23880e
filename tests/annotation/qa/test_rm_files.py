"""Reward-model training files from qa-feedback records (annotation/qa/rm_files.py): pure, no database."""

import copy
import json
import os
import random
from difflib import SequenceMatcher

import pytest

from annotation.qa import rm_files
from annotation.qa.forked import WorkerFailed
from annotation.qa.rm_files import (
    DifflibMatcher,
    WindowScorer,
    build_rm_files,
    preference_pairs,
    preference_prompt,
)
from annotation.qa.text import load_splitter
from annotation.qa.vocab import (
    COMP_SEQUENCE,
    F_ERR_SENTENCE,
    FIRST_PREDICTION,
    F_ERR,
    IGNORE,
    IRRELEVANT,
    MISSING_MINOR,
    NF_ERR,
    NF_ERR_SUBSENTENCE,
    NO_ERROR,
    PREDICTION_KEYS,
    PREFERENCE_INDEX_PAIRS,
    RM_FILE_NAMES,
    SEPARATOR,
    UNVERIFIABLE,
    WRONG_GROUNDING,
)


@pytest.fixture(scope="module")
def nlp():
    return load_splitter("sentencizer")[0]


@pytest.fixture(scope="module")
def dev_records(qa_feedback_dir):
    return json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dev_build(dev_records, nlp):
    return build_rm_files(dev_records, nlp=nlp, splitter="sentencizer")


def record(**changes):
    """A small valid feedback record; `changes` replace keys (feedback keys go in `feedback`)."""
    base = {
        "question": "Who wrote the novel Dune?",
        "passages": [
            [
                "Dune (novel)",
                "Dune is a 1965 epic science fiction novel by American author Frank Herbert.",
                "It was originally published as two separate serials in Analog magazine.",
                "It tied with Roger Zelazny's This Immortal for the Hugo Award in 1966.",
            ],
            ["Frank Herbert", "Franklin Patrick Herbert Jr. was an American science fiction author."],
        ],
        "gold": "Dune was written by Frank Herbert.",
        FIRST_PREDICTION: "Dune is a 1965 epic science fiction novel by American author Frank Herbert. "
        "It won the Nebula Award and was later adapted into films by several directors.",
        PREDICTION_KEYS[1]: "Frank Herbert wrote Dune.",
        PREDICTION_KEYS[2]: "Dune is a 1965 epic science fiction novel by American author Frank Herbert.",
        PREDICTION_KEYS[3]: "It was written by Roger Zelazny in 1970.",
        "feedback": {
            "errors": [],
            "missing-info": [],
            "corrected-prediction": "Dune is a 1965 epic science fiction novel by American author Frank Herbert. "
            "It tied with Roger Zelazny's This Immortal for the Hugo Award in 1966.",
        },
        "preference": [1, 1, 1, 2, 1, 1],
    }
    feedback_changes = changes.pop("feedback", {})
    base.update(changes)
    base["feedback"].update(feedback_changes)
    return base


def lines_of(content):
    return [json.loads(line) for line in content.splitlines()]


# --- exactness -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RM_FILE_NAMES)
def test_it_builds_each_file_byte_identical_to_the_reference(dev_build, qa_feedback_dir, name):
    reference = (qa_feedback_dir / "reference" / name / "dev.json").read_bytes()
    assert dev_build.files[name].content.encode("utf-8") == reference


def test_it_counts_what_it_wrote_and_why_it_skipped_the_rest(dev_build, dev_records, qa_feedback_dir):
    summary = dev_build.summary()
    assert summary["examples"] == len(dev_records)
    for name in (NF_ERR_SUBSENTENCE, F_ERR_SENTENCE):
        lines = (qa_feedback_dir / "reference" / name / "dev.json").read_text(encoding="utf-8").splitlines()
        assert summary["files"][name]["written"] == len(lines)
    comp = json.loads((qa_feedback_dir / "reference" / COMP_SEQUENCE / "dev.json").read_text(encoding="utf-8"))
    assert summary["files"][COMP_SEQUENCE]["written"] == len(comp)
    for name in RM_FILE_NAMES:
        entry = summary["files"][name]
        assert entry["written"] + sum(entry["skipped"].values()) == len(dev_records)


def test_it_builds_one_file_alone_as_it_builds_all_three(dev_records, dev_build, nlp):
    alone = build_rm_files(dev_records[:60], nlp=nlp, files=[F_ERR_SENTENCE])
    together = build_rm_files(dev_records[:60], nlp=nlp)
    assert list(alone.files) == [F_ERR_SENTENCE]
    assert alone.files[F_ERR_SENTENCE].content == together.files[F_ERR_SENTENCE].content


def test_it_refuses_an_unknown_file_name(nlp):
    with pytest.raises(ValueError, match="NF-ERR_sentence"):
        build_rm_files([], nlp=nlp, files=["NF-ERR_sentence"])


def test_it_reports_progress_after_every_example(dev_records, nlp):
    calls = []
    build_rm_files(dev_records[:5], nlp=nlp, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 5) for i in range(1, 6)]


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_several_processes_build_the_same_files_and_counts_as_one(dev_records, nlp, workers):
    # Broken records in each process's run, so every run's left-out reasons are counted and added up.
    records = copy.deepcopy(dev_records[:300])
    records[5] = "not an object"
    records[130]["feedback"]["corrected-prediction"] = 7
    del records[290]["passages"]
    one = build_rm_files(records, nlp=nlp, batch_size=32)
    calls = []
    several = build_rm_files(
        records, nlp=nlp, batch_size=32, workers=workers, progress=lambda done, total: calls.append((done, total))
    )
    assert one.summary() == several.summary()
    for name in RM_FILE_NAMES:
        assert several.files[name].content == one.files[name].content, name
        assert sum(several.files[name].skipped.values()) >= 1
    # This process's run example by example, then each child's run as it is taken back.
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == 300 and {t for _, t in calls} == {300}
    assert done[:32] == list(range(1, 33))


def test_the_runs_are_whole_batches_covering_every_record_once():
    for total in (0, 1, 31, 32, 33, 500, 1000):
        for workers in (1, 2, 3, 7, 40):
            runs = rm_files._runs(total, workers, 32)
            assert runs[0][0] == 0 and runs[-1][1] == total
            assert all(lo < hi for lo, hi in runs) or total == 0
            assert all(a[1] == b[0] for a, b in zip(runs, runs[1:]))
            assert all(lo % 32 == 0 for lo, _ in runs)
            assert len(runs) == max(1, min(workers, -(-total // 32)))


class FailsOnMarker(WindowScorer):
    """A matcher that fails for an example whose passages hold the word Zyzzyva."""

    def __init__(self, candidates):
        if any("Zyzzyva" in text for text in candidates):
            raise ValueError("no scorer for this one")
        super().__init__(candidates)


def test_a_failure_in_a_child_is_raised_in_the_caller(dev_records, nlp):
    records = copy.deepcopy(dev_records[:128])
    records[100]["passages"][0][1] += " Zyzzyva"  # in the second run: the child's
    assert build_rm_files(records[:64], nlp=nlp, matcher=FailsOnMarker).files[COMP_SEQUENCE].written > 0
    with pytest.raises(WorkerFailed, match="ValueError: no scorer for this one"):
        build_rm_files(records, nlp=nlp, batch_size=64, workers=2, matcher=FailsOnMarker)


def test_a_failure_in_the_callers_own_run_is_raised_once_the_children_are_reaped(dev_records, nlp, monkeypatch):
    started = []

    class Recorded(rm_files.Forked):
        def __init__(self, func):
            super().__init__(func)
            started.append(self)

    monkeypatch.setattr(rm_files, "Forked", Recorded)
    records = copy.deepcopy(dev_records[:192])
    records[10]["passages"][0][1] += " Zyzzyva"  # in the first run: this process's own
    with pytest.raises(ValueError, match="no scorer for this one"):
        build_rm_files(records, nlp=nlp, batch_size=64, workers=3, matcher=FailsOnMarker)
    assert len(started) == 2
    for child in started:
        with pytest.raises(ChildProcessError):
            os.waitpid(child._pid, os.WNOHANG)  # waited for: no zombie left behind


def test_the_fast_matcher_gives_the_same_files_as_difflib(dev_records, nlp):
    sample = dev_records[:10]
    fast = build_rm_files(sample, nlp=nlp)
    slow = build_rm_files(sample, nlp=nlp, matcher=DifflibMatcher)
    assert fast.files[COMP_SEQUENCE].content == slow.files[COMP_SEQUENCE].content


# --- the window scorer against difflib -----------------------------------------------------------


def difflib_window_scores(sub, texts):
    scores = []
    n = rm_files.window_size(len(sub.split()))
    for text in texts:
        words = text.split()
        if len(words) <= n:
            words += ["#"] * (n + 1 - len(words))
        windows = (" ".join(words[j : j + n]) for j in range(len(words) - n + 1))
        scores.append(max(SequenceMatcher(None, sub, w).quick_ratio() for w in windows))
    return scores


def random_text(rng, words):
    alphabet = "aabbcdeeeé#,.;xyz\ud800"
    return " ".join("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(words))


def test_window_scores_equal_difflib_quick_ratio_to_the_last_bit():
    rng = random.Random(20230601)
    for _ in range(300):
        texts = [random_text(rng, rng.randint(0, 30)) for _ in range(rng.randint(1, 6))]
        sub = random_text(rng, rng.randint(1, 25))
        assert WindowScorer(texts).window_scores(sub).tolist() == difflib_window_scores(sub, texts)


def test_match_and_best_matches_equal_the_difflib_matcher():
    rng = random.Random(7)
    for _ in range(200):
        texts = [random_text(rng, rng.randint(0, 25)) for _ in range(rng.randint(1, 5))]
        subs = [random_text(rng, rng.randint(1, 12)) for _ in range(4)]
        # Some sub-sentences are pieces of a candidate, so substrings are exercised too.
        donor = rng.choice(texts).split()
        if donor:
            start = rng.randrange(len(donor))
            subs.append(" ".join(donor[start : start + rng.randint(1, 8)]))
        fast, slow = WindowScorer(texts), DifflibMatcher(texts)
        for sub in subs:
            assert fast.match(sub) == slow.match(sub)
        for threshold in (0.3, 0.6, 0.85, 1.0):
            assert fast.best_matches(subs, threshold) == slow.best_matches(subs, threshold)


def test_an_earlier_exact_anagram_window_beats_a_later_substring():
    texts = ["ba dc zz", "xx ab cd yy"]
    # "ba dc" has exactly the characters of "ab cd": quick_ratio 1.0, and it comes first.
    assert DifflibMatcher(texts).match("ab cd") == (0, 1.0)
    assert WindowScorer(texts).match("ab cd") == (0, 1.0)
    assert WindowScorer(texts).best_matches(["ab cd"], 0.85) == [0]


def test_substrings_checked_together_for_earlier_exact_windows_match_difflib():
    # Several substrings of later candidates in one call: some have an earlier window of exactly their
    # characters (which wins the tie), some do not; "#" words count the pad words.
    texts = ["ba dc zz", "# #", "xx ab cd yy", "q # r", "ef gh ij"]
    subs = ["ab cd", "gh ij", "# r", "cd yy", "# #", "ef"]
    assert WindowScorer(texts).best_matches(subs, 0.85) == DifflibMatcher(texts).best_matches(subs, 0.85)
    assert WindowScorer(texts).best_matches(subs, 0.85)[0] == 0


def test_a_scorer_without_candidates_matches_nothing():
    assert WindowScorer([]).match("anything") == (-1, 0.0)
    assert WindowScorer([]).best_matches(["anything"], 0.5) == [None]


# --- robustness ------------------------------------------------------------------------------------


def build(records, nlp):
    return build_rm_files(records, nlp=nlp)


@pytest.mark.parametrize("prediction", ["", "   \n  "])
def test_it_skips_a_prediction_without_sentences_with_a_reason(nlp, prediction):
    built = build([record(**{FIRST_PREDICTION: prediction})], nlp)
    for name in (NF_ERR_SUBSENTENCE, F_ERR_SENTENCE):
        assert built.files[name].content == ""
        assert built.files[name].skipped == {"prediction 1 has no sentences": 1}


def test_it_scores_an_empty_other_prediction_as_covering_nothing(nlp):
    built = build([record(**{PREDICTION_KEYS[3]: ""})], nlp)
    kept = json.loads(built.files[COMP_SEQUENCE].content)
    assert len(kept) == 1
    # Prediction 4 covers nothing, so every prediction that covers something beats it.
    by_pair = dict(zip(PREFERENCE_INDEX_PAIRS, kept[0]["preference"]))
    assert by_pair[(0, 3)] == 1 and by_pair[(2, 3)] == 1


def test_it_tags_spans_touching_both_ends_of_the_text(nlp):
    prediction = record()[FIRST_PREDICTION]
    errors = [
        {"error type": UNVERIFIABLE, "explanation": "", "start": 0, "end": 4},
        {"error type": IRRELEVANT, "explanation": "", "start": prediction.index("It won"), "end": len(prediction)},
    ]
    built = build([record(feedback={"errors": errors})], nlp)
    (nf,) = lines_of(built.files[NF_ERR_SUBSENTENCE].content)
    (f,) = lines_of(built.files[F_ERR_SENTENCE].content)
    assert [t for t in nf["feedback_tags"] if t != IGNORE] == [NO_ERROR, NF_ERR]
    separators = [i for i, word in enumerate(f["text"]) if word == SEPARATOR]
    assert [f["feedback_tags"][i] for i in separators] == [F_ERR, IGNORE]


def test_it_drops_short_non_factual_spans_but_keeps_short_factual_ones(nlp):
    prediction = record()[FIRST_PREDICTION]
    start = prediction.index("Nebula")
    errors = [
        {"error type": IRRELEVANT, "explanation": "", "start": start, "end": start + len("Nebula Award")},
        {"error type": WRONG_GROUNDING, "explanation": "", "start": 0, "end": 4},
    ]
    built = build([record(feedback={"errors": errors})], nlp)
    (nf,) = lines_of(built.files[NF_ERR_SUBSENTENCE].content)
    (f,) = lines_of(built.files[F_ERR_SENTENCE].content)
    assert NF_ERR not in nf["feedback_tags"]
    assert [t for t in f["feedback_tags"] if t != IGNORE] == [F_ERR, NO_ERROR]


def test_it_maps_spans_through_unicode_and_repeated_whitespace(nlp):
    prediction = "  Ça   commence bien.\n\nEnsuite,   Zürich     est   une très grande ville suisse célèbre.  "
    start = prediction.index("Zürich")
    errors = [{"error type": UNVERIFIABLE, "explanation": "", "start": start, "end": start + len("Zürich")}]
    built = build([record(**{FIRST_PREDICTION: prediction}, feedback={"errors": errors})], nlp)
    (f,) = lines_of(built.files[F_ERR_SENTENCE].content)
    answer = f["text"][f["text"].index("answer:") + 1 :]
    assert " ".join(answer) == "</s> " + " </s> ".join(
        " ".join(s.split()) for s in ["Ça commence bien.", "Ensuite, Zürich est une très grande ville suisse célèbre."]
    )
    tags = f["feedback_tags"][f["text"].index("answer:") + 1 :]
    assert [t for t in tags if t != IGNORE] == [NO_ERROR, F_ERR]
    assert "\\u00c7a" in built.files[F_ERR_SENTENCE].content  # ASCII escapes, as json.dumps writes them


def test_it_writes_no_context_for_an_example_without_passages(nlp):
    built = build([record(passages=[])], nlp)
    (f,) = lines_of(built.files[F_ERR_SENTENCE].content)
    assert "context:" not in f["text"]
    assert built.files[COMP_SEQUENCE].skipped == {"no passage sentences to match": 1}
    assert json.loads(built.files[COMP_SEQUENCE].content) == []


def test_it_skips_an_example_whose_sentences_all_have_only_non_factual_errors(nlp):
    prediction = record()[FIRST_PREDICTION]
    errors = [{"error type": IRRELEVANT, "explanation": "", "start": 0, "end": len(prediction)}]
    built = build([record(feedback={"errors": errors})], nlp)
    assert built.files[F_ERR_SENTENCE].written == 0
    assert built.files[F_ERR_SENTENCE].skipped == {"every sentence has only non-factual errors (all tags Ignore)": 1}
    assert built.files[NF_ERR_SUBSENTENCE].written == 1


@pytest.mark.parametrize(
    "span",
    [{"start": 5, "end": 5000}, {"start": -1, "end": 3}, {"start": 7, "end": 7}, {"start": "0", "end": 3}],
)
def test_it_skips_an_example_with_a_span_outside_the_prediction(nlp, span):
    errors = [{"error type": IRRELEVANT, "explanation": "", **span}]
    built = build([record(feedback={"errors": errors})], nlp)
    (reason,) = built.files[NF_ERR_SUBSENTENCE].skipped
    assert reason.startswith("error 0 span")


def test_it_skips_malformed_records_and_keeps_going(nlp):
    broken = record()
    del broken["question"]
    built = build([42, broken, record()], nlp)
    for name in RM_FILE_NAMES:
        assert built.files[name].written == 1
    assert built.files[NF_ERR_SUBSENTENCE].skipped == {
        "record is not an object": 1,
        "'question' missing or not a string": 1,
    }
    assert json.loads(built.files[NF_ERR_SUBSENTENCE].content.splitlines()[0])["id"] == "2"


def test_it_leaves_out_an_example_with_no_relevant_passage_sentence(nlp):
    built = build(
        [record(feedback={"corrected-prediction": "Completely unrelated words about cooking pasta al dente."})], nlp
    )
    assert built.files[COMP_SEQUENCE].skipped == {"no relevant passage sentence matches the corrected prediction": 1}


def test_a_minor_missing_sentence_counts_only_when_prediction_1_says_it(nlp):
    corrected = record()["feedback"]["corrected-prediction"]
    minor = [{"error type": MISSING_MINOR, "passage_id": 1, "sentence_id": [3]}]
    # Hugo sentence (1, 3) is minor and prediction 1 does not say it: only (1, 1) stays relevant.
    built = build([record(feedback={"missing-info": minor, "corrected-prediction": corrected})], nlp)
    (kept,) = json.loads(built.files[COMP_SEQUENCE].content)
    by_pair = dict(zip(PREFERENCE_INDEX_PAIRS, kept["preference"]))
    assert by_pair[(0, 2)] == 0  # predictions 1 and 3 both cover (1, 1)


def test_it_keeps_the_record_and_its_key_order_and_replaces_only_the_preference(nlp):
    original = record()
    built = build([copy.deepcopy(original)], nlp)
    (kept,) = json.loads(built.files[COMP_SEQUENCE].content)
    assert list(kept) == list(original)
    assert {k: v for k, v in kept.items() if k != "preference"} == {
        k: v for k, v in original.items() if k != "preference"
    }


# --- preference pairs (TRL) --------------------------------------------------------------------------


def test_it_writes_one_pair_per_non_tied_preference(dev_records):
    result = preference_pairs(dev_records[:40])
    pairs = lines_of(result.content)
    expected = sum(1 for r in dev_records[:40] for p in r["preference"] if p != 0)
    assert len(pairs) == result.written == expected
    assert result.skipped["tied pairs"] == sum(r["preference"].count(0) for r in dev_records[:40])
    assert all(set(p) == {"prompt", "chosen", "rejected"} for p in pairs)


def test_each_pair_line_is_json_dumps_of_the_pair(dev_records):
    # The lines are put together from values encoded once per record: byte for byte json.dumps of the dict.
    expected = []
    for r in dev_records[:60]:
        predictions = [r[f"prediction {k}"] for k in range(1, 5)]
        for (a, b), choice in zip(rm_files.PREFERENCE_INDEX_PAIRS, r["preference"]):
            if choice:
                chosen, rejected = (a, b) if choice == 1 else (b, a)
                prompt = rm_files.preference_prompt(r)
                line = {"prompt": prompt, "chosen": predictions[chosen], "rejected": predictions[rejected]}
                expected.append(json.dumps(line) + "\n")
    assert preference_pairs(dev_records[:60]).content == "".join(expected)


def test_it_orders_chosen_and_rejected_by_the_preference():
    r = record(preference=[1, 2, 0, 0, 0, 0])
    pairs = lines_of(preference_pairs([r]).content)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [
        (r[FIRST_PREDICTION], r[PREDICTION_KEYS[1]]),
        (r[PREDICTION_KEYS[2]], r[FIRST_PREDICTION]),
    ]


def test_the_prompt_is_the_reward_model_input_before_the_answer():
    r = record()
    prompt = preference_prompt(r)
    assert prompt.startswith("question: Who wrote the novel Dune? context: wikipage: Dune (novel) text: Dune is")
    assert prompt.endswith(" answer: ")
    assert "wikipage: Frank Herbert text: Franklin" in prompt
    assert preference_prompt(record(passages=[])) == "question: Who wrote the novel Dune? answer: "


def test_it_skips_a_record_with_a_malformed_preference():
    result = preference_pairs([record(preference=[1, 2, 3, 0, 0, 0]), record(preference=[1])])
    assert result.written == 0
    assert result.skipped == {"'preference' is not a list of six values in 0, 1, 2": 2}


def test_it_counts_examples_where_every_pair_is_tied():
    result = preference_pairs([record(preference=[0] * 6)])
    assert result.content == ""
    assert result.skipped["examples with every pair tied"] == 1
