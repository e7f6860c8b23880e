"""spaCy's tokenizer and sentencizer from exported rules (annotation/qa/tokenizer_rules.py, text.RuleSentencizer)
must cut exactly where spaCy's own pipeline cuts."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from annotation.qa import text as splitting
from annotation.qa.text import (
    RuleSentencizer,
    load_rule_sentencizer,
    load_splitter,
    load_splitter_cached,
    rules_cache_path,
    sentences,
    sentences_many,
)
from annotation.qa.tokenizer_rules import RULES_FORMAT, RuleTokenizer, export_rules

from .test_text import AWKWARD_TEXTS, PIECES, _random_texts

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def nlp():
    return load_splitter("sentencizer")[0]


@pytest.fixture(scope="module")
def rules(nlp):
    import spacy

    exported = export_rules(nlp, spacy.__version__)
    assert exported is not None
    return json.loads(json.dumps(exported))  # as read back from the cache file


def _exception_heavy_texts(specials: list[str], seed: int, count: int) -> list[str]:
    """Exceptions (`Dr.`, `a.m.`, `:)`, `'s`) and their pieces side by side, with and without spaces between:
    where spaCy re-applies exceptions after tokenising."""
    rng = random.Random(seed)
    pieces = specials + PIECES + ["'", ":", ")", "(", "m.", "i.e", "\u2019", "a.m", ".", "10a.m", "s", "-", "_"]
    texts = []
    for _ in range(count):
        words = [rng.choice(pieces) for _ in range(rng.randint(1, 12))]
        texts.append("".join(word + rng.choice(["", "", " ", " ", "  ", "\n", "\t"]) for word in words))
    return texts


def _all_texts(rules, qa_feedback_dir) -> list[str]:
    records = json.loads((qa_feedback_dir / "dev_feedback.json").read_text(encoding="utf-8"))[:100]
    texts = AWKWARD_TEXTS + _random_texts(seed=11, count=1500)
    texts += _exception_heavy_texts(sorted(rules["specials"]), seed=3, count=3000)
    texts += [r[f"prediction {k}"] for r in records for k in range(1, 5)]
    texts += [r["feedback"]["corrected-prediction"] for r in records]
    texts += [sentence for r in records for passage in r["passages"] for sentence in passage[1:]]
    return texts


def test_the_rule_tokenizer_cuts_every_token_where_spacy_does(nlp, rules, qa_feedback_dir):
    tokenizer = RuleTokenizer(rules)
    for text in _all_texts(rules, qa_feedback_dir):
        expected = [(token.idx, token.text) for token in nlp.tokenizer(text)]
        assert tokenizer.rematch(text, tokenizer.tokens(text)) == expected, text


def test_it_re_applies_exceptions_after_tokenising_as_spacy_does(rules):
    tokenizer = RuleTokenizer(rules)
    # The piece "x.S." is cut into "x", ".", "S."; then the exception "x." is found in a row and applied,
    # so no sentence ends after "x".
    found = tokenizer.tokens("x.S. y")
    assert [t for _, t in found] == ["x", ".", "S.", "y"]
    assert tokenizer.rematch_changes(found)
    assert tokenizer.rematch("x.S. y", found) == [(0, "x."), (2, "S."), (5, "y")]
    assert [s.text for s in sentences(RuleSentencizer(rules), "x.S. y")] == ["x.S. y"]
    found = tokenizer.tokens("(see here): next")
    assert [t for _, t in tokenizer.rematch("(see here): next", found)] == ["(", "see", "here", "):", "next"]
    # The same tokens with a space between are no exception's text: nothing to change.
    assert not tokenizer.rematch_changes(tokenizer.tokens("x . S. y"))


def test_the_rule_sentencizer_gives_spacys_sentences(nlp, rules, qa_feedback_dir):
    texts = _all_texts(rules, qa_feedback_dir) + ["", "   "]
    expected = [
        [] if not text or text.isspace() else [(s.start_char, s.text) for s in nlp(text).sents if s.text.strip()]
        for text in texts
    ]
    splitter = RuleSentencizer(rules)
    assert [[(s.start, s.text) for s in found] for found in sentences_many(splitter, texts)] == expected
    assert [[(s.start, s.text) for s in sentences(splitter, text)] for text in texts[:300]] == expected[:300]


def test_it_exports_nothing_for_a_pipeline_it_does_not_reproduce(nlp):
    import spacy

    assert export_rules(nlp, "4.0.0") is None  # a version the port was not checked against
    tagged = spacy.blank("en")
    tagged.add_pipe("sentencizer")
    tagged.add_pipe("lemmatizer", config={"mode": "lookup"})
    assert export_rules(tagged, spacy.__version__) is None
    matched = spacy.blank("en")
    matched.add_pipe("sentencizer")
    matched.tokenizer.token_match = lambda text: text == "x"
    assert export_rules(matched, spacy.__version__) is None


def test_the_rules_are_cached_per_spacy_version_and_read_back(tmp_path):
    from importlib import metadata

    splitter = load_rule_sentencizer(tmp_path)
    path = rules_cache_path(tmp_path, metadata.version("spacy"))
    assert isinstance(splitter, RuleSentencizer) and path.is_file()
    cached = json.loads(path.read_text(encoding="utf-8"))
    assert cached["format"] == RULES_FORMAT and cached["spacy_version"] == metadata.version("spacy")
    # A later process reads the file and never imports spaCy.
    code = (
        "import sys; from annotation.qa.text import load_rule_sentencizer, sentences; "
        f"s = load_rule_sentencizer({str(tmp_path)!r}); "
        "print([x.text for x in sentences(s, 'Dr. Smith left at 10 a.m. today. He did!')], 'spacy' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['Dr. Smith left at 10 a.m. today.', 'He did!'] False"


def test_a_stale_or_broken_cache_file_is_exported_again(tmp_path):
    from importlib import metadata

    path = rules_cache_path(tmp_path, metadata.version("spacy"))
    path.write_text(json.dumps({"format": RULES_FORMAT, "spacy_version": "0.0.1", "specials": {}}), encoding="utf-8")
    assert isinstance(load_rule_sentencizer(tmp_path), RuleSentencizer)
    assert json.loads(path.read_text(encoding="utf-8"))["spacy_version"] == metadata.version("spacy")
    path.write_text("{not json", encoding="utf-8")
    assert isinstance(load_rule_sentencizer(tmp_path), RuleSentencizer)
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == RULES_FORMAT


def test_an_unwritable_cache_folder_still_gives_the_rule_sentencizer(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    splitter = load_rule_sentencizer(blocker / "cache")  # a folder under a file cannot be made
    assert [s.text for s in sentences(splitter, "One. Two.")] == ["One.", "Two."]


def test_only_the_sentencizer_with_a_cache_folder_loads_from_rules(tmp_path):
    splitter, name = load_splitter_cached("sentencizer", tmp_path)
    assert isinstance(splitter, RuleSentencizer) and name == "sentencizer"
    pipeline, name = load_splitter_cached("sentencizer", None)
    assert pipeline is load_splitter("sentencizer")[0] and name == "sentencizer"
    assert splitting._plain_sentencizer(pipeline) is not None


def test_auto_loads_from_rules_when_it_would_fall_back_to_the_sentencizer(tmp_path):
    splitter, name = load_splitter_cached("auto", tmp_path)
    assert name == load_splitter("auto")[1]
    assert isinstance(splitter, RuleSentencizer) == (name == "sentencizer")


def test_auto_leaves_it_to_spacy_when_the_model_may_be_there(tmp_path, monkeypatch):
    monkeypatch.setattr(splitting, "_model_loadable", lambda name: True)
    splitter, _ = load_splitter_cached("auto", tmp_path)
    assert not isinstance(splitter, RuleSentencizer)


def test_the_piece_cache_stays_bounded(rules, monkeypatch):
    from annotation.qa import tokenizer_rules

    monkeypatch.setattr(tokenizer_rules, "MAX_CACHED_PIECES", 3)
    tokenizer = RuleTokenizer(rules)
    for text in ["a.", "b.", "c.", "d.", "e.", "(f)"]:
        assert [t for _, t in tokenizer.tokens(text)] == [t for _, t in RuleTokenizer(rules).tokens(text)]
        assert len(tokenizer._pieces) <= 3
