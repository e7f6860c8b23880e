"""Reward-model training files from qa-feedback records. Pure: no ORM, no files.

Input: records exactly as in `dev_feedback.json` (plain dicts). Output: file
contents as strings plus a summary of what was written and what was skipped,
and why. The method is docs/FINE_GRAINED_RLHF.md, section 2; the reference
files under `shared/data/qa_feedback/reference/` are the judge of every byte.

- `NF-ERR_subsentence` (relevance RM, R1): JSON lines, one `</s>` per
  sub-sentence of `prediction 1`, tagged `NF-ERR` or `O`.
- `F-ERR_sentence` (factuality RM, R2): JSON lines, one `</s>` per sentence,
  tagged `F-ERR`, `O`, or `Ignore` (a sentence with only a non-factual error).
- `COMP_sequence` (completeness RM, R3): the records whose corrected
  prediction grounds in passage sentences, with `preference` recomputed from
  how many of those sentences each prediction covers.
- `preference_pairs`: the human preferences as TRL chosen/rejected JSON lines.

Speed: completeness matching scores every window of passage words against
every sub-sentence with `difflib.SequenceMatcher.quick_ratio`, which depends
only on character counts. `WindowScorer` keeps per-window character counts as
prefix sums, so a window costs a subtraction instead of a string join and a
Counter, and the float is formed exactly as difflib forms it.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np

from annotation.qa.forked import Forked, WorkerFailed, can_fork
from annotation.qa.text import Sentence, Word, cut_subsentences, sentences, sentences_many, words_with_offsets
from annotation.qa.vocab import (
    COMP_SEQUENCE,
    F_ERR,
    F_ERR_SENTENCE,
    FACTUAL_ERROR_TYPES,
    FIRST_PREDICTION,
    FIRST_PREFERRED,
    IGNORE,
    MISSING_MINOR,
    NF_ERR,
    NF_ERR_SUBSENTENCE,
    NO_ERROR,
    NO_PREFERENCE,
    PREDICTION_KEYS,
    PREFERENCE_INDEX_PAIRS,
    PREFERENCE_VALUES,
    RM_FILE_NAMES,
    SECOND_PREFERRED,
    SENTENCE,
    SEPARATOR,
    SUBSENTENCE,
)

PREFERENCE_PAIRS_FILE = "preference_pairs"
SUMMARY = "summary"
OUTPUT_NAMES = (*RM_FILE_NAMES, PREFERENCE_PAIRS_FILE, SUMMARY)

MIN_NON_FACTUAL_SPAN_WORDS = 5
MATCH_THRESHOLD = 0.85
WINDOW_SLACK = 0.05
PAD_WORD = "#"

Progress = Callable[[int, int], None]


class SkipExample(Exception):
    """This example cannot go into a file; the message is the reason counted in the summary."""


@dataclass
class FileResult:
    """One built file: its content and what went in or was left out."""

    name: str
    content: str = ""
    written: int = 0
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {"written": self.written, "skipped": dict(sorted(self.skipped.items()))}


@dataclass
class RmFiles:
    """The three reward-model files built from one list of records."""

    files: dict[str, FileResult]
    examples: int
    splitter: str

    def summary(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "splitter": self.splitter,
            "files": {name: result.summary() for name, result in self.files.items()},
        }


def output_paths(out_dir: str | Path, split: str) -> dict[str, Path]:
    """Where each output of a build of `split` goes inside `out_dir`: `NAME/SPLIT.json` (pairs: `.jsonl`)."""
    out = Path(out_dir)
    paths = {name: out / name / f"{split}.json" for name in OUTPUT_NAMES}
    paths[PREFERENCE_PAIRS_FILE] = out / PREFERENCE_PAIRS_FILE / f"{split}.jsonl"
    return paths


def norm(text: str) -> str:
    return " ".join(text.split())


# --- validation at the edge -------------------------------------------------------------------


def _require_str(record: dict, key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise SkipExample(f"'{key}' missing or not a string")
    return value


def _passages(record: dict) -> list[list[str]]:
    passages = record.get("passages")
    if passages is None:
        return []
    if not isinstance(passages, list) or not all(
        isinstance(p, list) and p and all(isinstance(s, str) for s in p) for p in passages
    ):
        raise SkipExample("'passages' is not a list of [title, sentence, ...] string lists")
    return passages


def _feedback(record: dict) -> dict:
    feedback = record.get("feedback")
    if not isinstance(feedback, dict):
        raise SkipExample("'feedback' missing or not an object")
    return feedback


def _error_spans(record: dict, prediction: str) -> list[tuple[str, int, int]]:
    errors = _feedback(record).get("errors", [])
    if not isinstance(errors, list):
        raise SkipExample("'feedback.errors' is not a list")
    spans = []
    for n, error in enumerate(errors):
        if not isinstance(error, dict):
            raise SkipExample(f"error {n} is not an object")
        kind, start, end = error.get("error type"), error.get("start"), error.get("end")
        if not isinstance(kind, str):
            raise SkipExample(f"error {n} has no 'error type'")
        if type(start) is not int or type(end) is not int or not 0 <= start < end <= len(prediction):
            raise SkipExample(f"error {n} span [{start!r}, {end!r}) is outside prediction 1")
        spans.append((kind, start, end))
    return spans


# --- splitting, batched ------------------------------------------------------------------------


class _Splits:
    """Sentences of the texts a batch of records needs, split in one spaCy batch and kept by text."""

    def __init__(self, nlp: Any) -> None:
        self.nlp = nlp
        self._sentences: dict[str, list[Sentence]] = {}
        self._subsentences: dict[str, list[str]] = {}
        # NF-ERR and F-ERR both read prediction 1's words: found once per batch.
        self._words: dict[str, list[list[Word]]] = {}

    def prefetch(self, texts: Iterable[str]) -> None:
        todo = [text for text in dict.fromkeys(texts) if text not in self._sentences]
        self._sentences.update(zip(todo, sentences_many(self.nlp, todo)))

    def sentences(self, text: str) -> list[Sentence]:
        if text not in self._sentences:
            self._sentences[text] = sentences(self.nlp, text)
        return self._sentences[text]

    def subsentence_strings(self, text: str) -> list[str]:
        """Each sub-sentence of `text` as its words joined by single spaces."""
        if text not in self._subsentences:
            subs = []
            for sentence in self.sentences(text):
                words = sentence.words()
                subs += [" ".join(group) for group in cut_subsentences(words, words)]
            self._subsentences[text] = subs
        return self._subsentences[text]

    def sentence_words(self, prediction: str) -> list[list[Word]]:
        """Words of each sentence of the stripped `prediction`, with offsets into `prediction` itself."""
        if prediction not in self._words:
            stripped = prediction.strip()
            shift = len(prediction) - len(prediction.lstrip())
            self._words[prediction] = [
                words_with_offsets(Sentence(sentence.start + shift, sentence.text))
                for sentence in self.sentences(stripped)
            ]
        return self._words[prediction]

    def clear(self) -> None:
        self._sentences.clear()
        self._subsentences.clear()
        self._words.clear()


def _texts_to_split(record: Any, files: Collection[str]) -> list[str]:
    """Every text that building `files` will split for this record (so they can be split in one batch)."""
    if not isinstance(record, dict):
        return []
    out = []
    if COMP_SEQUENCE in files:
        texts = [record[key] for key in PREDICTION_KEYS if isinstance(record.get(key), str)]
        feedback = record.get("feedback")
        if isinstance(feedback, dict) and isinstance(feedback.get("corrected-prediction"), str):
            texts.append(feedback["corrected-prediction"])
        out += [norm(text) for text in texts]
    if {NF_ERR_SUBSENTENCE, F_ERR_SENTENCE} & set(files) and isinstance(record.get(FIRST_PREDICTION), str):
        out.append(record[FIRST_PREDICTION].strip())
    return out


# --- R1 and R2: token-tagged JSON lines -------------------------------------------------------


def _segments(splits: _Splits, prediction: str, level: str) -> list[list[Word]]:
    """Segments of the stripped prediction; word offsets point into the unstripped text, as spans do."""
    words_per_sentence = splits.sentence_words(prediction)
    if level == SENTENCE:
        return words_per_sentence
    segments: list[list[Word]] = []
    for words in words_per_sentence:
        segments += cut_subsentences(words, [w.text for w in words])
    return segments


def _question_words(record: dict) -> list[str]:
    return ["question:"] + _require_str(record, "question").split()


def _context_words(passages: list[list[str]]) -> list[str]:
    if not passages:
        return []
    words = ["context:"]
    for passage in passages:
        words += ("wikipage: " + passage[0]).split()
        words += ["text:"] + " ".join(passage[1:]).split()
    return words


def _tagged_line(position: int, head: list[str], segments: list[tuple[list[Word], str]]) -> str:
    text, tags = head + ["answer:"], [IGNORE] * (len(head) + 1)
    for words, label in segments:
        text.append(SEPARATOR)
        tags.append(label)
        text += [w.text for w in words]
        tags += [IGNORE] * len(words)
    return json.dumps({"id": str(position), "text": text, "feedback_tags": tags}) + "\n"


def _hits(segment: list[Word], spans: list[tuple[int, int]]) -> bool:
    """Whether a character of a word of the segment lies in one of the [start, end) spans."""
    return any(w.start < end and start < w.end for w in segment for start, end in spans)


def _split_spans(record: dict, prediction: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(factual spans, kept non-factual spans); non-factual spans under 5 words are dropped as noise."""
    factual, non_factual = [], []
    for kind, start, end in _error_spans(record, prediction):
        if kind in FACTUAL_ERROR_TYPES:
            factual.append((start, end))
        elif len(prediction[start:end].split()) >= MIN_NON_FACTUAL_SPAN_WORDS:
            non_factual.append((start, end))
    return factual, non_factual


def _nf_err_line(record: dict, position: int, splits: _Splits) -> str:
    prediction = _require_str(record, FIRST_PREDICTION)
    _, non_factual = _split_spans(record, prediction)
    segments = _segments(splits, prediction, SUBSENTENCE)
    if not segments:
        raise SkipExample("prediction 1 has no sentences")
    labelled = [(seg, NF_ERR if _hits(seg, non_factual) else NO_ERROR) for seg in segments]
    return _tagged_line(position, _question_words(record), labelled)


def _f_err_line(record: dict, position: int, splits: _Splits) -> str:
    prediction = _require_str(record, FIRST_PREDICTION)
    factual, non_factual = _split_spans(record, prediction)
    segments = _segments(splits, prediction, SENTENCE)
    if not segments:
        raise SkipExample("prediction 1 has no sentences")
    labelled = []
    for seg in segments:
        if _hits(seg, factual):
            labelled.append((seg, F_ERR))
        elif _hits(seg, non_factual):
            labelled.append((seg, IGNORE))
        else:
            labelled.append((seg, NO_ERROR))
    if all(label == IGNORE for _, label in labelled):
        raise SkipExample("every sentence has only non-factual errors (all tags Ignore)")
    head = _question_words(record) + _context_words(_passages(record))
    return _tagged_line(position, head, labelled)


# --- R3: completeness ---------------------------------------------------------------------------


def window_size(words: int) -> int:
    """Words per window for a sub-sentence of `words` words: a little slack for paraphrase."""
    return words + int(WINDOW_SLACK * words)


class WindowScorer:
    """Similarity of sub-sentences to candidate texts: 1.0 for a substring, else the best window quick_ratio.

    For a sub-sentence `a` and a window `b` (n candidate words joined by
    spaces), `SequenceMatcher(None, a, b).quick_ratio()` is 2 * M / (len(a) +
    len(b)) with M = sum over characters c of min(a.count(c), b.count(c)). Here
    the candidates' words are laid end to end and prefix sums of their
    character counts give any window's counts by one subtraction; padding `#`
    words and the n - 1 joining spaces are added by arithmetic. One
    sub-sentence is then scored against every window of every candidate with a
    few array operations on its own characters only. The float is formed as
    difflib forms it (2.0 * M / length), so it equals difflib's to the last bit.
    """

    def __init__(self, candidates: Sequence[str]) -> None:
        self.texts = list(candidates)
        words = [text.split() for text in self.texts]
        flat = [w for ws in words for w in ws]
        self._count = np.array([len(ws) for ws in words], dtype=np.int64)
        self._base = np.cumsum(self._count) - self._count
        joined = "".join(flat)
        word_chars = np.fromiter(map(len, flat), dtype=np.int64, count=len(flat))
        self._chars_before = np.zeros(len(flat) + 1, dtype=np.int64)
        np.cumsum(word_chars, out=self._chars_before[1:])
        alphabet = sorted(set(joined) | {PAD_WORD})
        self._row = {ch: k for k, ch in enumerate(alphabet)}
        # Each character's row from a table indexed by code point: a gather, not a binary search.
        row_of_code = np.empty(ord(alphabet[-1]) + 1, dtype=np.intp)
        row_of_code[[ord(ch) for ch in alphabet]] = np.arange(len(alphabet))
        rows = row_of_code[np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)]
        # prefix[c, k]: occurrences of character c in the first k words. Rows are characters,
        # so one sub-sentence reads a few contiguous rows.
        positions = len(flat) + 1
        word_of_char = np.repeat(np.arange(1, positions), word_chars)
        counts = np.bincount(rows * positions + word_of_char, minlength=len(alphabet) * positions)
        self._prefix = counts.reshape(len(alphabet), positions)
        np.cumsum(self._prefix, axis=1, out=self._prefix)
        ends = self._base + self._count
        self._totals = self._prefix[:, ends] - self._prefix[:, self._base]
        self._joined = "\n".join(self.texts)
        self._offsets = list(accumulate((len(t) + 1 for t in self.texts), initial=0))

    def _layouts(self, sizes: Iterable[int]) -> dict[int, tuple[np.ndarray, ...]]:
        """Per window size n: (start word, end word, pad words, length, first window of each candidate).

        A candidate of at most n words is padded with `#` to n + 1 words, so it
        has exactly two windows; a longer one has one per start 0 .. len - n.
        All sizes are laid out with one set of array operations.
        """
        n_of = np.array(sorted(set(sizes)), dtype=np.int64)
        if not len(n_of) or not len(self.texts):
            return {}
        count, groups, candidates = self._count, len(n_of), len(self._count)
        n_col = n_of[:, None]
        per = np.where(count > n_col, count - n_col + 1, 2).ravel()
        first = np.cumsum(per) - per
        owner = np.repeat(np.arange(groups * candidates), per)
        j = np.arange(len(owner)) - first[owner]
        n = n_of[owner // candidates]
        cand = owner % candidates
        base, words = self._base[cand], count[cand]
        start = base + np.minimum(j, words)
        end = np.minimum(start + n, base + words)
        pads = n - (end - start)
        length = self._chars_before[end] - self._chars_before[start] + pads + n - 1
        out = {}
        for g, size in enumerate(n_of.tolist()):
            lo = int(first[g * candidates])
            hi = lo + int(per[g * candidates : (g + 1) * candidates].sum())
            window_first = first[g * candidates : (g + 1) * candidates] - lo
            out[size] = (start[lo:hi], end[lo:hi], pads[lo:hi], length[lo:hi], window_first)
        return out

    def _needs(self, sub: str) -> tuple[int, list[int], list[int], int]:
        """(window size, alphabet rows of `sub`'s characters, their counts, matches among spaces)."""
        n = window_size(len(sub.split()))
        need = Counter(sub)
        spaces = need.pop(" ", 0)
        row_of = self._row
        # A character outside the alphabet is in no window: it adds to no row.
        found = [(row_of[ch], k) for ch, k in need.items() if ch in row_of]
        rows = [r for r, _ in found]
        wanted = [k for _, k in found]
        # Every window of n words has exactly n - 1 spaces.
        return n, rows, wanted, min(spaces, n - 1)

    def _scores_many(self, subs: Sequence[str], needs: Sequence[tuple], layout: tuple) -> np.ndarray:
        """Best window quick_ratio per (sub-sentence, candidate) for sub-sentences of one window size.

        The rows of every sub-sentence's own characters are stacked and scored
        in one set of array operations, then summed per sub-sentence.
        """
        start, end, pads, length, first = layout
        rows: list[int] = []
        wanted: list[int] = []
        offsets: list[int] = []
        pad_row = self._row[PAD_WORD]
        for need in needs:
            offsets.append(len(rows))
            # A sub-sentence with no character in the alphabet reads one row wanting 0: 0 matches.
            rows += need[1] or [pad_row]
            wanted += need[2] or [0]
        prefix = self._prefix.take(rows, axis=0)
        have = prefix.take(end, axis=1)
        have -= prefix.take(start, axis=1)
        if pad_row in rows:
            have[[k for k, row in enumerate(rows) if row == pad_row]] += pads
        np.minimum(have, np.array(wanted, dtype=np.int64)[:, None], out=have)
        matches = np.add.reduceat(have, offsets, axis=0) if len(offsets) > 1 else have.sum(axis=0, keepdims=True)
        matches += np.array([need[3] for need in needs], dtype=np.int64)[:, None]
        lengths = np.array([len(sub) for sub in subs], dtype=np.int64)[:, None] + length
        # float64 division rounds as Python's does: the same float as difflib's 2.0 * matches / length.
        return np.maximum.reduceat(2.0 * matches / lengths, first, axis=1)

    def window_scores(self, sub: str) -> np.ndarray:
        """For each candidate, the best window quick_ratio of `sub` (substrings are not scored 1.0 here)."""
        needs = self._needs(sub)
        return self._scores_many([sub], [needs], self._layouts([needs[0]])[needs[0]])[0]

    def _first_containing(self, sub: str) -> int:
        if "\n" in sub:
            return next((i for i, text in enumerate(self.texts) if sub in text), -1)
        # Texts are joined by newlines, which `sub` lacks, so a hit never straddles two texts.
        at = self._joined.find(sub)
        return -1 if at < 0 else bisect_right(self._offsets, at) - 1

    def match(self, sub: str) -> tuple[int, float]:
        """(index of the most similar candidate, its similarity); the first wins ties; (-1, 0.0) if none.

        `sub` is a non-empty, whitespace-normalised sub-sentence.
        """
        if not self.texts:
            return -1, 0.0
        scores = self.window_scores(sub)
        hit = self._first_containing(sub)
        if hit >= 0:
            scores[hit] = 1.0
        best = int(np.argmax(scores))
        return best, float(scores[best])

    @staticmethod
    def _could_be_exact(needs: tuple, sub: str) -> bool:
        """Whether any window could hold exactly `sub`'s characters: all of them in the alphabet, and as many
        spaces as a window of its size has."""
        n, rows, _, space_matches = needs
        spaces = sub.count(" ")
        return len(rows) + (spaces > 0) >= len(set(sub)) and space_matches == spaces == n - 1

    def _earlier_exact(self, items: Sequence[tuple[int, str, int, tuple]]) -> list[bool]:
        """For each (k, sub, hit, needs), whether a candidate before `hit` could hold a window with exactly
        `sub`'s characters (a 1.0): its whole counts (and pad words) reach every count `sub` wants.
        All items in one set of array operations."""
        rows: list[int] = []
        wanted: list[int] = []
        offsets: list[int] = []
        for *_, (_, found, counts, _) in items:
            offsets.append(len(rows))
            rows += found
            wanted += counts
        totals = self._totals.take(rows, axis=0)
        pad_row = self._row[PAD_WORD]
        if pad_row in rows:
            for offset, (*_, (n, found, _, _)) in zip(offsets, items):
                if pad_row in found:
                    totals[offset + found.index(pad_row)] += np.maximum(n + 1 - self._count, 0)
        reach = np.logical_and.reduceat(totals >= np.array(wanted, dtype=np.int64)[:, None], offsets, axis=0)
        earlier = np.arange(len(self.texts))[None, :] < np.array([hit for _, _, hit, _ in items])[:, None]
        return (reach & earlier).any(axis=1).tolist()

    def best_matches(self, subs: Sequence[str], threshold: float) -> list[int | None]:
        """For each sub-sentence, `match`'s index when its similarity is >= threshold (<= 1.0), else None."""
        out: list[int | None] = [None] * len(subs)
        if not self.texts:
            return out
        todo = []
        substrings = []
        for k, sub in enumerate(subs):
            hit = self._first_containing(sub)
            # A substring scores 1.0; only an earlier candidate with a window of exactly
            # `sub`'s characters could tie it and win, and that is rare and cheap to rule out.
            if hit == 0:
                out[k] = 0
                continue
            needs = self._needs(sub)
            if hit > 0 and not self._could_be_exact(needs, sub):
                out[k] = hit
                continue
            (substrings if hit > 0 else todo).append((k, sub, hit, needs))
        if substrings:
            for item, could_tie in zip(substrings, self._earlier_exact(substrings)):
                if could_tie:
                    todo.append(item)
                else:
                    out[item[0]] = item[2]
        groups: dict[int, list[tuple[int, str, int, tuple]]] = {}
        for item in todo:
            groups.setdefault(item[3][0], []).append(item)
        layouts = self._layouts(groups)
        for size, group in groups.items():
            scores = self._scores_many([sub for _, sub, _, _ in group], [needs for *_, needs in group], layouts[size])
            for i, (_, _, hit, _) in enumerate(group):
                if hit >= 0:
                    scores[i, hit] = 1.0
            best = scores.argmax(axis=1)
            passes = scores[np.arange(len(group)), best] >= threshold
            for (k, _, _, _), index, ok in zip(group, best.tolist(), passes.tolist()):
                out[k] = index if ok else None
        return out


class DifflibMatcher:
    """`WindowScorer`'s similarity computed window by window with difflib: the method as written.

    As slow as the original scripts; the tests and the benchmark compare against it.
    """

    def __init__(self, candidates: Sequence[str]) -> None:
        self.texts = list(candidates)

    def match(self, sub: str) -> tuple[int, float]:
        best, best_score = -1, 0.0
        n = window_size(len(sub.split()))
        for index, text in enumerate(self.texts):
            if sub in text:
                score = 1.0
            else:
                words = text.split()
                if len(words) <= n:
                    words = words + [PAD_WORD] * (n + 1 - len(words))
                score = max(
                    SequenceMatcher(None, sub, " ".join(words[j : j + n])).quick_ratio()
                    for j in range(len(words) - n + 1)
                )
            if best < 0 or score > best_score:
                best, best_score = index, score
        return best, best_score

    def best_matches(self, subs: Sequence[str], threshold: float) -> list[int | None]:
        out: list[int | None] = []
        for sub in subs:
            index, score = self.match(sub)
            out.append(index if index >= 0 and score >= threshold else None)
        return out


Matcher = Callable[[Sequence[str]], Any]


def _candidates(passages: list[list[str]]) -> tuple[list[tuple[int, int]], list[str]]:
    """Passage sentences after the title: ((passage, sentence) 1-based ids, normalised texts)."""
    ids, texts = [], []
    for p, passage in enumerate(passages, start=1):
        for s, sentence in enumerate(passage[1:], start=1):
            ids.append((p, s))
            texts.append(norm(sentence))
    return ids, texts


def _minor_ids(record: dict) -> set[tuple[int, int]]:
    missing = _feedback(record).get("missing-info", [])
    if not isinstance(missing, list):
        raise SkipExample("'feedback.missing-info' is not a list")
    ids = set()
    for n, entry in enumerate(missing):
        if not isinstance(entry, dict):
            raise SkipExample(f"missing-info {n} is not an object")
        if entry.get("error type") != MISSING_MINOR:
            continue
        passage, sentences_ = entry.get("passage_id"), entry.get("sentence_id")
        if type(passage) is not int or not isinstance(sentences_, list):
            raise SkipExample(f"missing-info {n} has no passage_id / sentence_id list")
        ids.update((passage, s) for s in sentences_)
    return ids


def _completeness_preference(record: dict, splits: _Splits, matcher: Matcher) -> list[int]:
    _require_str(record, "question")  # the completeness RM reads it
    ids, texts = _candidates(_passages(record))
    corrected = _feedback(record).get("corrected-prediction")
    if not isinstance(corrected, str):
        raise SkipExample("'feedback.corrected-prediction' missing or not a string")
    predictions = [norm(_require_str(record, key)) for key in PREDICTION_KEYS]
    minor = _minor_ids(record)
    if not texts:
        raise SkipExample("no passage sentences to match")
    scorer = matcher(texts)
    matched: dict[str, tuple[int, int] | None] = {}

    def match_all(subs: Iterable[str]) -> None:
        todo = [sub for sub in dict.fromkeys(subs) if sub not in matched]
        for sub, index in zip(todo, scorer.best_matches(todo, MATCH_THRESHOLD)):
            matched[sub] = None if index is None else ids[index]

    corrected_subs = splits.subsentence_strings(norm(corrected))
    prediction_subs = [splits.subsentence_strings(p) for p in predictions]
    # All in one batch (a sub-sentence's match does not depend on the others): the predictions'
    # matches go unused when nothing relevant matches below, but batches cost per call, not per sub.
    match_all([*corrected_subs, *(sub for subs in prediction_subs for sub in subs)])
    first_prediction = predictions[0].lower()
    minor_only: dict[tuple[int, int], bool] = {}
    for sub in corrected_subs:
        hit = matched[sub]
        if hit is not None:
            # A minor missing sentence counts only where prediction 1 already says it.
            minor_only[hit] = hit in minor and sub.lower() not in first_prediction
    relevant = {hit for hit, only_minor in minor_only.items() if not only_minor}
    if not relevant:
        raise SkipExample("no relevant passage sentence matches the corrected prediction")
    covered = [len({matched[sub] for sub in subs} & relevant) for subs in prediction_subs]
    return [
        NO_PREFERENCE if covered[a] == covered[b] else FIRST_PREFERRED if covered[a] > covered[b] else SECOND_PREFERRED
        for a, b in PREFERENCE_INDEX_PAIRS
    ]


# --- the files ----------------------------------------------------------------------------------


def build_rm_files(
    records: Sequence[Any],
    *,
    nlp: Any,
    splitter: str = "",
    files: Collection[str] = RM_FILE_NAMES,
    progress: Progress | None = None,
    matcher: Matcher = WindowScorer,
    batch_size: int = 64,
    workers: int = 1,
) -> RmFiles:
    """Build NF-ERR_subsentence, F-ERR_sentence and COMP_sequence (or the named subset) from records.

    Each example is tried for each file on its own; one that cannot go into a
    file is left out of that file and its reason counted in the summary.
    `progress(done, total)` is called after every example this process builds.

    With `workers` above 1 (and os.fork available, see qa.forked), the records
    are cut into that many runs of whole batches; forked child processes build
    all runs but the first while this process builds the first, and the parts
    are joined in order: the same bytes as one process makes. Progress then
    counts this process's examples as they go and each child's run when it
    is taken back. The caller must have no other threads that building needs.
    """
    unknown = set(files) - set(RM_FILE_NAMES)
    if unknown:
        raise ValueError(f"unknown reward-model files {sorted(unknown)}: choose from {list(RM_FILE_NAMES)}")
    names = [name for name in RM_FILE_NAMES if name in files]
    total = len(records)
    bounds = _runs(total, workers if can_fork() else 1, batch_size)

    def build(lo: int, hi: int, progress: Progress | None = None) -> _Part:
        return _build_part(
            records, lo, hi, names=names, matcher=matcher, nlp=nlp, batch_size=batch_size, progress=progress
        )

    children: list[Forked] = []
    try:
        for lo, hi in bounds[1:]:
            children.append(Forked(lambda lo=lo, hi=hi: build(lo, hi)))
        parts = [build(*bounds[0], progress)]
    finally:
        # Every child started is waited for, also when this process's own run (or a later fork) failed.
        taken = [_taken(child) for child in children]
    for (_, hi), part in zip(bounds[1:], taken):
        if isinstance(part, BaseException):
            raise part
        parts.append(part)
        if progress is not None:
            progress(hi, total)
    return _joined(parts, names, total, splitter)


def _runs(total: int, workers: int, batch_size: int) -> list[tuple[int, int]]:
    """[lo, hi) runs of whole batches, one per worker at most, as even as batches allow; at least one run."""
    batches = -(-total // batch_size) if total else 1
    count = max(1, min(workers, batches))
    cuts = [round(k * batches / count) * batch_size for k in range(count + 1)]
    return [(min(lo, total), min(hi, total)) for lo, hi in zip(cuts, cuts[1:])]


def _taken(child: Forked) -> Any:
    try:
        return child.result()
    except WorkerFailed as exc:
        return exc


@dataclass
class _Part:
    """What one run of records contributed: each file's counts (content not yet joined), the R1 and R2
    lines and the records kept for COMP."""

    files: dict[str, FileResult]
    lines: dict[str, list[str]]
    kept: list[dict]


def _build_part(
    records: Sequence[Any], lo: int, hi: int, *, names: list[str], matcher: Matcher, nlp: Any, batch_size: int,
    progress: Progress | None,
) -> _Part:
    """Records [lo, hi) into a _Part; `progress(done, len(records))` after each."""
    lines_of = ((NF_ERR_SUBSENTENCE, _nf_err_line), (F_ERR_SENTENCE, _f_err_line))
    tagged = [(name, build) for name, build in lines_of if name in names]
    part = _Part(files={name: FileResult(name) for name in names}, lines={name: [] for name, _ in tagged}, kept=[])
    splits = _Splits(nlp)
    for position in range(lo, hi):
        record = records[position]
        if (position - lo) % batch_size == 0:
            splits.clear()
            batch = records[position : min(position + batch_size, hi)]
            splits.prefetch(text for r in batch for text in _texts_to_split(r, names))
        if not isinstance(record, dict):
            for result in part.files.values():
                result.skipped["record is not an object"] += 1
        else:
            for name, build in tagged:
                try:
                    part.lines[name].append(build(record, position, splits))
                    part.files[name].written += 1
                except SkipExample as reason:
                    part.files[name].skipped[str(reason)] += 1
            if COMP_SEQUENCE in names:
                try:
                    preference = _completeness_preference(record, splits, matcher)
                    # A new dict with the key replaced keeps the record's key order.
                    part.kept.append({**record, "preference": preference})
                    part.files[COMP_SEQUENCE].written += 1
                except SkipExample as reason:
                    part.files[COMP_SEQUENCE].skipped[str(reason)] += 1
        if progress is not None:
            progress(position + 1, len(records))
    return part


def _joined(parts: list[_Part], names: list[str], total: int, splitter: str) -> RmFiles:
    results = {name: FileResult(name) for name in names}
    for name, result in results.items():
        for part in parts:
            result.written += part.files[name].written
            result.skipped.update(part.files[name].skipped)
        if name == COMP_SEQUENCE:
            result.content = json.dumps([record for part in parts for record in part.kept], indent=2)
        else:
            result.content = "".join(line for part in parts for line in part.lines[name])
    return RmFiles(files=results, examples=total, splitter=splitter)


# --- holistic preferences for other trainers (TRL RewardTrainer) --------------------------------


def preference_prompt(record: dict) -> str:
    """The reward-model input before the answer: `question: Q context: wikipage: T text: S ... answer: `.

    Words are whitespace-normalised exactly as in F-ERR_sentence, so prompt +
    prediction is the R3 / holistic RM input of docs section 3. The prompt ends
    in one space so that `prompt + chosen` reads naturally.
    """
    words = _question_words(record) + _context_words(_passages(record)) + ["answer:"]
    return " ".join(words) + " "


def preference_pairs(records: Sequence[dict]) -> FileResult:
    """The human preferences as JSON lines `{"prompt", "chosen", "rejected"}`, one per non-tied pair.

    chosen / rejected are the prediction texts as annotated; ties (0) are left out.
    """
    result = FileResult(PREFERENCE_PAIRS_FILE)
    lines = []
    for record in records:
        try:
            if not isinstance(record, dict):
                raise SkipExample("record is not an object")
            predictions = [_require_str(record, key) for key in PREDICTION_KEYS]
            preference = record.get("preference")
            if (
                not isinstance(preference, list)
                or len(preference) != len(PREFERENCE_INDEX_PAIRS)
                or any(type(p) is not int or p not in PREFERENCE_VALUES for p in preference)
            ):
                raise SkipExample("'preference' is not a list of six values in 0, 1, 2")
            prompt = preference_prompt(record)
        except SkipExample as reason:
            result.skipped[str(reason)] += 1
            continue
        ties = 0
        # Each line is json.dumps({"prompt": ..., "chosen": ..., "rejected": ...}) put together from its
        # values encoded once per record: the prompt (all passages) is most of a line and of the time.
        head = '{"prompt": ' + json.dumps(prompt) + ', "chosen": '
        encoded = [json.dumps(prediction) for prediction in predictions]
        for (a, b), choice in zip(PREFERENCE_INDEX_PAIRS, preference):
            if choice == NO_PREFERENCE:
                ties += 1
                continue
            chosen, rejected = (a, b) if choice == FIRST_PREFERRED else (b, a)
            lines.append(head + encoded[chosen] + ', "rejected": ' + encoded[rejected] + "}\n")
            result.written += 1
        result.skipped["tied pairs"] += ties
        if ties == len(PREFERENCE_INDEX_PAIRS):
            result.skipped["examples with every pair tied"] += 1
    result.content = "".join(lines)
    return result
