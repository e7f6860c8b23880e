"""Sentence and sub-sentence splitting: the segments that fine-grained feedback labels.

The reward-model files and the PPO reward functions must cut text into the
same segments, so both use this module. The method (docs/FINE_GRAINED_RLHF.md,
section 2):

- sentences come from a spaCy pipeline; the words of a sentence are
  `sent.text.split()`. spaCy may end a sentence inside a whitespace-separated
  word (`victory.S`), so a "word" here can be a piece of such a word.
- a sentence is cut into sub-sentences after words ending in `, ; ! ?`, but
  never leaving fewer than `MIN_SUBSENTENCE_WORDS` words after the cut, and a
  too-short sub-sentence that is not the sentence's first is merged into the
  one before it.

Offsets: `sentence_words`, `subsentence_words` and `segment_spans` give
character offsets into the original text, so code that holds token offsets
(PPO) finds the token ending a segment without re-tokenising decoded text.

No Django here: this runs under `accelerate launch`, in scripts and in tests.
"""

from __future__ import annotations

import json
import os
import re
import string
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np

from annotation.qa.errors import BadRequest
from annotation.qa.tokenizer_rules import RULES_FORMAT, RuleTokenizer, export_rules, is_punct
from annotation.qa.vocab import SENTENCE, SUBSENTENCE

AUTO = "auto"
SENTENCIZER = "sentencizer"
PREFERRED_MODEL = "en_core_web_sm"
MIN_SUBSENTENCE_WORDS = 5
SUBSENTENCE_END_CHARS = frozenset(",;!?")

_WORD = re.compile(r"\S+")  # \S is the complement of what str.split() splits on

Level = Literal["sentence", "subsentence"]
T = TypeVar("T")


class SplitterNotAvailable(BadRequest):
    """The named splitter is neither `auto`, `sentencizer` nor an installed spaCy model."""


def default_splitter_name() -> str:
    """The splitter named by the `SENTENCE_SPLITTER` environment variable (default `auto`)."""
    return os.environ.get("SENTENCE_SPLITTER", "").strip() or AUTO


def load_splitter(name: str | None = None) -> tuple[Any, str]:
    """The spaCy pipeline for `name` (default: `SENTENCE_SPLITTER`) and the name it resolved to.

    `auto` prefers `en_core_web_sm` and falls back to spaCy's rule-based
    sentencizer when that model is not installed; the resolved name says which
    one was used, because the two cut sentences differently. Each pipeline is
    loaded once per process.
    """
    return _load_splitter((name or "").strip() or default_splitter_name())


# Pipelines that never run a PyTorch model: the rule-based sentencizer and spaCy's CNN small model.
_TORCH_FREE = frozenset({AUTO, SENTENCIZER, PREFERRED_MODEL})


def _import_spacy(*, without_torch: bool) -> Any:
    """spaCy, slow to import, so only code that splits pays for it; without torch where torch is not needed.

    spaCy imports thinc, which imports torch if it can (3 of the 4 seconds the
    import takes) for models that run on PyTorch. For the pipelines in
    `_TORCH_FREE`, where no one has imported torch yet (a command building
    reward-model files, a `default` worker), torch is hidden while spaCy loads:
    a None in sys.modules makes `import torch` fail, thinc records
    `has_torch = False`, and torch stays importable for everyone afterwards.
    A process that imported torch first (a trainer) keeps it for thinc too.

    spaCy's package also imports its command line (`spacy.cli`: typer,
    requests, weasel; a quarter of a second) for the one name `spacy.info`;
    `_without_spacy_cli` leaves it out while the package loads.
    """
    if "spacy" in sys.modules:
        import spacy

        return spacy
    with _without_spacy_cli():
        if without_torch and "torch" not in sys.modules and "thinc" not in sys.modules:
            sys.modules["torch"] = None  # type: ignore[assignment]
            try:
                import spacy
            finally:
                if sys.modules.get("torch", 0) is None:
                    del sys.modules["torch"]
            return spacy
        import spacy

        return spacy


@contextmanager
def _without_spacy_cli() -> Iterator[None]:
    """While spaCy's package loads, `from .cli.info import info` finds a stand-in instead of the command line.

    Nothing else in spaCy imports `spacy.cli` at import time. The stand-ins
    leave sys.modules afterwards, so `import spacy.cli` (or `spacy.cli.download`)
    loads the real package later, and `spacy.info` loads the real function when
    called.
    """
    if "spacy.cli" in sys.modules:
        yield
        return
    package = ModuleType("spacy.cli")
    info_module = ModuleType("spacy.cli.info")

    def info(*args: Any, **kwargs: Any) -> Any:
        from spacy.cli.info import info as real_info

        return real_info(*args, **kwargs)

    info_module.info = info  # type: ignore[attr-defined]
    stand_ins = {"spacy.cli": package, "spacy.cli.info": info_module}
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
        spacy = sys.modules.get("spacy")
        if spacy is not None and getattr(spacy, "cli", None) is package:
            delattr(spacy, "cli")


@lru_cache(maxsize=8)
def _load_splitter(name: str) -> tuple[Any, str]:
    spacy = _import_spacy(without_torch=name in _TORCH_FREE)

    if name == AUTO:
        try:
            return spacy.load(PREFERRED_MODEL), PREFERRED_MODEL
        except OSError:
            name = SENTENCIZER
    if name == SENTENCIZER:
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        return nlp, SENTENCIZER
    try:
        return spacy.load(name), name
    except OSError as exc:
        raise SplitterNotAvailable(
            f"sentence splitter {name!r} is not available: use 'auto', 'sentencizer' "
            f"or the name of an installed spaCy model ({exc})"
        ) from exc


class LazySplitter:
    """A splitter that loads its spaCy pipeline when first used, so code that never splits never imports spaCy."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self._nlp: Any = None
        self._resolved = ""

    @property
    def loaded(self) -> bool:
        return self._nlp is not None

    @property
    def resolved(self) -> str:
        """The name the splitter resolved to (loads it)."""
        self._pipeline()
        return self._resolved

    def _pipeline(self) -> Any:
        if self._nlp is None:
            self._nlp, self._resolved = load_splitter(self.name)
        return self._nlp

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._pipeline()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_nlp", "_resolved", "name"):
            raise AttributeError(name)
        return getattr(self._pipeline(), name)


class Sentence(NamedTuple):
    """One spaCy sentence: its text (`sent.text`) and where that text starts in the source."""

    start: int
    text: str

    def words(self) -> list[str]:
        return self.text.split()


class Word(NamedTuple):
    """A whitespace-free piece of text and its character offsets [start, end) in the source."""

    text: str
    start: int
    end: int


def _doc_sentences(doc: Any) -> list[Sentence]:
    # A sentence of only whitespace has no words, so no segment to label: it is dropped.
    if "sents" in doc.user_hooks or not doc.has_annotation("SENT_START") or not len(doc):
        return [Sentence(s.start_char, s.text) for s in doc.sents if s.text and not s.text.isspace()]
    # The same spans as `doc.sents` (token 0 always starts one; else SENT_START == 1) read from
    # one array instead of a Python Span and Token per token.
    from spacy.attrs import IDX, LENGTH, SENT_START

    table = doc.to_array([SENT_START, IDX, LENGTH]).astype(np.int64)
    cuts = (np.flatnonzero(table[1:, 0] == 1) + 1).tolist()
    return _cut_text(doc.text, [0, *cuts], table[:, 1].tolist(), (table[:, 1] + table[:, 2]).tolist())


def _cut_text(text: str, firsts: list[int], idx: list[int], ends: list[int]) -> list[Sentence]:
    """Non-blank sentences starting at tokens `firsts`; `Span.text` runs from its first token's
    start to its last token's end, so it is a slice of the doc's text."""
    out = []
    for first, stop in zip(firsts, [*firsts[1:], len(idx)]):
        start = idx[first]
        piece = text[start : ends[stop - 1]]
        if piece and not piece.isspace():
            out.append(Sentence(start, piece))
    return out


def _plain_sentencizer(nlp: Any) -> Any:
    """The pipeline's only component when it is spaCy's rule-based `Sentencizer` itself, else None."""
    pipeline = getattr(nlp, "pipeline", None)
    if not isinstance(pipeline, list) or len(pipeline) != 1 or not hasattr(nlp, "make_doc"):
        return None
    from spacy.pipeline import Sentencizer

    component = pipeline[0][1]
    return component if type(component) is Sentencizer else None


@lru_cache(maxsize=8)
def _plain_run(punct_chars: frozenset[str]) -> tuple[re.Pattern[str] | None, str]:
    """Runs of "plain" words (each starts with an ASCII letter or digit and holds no character of
    `punct_chars`; one space between them; whitespace or the text's ends around the run), and a
    one-character plain word to stand for a run."""
    characters = "".join(sorted(set("".join(punct_chars))))
    firsts = [c for c in string.ascii_letters + string.digits if c not in characters]
    if not firsts:
        return None, ""
    word = rf"[{''.join(firsts)}][^\s{re.escape(characters)}]*"
    placeholder = firsts[0]
    return re.compile(rf"(?<!\S){word}(?: {word})*(?!\S)"), placeholder


def _shortened(text: str, run: re.Pattern[str] | None, placeholder: str) -> tuple[str, np.ndarray, np.ndarray]:
    """`text` with each plain-word run replaced by `placeholder` (one character), where each placeholder
    ends in the result, and how many characters were removed up to and including each placeholder."""
    spans = [m.span() for m in run.finditer(text)] if run is not None else []
    if not spans:
        return text, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    gaps = [text[end:start] for (_, end), (start, _) in zip([(0, 0), *spans], [*spans, (len(text), 0)])]
    bounds = np.array(spans, dtype=np.int64)
    removed = np.cumsum(bounds[:, 1] - bounds[:, 0] - 1)
    return placeholder.join(gaps), bounds[:, 1] - removed, removed


def _sentencized_many(nlp: Any, sentencizer: Any, texts: list[str]) -> list[list[Sentence]]:
    """`Sentencizer.predict` for tokenised texts, on arrays for all of them at once.

    The sentencizer walks tokens with a flag: a token in `punct_chars` sets
    it, and a token that is neither punctuation nor in `punct_chars` (a
    "plain" token) starts a sentence when the flag is set, and clears it.
    After any plain token the flag is clear, so a plain token starts a
    sentence exactly when a `punct_chars` token lies between it and the
    previous plain token of its doc (or the doc's first token). Token 0
    always starts one. Spans are then cut as `doc.sents` cuts them.

    Most words never matter to that walk, so they are not tokenised (spaCy's
    tokeniser was most of the time of a first build). spaCy cuts text at
    whitespace and tokenises each piece on its own, into tokens that lay the
    piece end to end. In a piece that starts with an ASCII letter or digit
    and holds no character of any `punct_chars` entry, no token can be a
    `punct_chars` entry, and the first token starts the piece and is plain
    (a token holding a letter or digit is not punctuation). A run of such
    pieces therefore acts on the walk as one plain token from the run's
    start to its end, and is tokenised as one plain character instead;
    token offsets are mapped back to the original text.
    """
    from spacy.attrs import IDX, IS_PUNCT, LENGTH, ORTH

    run, placeholder = _plain_run(frozenset(sentencizer.punct_chars))
    shortened = [_shortened(text, run, placeholder) for text in texts]
    docs = [nlp.make_doc(short) for short, _, _ in shortened]
    tables = [doc.to_array([ORTH, IS_PUNCT, IDX, LENGTH]).astype(np.int64) for doc in docs]
    strings = nlp.vocab.strings
    punct_ids = np.array([strings[c] for c in sentencizer.punct_chars], dtype=np.uint64).astype(np.int64)
    for table in tables:
        # Column 0 becomes "is one of punct_chars" (ORTH ids are uint64 hashes, compared as int64 bits).
        table[:, 0] = np.isin(table[:, 0], punct_ids)
    return _place_sentences(texts, shortened, tables)


def _place_sentences(
    texts: list[str], shortened: list[tuple[str, np.ndarray, np.ndarray]], tables: list[np.ndarray]
) -> list[list[Sentence]]:
    """The sentencizer's walk (see `_sentencized_many`) over token tables of the shortened texts.

    Each table has a row per token: whether it is one of punct_chars, whether
    it is punctuation (IS_PUNCT), its offset and its length in the shortened
    text; offsets are mapped back to the original text.
    """
    sizes = np.fromiter(map(len, tables), dtype=np.int64, count=len(tables))
    if not sizes.sum():
        return [[] for _ in texts]
    table = np.concatenate(tables)
    punct = table[:, 0] != 0
    plain = (table[:, 1] == 0) & ~punct
    doc_first = np.zeros(len(table), dtype=bool)
    firsts_at = np.cumsum(sizes) - sizes
    doc_first[firsts_at[sizes > 0]] = True
    punct_before = np.cumsum(punct) - punct  # punct_chars tokens before each token
    marks = np.flatnonzero(plain | doc_first)
    since = punct_before[marks[1:]] - punct_before[marks[:-1]]
    starts = np.concatenate([marks[:1], marks[1:][(since > 0) & plain[marks[1:]] | doc_first[marks[1:]]]])
    starts_of = np.split(starts, np.searchsorted(starts, firsts_at[1:]))
    idx = table[:, 2].astype(np.int64)
    ends = idx + table[:, 3].astype(np.int64)
    out = []
    for text, (_, placeholder_ends, removed), doc_starts, first, size in zip(
        texts, shortened, starts_of, firsts_at.tolist(), sizes.tolist()
    ):
        if not size:
            out.append([])
            continue
        firsts = (doc_starts - first).tolist()
        doc_idx, doc_ends = idx[first : first + size], ends[first : first + size]
        if len(removed):
            # A position after k placeholders lies sum(removed of those k) further on in the original.
            shift = np.concatenate([[0], removed])
            doc_idx = doc_idx + shift[np.searchsorted(placeholder_ends, doc_idx, side="right")]
            doc_ends = doc_ends + shift[np.searchsorted(placeholder_ends, doc_ends, side="right")]
        out.append(_cut_text(text, firsts, doc_idx.tolist(), doc_ends.tolist()))
    return out


class RuleSentencizer:
    """spaCy's `blank("en")` + sentencizer pipeline, for `sentences` and `sentences_many`, without spaCy.

    It tokenises with spaCy's own tokenizer rules, exported once per spaCy
    version (annotation.qa.tokenizer_rules), so a process that only splits
    sentences does not import spaCy (about a third of a second) nor build the
    pipeline. The same plain-word runs as `_sentencized_many` stand in for
    their words; a text where spaCy's re-applied exceptions could change a
    token of the rest is tokenised whole.
    """

    def __init__(self, rules: dict[str, Any]) -> None:
        self.tokenizer = RuleTokenizer(rules)
        self.punct_chars = self.tokenizer.punct_chars
        self._run, self._placeholder = _plain_run(self.punct_chars)
        self._is_punct: dict[str, bool] = {}

    def sentences_many(self, texts: list[str]) -> list[list[Sentence]]:
        """`sentences_many` for non-blank texts."""
        shortened, tables = [], []
        for text in texts:
            short = _shortened(text, self._run, self._placeholder)
            tokens = self.tokenizer.tokens(short[0])
            if self.tokenizer.rematch_changes(tokens):
                short = (text, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
                tokens = self.tokenizer.rematch(text, self.tokenizer.tokens(text))
            shortened.append(short)
            tables.append(self._table(tokens))
        return _place_sentences(texts, shortened, tables)

    def _table(self, tokens: list[tuple[int, str]]) -> np.ndarray:
        is_punct_of = self._is_punct
        rows = []
        for start, token in tokens:
            punct = is_punct_of.get(token)
            if punct is None:
                punct = is_punct_of[token] = is_punct(token)
            rows.append((token in self.punct_chars, punct, start, len(token)))
        return np.array(rows, dtype=np.int64).reshape(len(rows), 4)


def rules_cache_path(cache_dir: str | Path, spacy_version: str) -> Path:
    return Path(cache_dir) / f"sentencizer-rules-spacy-{spacy_version}.json"


def load_rule_sentencizer(cache_dir: str | Path) -> RuleSentencizer | None:
    """The sentencizer from rules cached in `cache_dir` for the installed spaCy, exporting them first if needed.

    None when spaCy is not installed or its pipeline does something the port
    does not reproduce (then the caller loads spaCy's own pipeline). The file
    is named by spaCy's version, so an upgrade exports afresh.
    """
    try:
        version = metadata.version("spacy")
    except metadata.PackageNotFoundError:
        return None
    path = rules_cache_path(cache_dir, version)
    try:
        rules = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        rules = None
    if not isinstance(rules, dict) or rules.get("format") != RULES_FORMAT or rules.get("spacy_version") != version:
        nlp, _ = load_splitter(SENTENCIZER)
        rules = export_rules(nlp, _import_spacy(without_torch=True).__version__)
        if rules is None or rules["spacy_version"] != version:
            return None
        _write_rules(path, rules)
    return RuleSentencizer(rules)


def _write_rules(path: Path, rules: dict[str, Any]) -> None:
    # Beside the target and renamed over it, so a process reading it never sees half a file;
    # a cache that cannot be written only costs the next process the export again.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(rules, stream)
        os.replace(temp_name, path)
    except OSError:
        return


def load_splitter_cached(name: str | None, cache_dir: str | Path | None) -> tuple[Any, str]:
    """`load_splitter`, except that the sentencizer is a `RuleSentencizer` when its rules can be cached.

    For code that only calls `sentences` and `sentences_many` on the result
    (building reward-model files); others need spaCy's own pipeline.
    """
    name = (name or "").strip() or default_splitter_name()
    if name == AUTO and not _model_loadable(PREFERRED_MODEL):
        name = SENTENCIZER  # what `auto` falls back to, known without importing spaCy
    if name == SENTENCIZER and cache_dir is not None:
        splitter = _load_rule_sentencizer(str(cache_dir))
        if splitter is not None:
            return splitter, SENTENCIZER
    return load_splitter(name)


def _model_loadable(name: str) -> bool:
    """Whether `spacy.load(name)` could find the model: spacy.util.load_model's own tests, an installed
    distribution of that name or a folder of that name."""
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return Path(name).exists()
    return True


@lru_cache(maxsize=4)
def _load_rule_sentencizer(cache_dir: str) -> RuleSentencizer | None:
    return load_rule_sentencizer(cache_dir)


def sentences(nlp: Any, text: str) -> list[Sentence]:
    """The non-blank spaCy sentences of `text`."""
    if not text or text.isspace():
        return []
    if isinstance(nlp, RuleSentencizer):
        return nlp.sentences_many([text])[0]
    return _doc_sentences(nlp(text))


def sentences_many(nlp: Any, texts: Iterable[str], batch_size: int = 256) -> list[list[Sentence]]:
    """`sentences` of many texts, in order; spaCy processes them in batches, which is faster."""
    texts = list(texts)
    out: list[list[Sentence]] = [[] for _ in texts]
    todo = [i for i, text in enumerate(texts) if text and not text.isspace()]
    if isinstance(nlp, RuleSentencizer):
        for i, found in zip(todo, nlp.sentences_many([texts[i] for i in todo])):
            out[i] = found
        return out
    sentencizer = _plain_sentencizer(nlp)
    if sentencizer is not None:
        # Tokenise only, and place sentence starts as the sentencizer would, without a Python
        # Token object per token (most of the sentencizer's time).
        for i, found in zip(todo, _sentencized_many(nlp, sentencizer, [texts[i] for i in todo])):
            out[i] = found
        return out
    for i, doc in zip(todo, nlp.pipe((texts[i] for i in todo), batch_size=batch_size)):
        out[i] = _doc_sentences(doc)
    return out


def words_with_offsets(sentence: Sentence) -> list[Word]:
    base = sentence.start
    return [Word(m.group(), base + m.start(), base + m.end()) for m in _WORD.finditer(sentence.text)]


def subsentence_starts(words: Sequence[str], min_words: int = MIN_SUBSENTENCE_WORDS) -> list[bool]:
    """For each word of one sentence, whether it starts a sub-sentence (the first word always does)."""
    if not words:
        return []
    starts = [True] + [False] * (len(words) - 1)
    current = 0
    for i in range(1, len(words)):
        if words[i - 1][-1] not in SUBSENTENCE_END_CHARS or i + min_words >= len(words):
            continue
        if i - current >= min_words:
            starts[i] = True
            current = i
        elif current > 0:
            # Too short and not the sentence's first: it joins the previous sub-sentence.
            starts[current] = False
            starts[i] = True
            current = i
    return starts


def cut_subsentences(items: Sequence[T], words: Sequence[str]) -> list[list[T]]:
    """Group one sentence's `items` (its words, or anything parallel to them) into sub-sentences."""
    groups: list[list[T]] = []
    for item, start in zip(items, subsentence_starts(words)):
        if start:
            groups.append([])
        groups[-1].append(item)
    return groups


def split_sentences(nlp: Any, text: str) -> list[list[str]]:
    """The words of each sentence of `text` (`sent.text.split()` per spaCy sentence)."""
    return [s.words() for s in sentences(nlp, text)]


def split_subsentences(nlp: Any, text: str) -> list[list[str]]:
    """The words of each sub-sentence of `text`, in order; a sub-sentence never crosses a sentence end."""
    out: list[list[str]] = []
    for words in split_sentences(nlp, text):
        out.extend(cut_subsentences(words, words))
    return out


def sentence_words(nlp: Any, text: str) -> list[list[Word]]:
    """Words of each sentence of `text`, with offsets into `text`."""
    return [words_with_offsets(s) for s in sentences(nlp, text)]


def subsentence_words(nlp: Any, text: str) -> list[list[Word]]:
    """Words of each sub-sentence of `text`, with offsets into `text`."""
    out: list[list[Word]] = []
    for words in sentence_words(nlp, text):
        out.extend(cut_subsentences(words, [w.text for w in words]))
    return out


def segment_words(nlp: Any, text: str, level: Level) -> list[list[Word]]:
    """Words with offsets per segment, where a segment is a sentence or a sub-sentence."""
    if level == SENTENCE:
        return sentence_words(nlp, text)
    if level == SUBSENTENCE:
        return subsentence_words(nlp, text)
    raise ValueError(f"unknown segment level {level!r}: use {SENTENCE!r} or {SUBSENTENCE!r}")


def segment_spans(nlp: Any, text: str, level: Level) -> list[tuple[int, int]]:
    """Each segment as [start, end) character offsets into `text`: its first word's start, last word's end.

    `end - 1` is the segment's last non-space character: the token that covers
    it is the one that closes the segment in a generated sequence.
    """
    return [(words[0].start, words[-1].end) for words in segment_words(nlp, text, level)]
