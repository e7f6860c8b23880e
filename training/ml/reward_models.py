"""Reward models for PPO: token-level R1/R2 and sequence-level R3/holistic.

R1 (relevance) and R2 (factuality) read a word list in which every answer
segment is preceded by a `</s>` word and give one label per separator
(`O` or the error tag). R3 (completeness) and the holistic preference model
give one scalar per text. The input builders here are the ones the trainers
use, so PPO feeds the models exactly what they were trained on.

Long inputs. The answer (from the `answer:` marker to the end) is what gets
rewarded, so it is protected. When the input is longer than the model
allows, whole words are dropped in this order: context words from the end of
the context backwards (the retriever ranks the first passage highest, so it
is kept longest), then question words from the end backwards, and only then
answer words from the end. Labels belong to words, never to token positions,
so dropping words can never move a label onto another separator. If even the
answer alone does not fit, `TokenRewardModel.predict` gives each separator it
had to drop the label `O` (the paper's "no error") and counts it in
`truncated_separators`, so a caller always receives one label per separator.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from annotation.qa.vocab import IGNORE, NO_ERROR, SEPARATOR

logger = logging.getLogger(__name__)

IGNORE_TAG = IGNORE  # the tag of words that carry no label
IGNORE_INDEX = -100
QUESTION_MARKER = "question:"
CONTEXT_MARKER = "context:"
ANSWER_MARKER = "answer:"
STATS_FILE = "reward_stats.json"

# Passage in the feedback format ([title, sentence, ...]) or the policy-input format ({"wikipage", "content"}).
Passage = Sequence[str] | Mapping[str, str]


# ---------------------------------------------------------------- input builders


def context_words(passages: Sequence[Passage] | None) -> list[str]:
    """`context:` + per passage `wikipage: TITLE text: TEXT`, split on whitespace; [] without passages."""
    if not passages:
        return []
    words = [CONTEXT_MARKER]
    for passage in passages:
        if isinstance(passage, Mapping):
            title, text = passage["wikipage"], passage["content"]
        else:
            title, text = passage[0], " ".join(passage[1:])
        words += f"wikipage: {title}".split() + ["text:"] + text.split()
    return words


def answer_words_from_segments(segments: Sequence[Sequence[str]]) -> list[str]:
    """The answer as the training files hold it: a `</s>` word before each segment's words."""
    words: list[str] = []
    for segment in segments:
        words.append(SEPARATOR)
        words.extend(segment)
    return words


def token_rm_words(*, question: str, answer_words: Sequence[str], passages: Sequence[Passage] | None = None) -> list[str]:
    """Input words of R1/R2, laid out like NF-ERR_subsentence / F-ERR_sentence lines.

    R1 files carry no context: pass `passages=None`. R2 passes the passages.
    `answer_words` already hold a `</s>` before each segment
    (see `answer_words_from_segments`).
    """
    return [QUESTION_MARKER, *question.split(), *context_words(passages), ANSWER_MARKER, *answer_words]


def preference_rm_text(*, question: str, passages: Sequence[Passage] | None, answer: str) -> str:
    """Input text of R3 / the holistic RM: `question: Q context: wikipage: T text: ... answer: A`."""
    return " ".join([QUESTION_MARKER, *question.split(), *context_words(passages), ANSWER_MARKER, *answer.split()])


# ---------------------------------------------------------------- fitting long inputs


def separator_answer_start(words: Sequence[str]) -> int:
    """Where the protected part of a token-RM input starts: the `answer:` before the first `</s>`."""
    try:
        first = words.index(SEPARATOR)
    except ValueError:
        return len(words)
    return first - 1 if first > 0 and words[first - 1] == ANSWER_MARKER else first


def marker_answer_start(words: Sequence[str]) -> int:
    """Where the answer of a preference-RM input starts.

    The first `answer:` after the `context:` marker (or the first at all when
    there is no context): the builder writes exactly one marker there, and an
    answer that itself contains `answer:` must not move the boundary.
    """
    start = words.index(CONTEXT_MARKER) + 1 if CONTEXT_MARKER in words else 0
    for index in range(start, len(words)):
        if words[index] == ANSWER_MARKER:
            return index
    return len(words)


def words_to_keep(words: Sequence[str], token_counts: Sequence[int], budget: int, *, answer_start: int) -> list[int]:
    """Indices of the words that fit in `budget` tokens, dropping words in the order described above.

    `token_counts[i]` is the number of tokens of word i; `words[answer_start:]`
    is the answer part (its leading marker included).
    """
    total = sum(token_counts)
    if total <= budget:
        return list(range(len(words)))
    head = words[:answer_start]
    context_at = head.index(CONTEXT_MARKER) if CONTEXT_MARKER in head else None
    question_from = 1 if words and words[0] == QUESTION_MARKER else 0
    question_to = context_at if context_at is not None else answer_start
    answer_from = answer_start + 1 if answer_start < len(words) and words[answer_start] == ANSWER_MARKER else answer_start
    drop_order = [
        *(range(answer_start - 1, context_at, -1) if context_at is not None else ()),
        *range(question_to - 1, question_from - 1, -1),
        *range(len(words) - 1, answer_from - 1, -1),
    ]
    dropped: set[int] = set()
    for index in drop_order:
        if total <= budget:
            break
        dropped.add(index)
        total -= token_counts[index]
    return [i for i in range(len(words)) if i not in dropped]


def word_token_counts(tokenizer: Any, word_lists: Sequence[Sequence[str]]) -> list[list[int]]:
    """Tokens per word, as the tokenizer splits words given with `is_split_into_words=True`."""
    if not word_lists:
        return []
    encoding = tokenizer([list(w) for w in word_lists], is_split_into_words=True, add_special_tokens=False)
    counts = []
    for row, words in enumerate(word_lists):
        per_word = [0] * len(words)
        for word_id in encoding.word_ids(row):
            if word_id is not None:
                per_word[word_id] += 1
        counts.append(per_word)
    return counts


def fit_words(
    tokenizer: Any,
    word_lists: Sequence[Sequence[str]],
    *,
    max_length: int,
    answer_start_of: Callable[[Sequence[str]], int],
) -> list[list[int]]:
    """For each word list, the indices of the words kept so that it fits in `max_length` tokens."""
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    kept = []
    for words, counts in zip(word_lists, word_token_counts(tokenizer, word_lists)):
        kept.append(words_to_keep(words, counts, budget, answer_start=answer_start_of(words)))
    return kept


def first_token_positions(word_ids: Sequence[int | None]) -> dict[int, int]:
    """word index -> position of its first sub-token."""
    positions: dict[int, int] = {}
    for position, word_id in enumerate(word_ids):
        if word_id is not None and word_id not in positions:
            positions[word_id] = position
    return positions


# ---------------------------------------------------------------- model plumbing


def load_tokenizer(source: str | os.PathLike) -> Any:
    """A tokenizer that accepts pre-split words (byte-level BPE ones, like longformer's, need a prefix space)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre_tokenizer = getattr(backend, "pre_tokenizer", None) if backend is not None else None
    if "ByteLevel" in repr(pre_tokenizer) and not getattr(tokenizer, "add_prefix_space", False):
        tokenizer = AutoTokenizer.from_pretrained(str(source), add_prefix_space=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token or tokenizer.unk_token
    return tokenizer


def ensure_separator_token(tokenizer: Any) -> bool:
    """Make `</s>` one token (BERT-style vocabularies split it in four); True if the vocabulary grew.

    The label sits on the separator's first sub-token either way; one token
    keeps inputs shorter and the labelled position unambiguous.
    """
    if len(tokenizer([SEPARATOR], is_split_into_words=True, add_special_tokens=False)["input_ids"]) == 1:
        return False
    return tokenizer.add_tokens([SEPARATOR], special_tokens=True) > 0


_LEARNED_OFFSET_MODELS = {"roberta", "xlm-roberta", "longformer", "camembert"}


def model_max_length(model_config: Any, tokenizer: Any, requested: int) -> int:
    """The requested length, capped by the model's position table and the tokenizer's limit."""
    limits = [requested]
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions:
        # RoBERTa-family models reserve the first positions after the padding index.
        if getattr(model_config, "model_type", "") in _LEARNED_OFFSET_MODELS:
            positions -= (model_config.pad_token_id or 0) + 1
        limits.append(int(positions))
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if tokenizer_limit and tokenizer_limit < 1_000_000:
        limits.append(int(tokenizer_limit))
    return min(limits)


def _device_of(device: str | Any) -> Any:
    import torch

    return torch.device(device)


def _batches(items: Sequence[Any], size: int):
    for start in range(0, len(items), max(1, size)):
        yield start, items[start : start + max(1, size)]


# ---------------------------------------------------------------- token-level RM (R1, R2)


class TokenRewardModel:
    """R1/R2: one label per `</s>` separator of an input word list."""

    fallback_label = NO_ERROR

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int, device: str | Any = "cpu") -> None:
        self.device = _device_of(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.id2label = {int(k): v for k, v in model.config.id2label.items()}
        self.labels = [self.id2label[i] for i in sorted(self.id2label)]
        # Separators that fell outside the model's window and got `fallback_label`.
        self.truncated_separators = 0

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | Any = "cpu", dtype: Any = None) -> TokenRewardModel:
        """`dtype` (e.g. torch.bfloat16) casts the frozen weights; None keeps them as saved."""
        from transformers import AutoModelForTokenClassification

        tokenizer = load_tokenizer(path)
        model = AutoModelForTokenClassification.from_pretrained(str(path), **({"dtype": dtype} if dtype is not None else {}))
        saved = getattr(model.config, "rm_max_length", None)
        max_length = model_max_length(model.config, tokenizer, int(saved or 1024))
        return cls(model, tokenizer, max_length=max_length, device=device)

    def separator_logits(self, word_lists: Sequence[Sequence[str]], batch_size: int = 8, *,
                         order: Sequence[int] | None = None) -> Iterator[tuple[int, list[Any]]]:
        """Per input, taken in `order` (default: as given) `batch_size` at a time: (its index, the logits at
        each of its `</s>` words, in order, as float tensors on the CPU; None for a separator that did not
        fit the model window)."""
        import torch

        order = range(len(word_lists)) if order is None else order
        for _, rows in _batches(list(order), batch_size):
            chunk = [list(word_lists[i]) for i in rows]
            kept = fit_words(self.tokenizer, chunk, max_length=self.max_length, answer_start_of=separator_answer_start)
            encoding = self.tokenizer(
                [[words[i] for i in keep] for words, keep in zip(chunk, kept)],
                is_split_into_words=True,
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            )
            with torch.no_grad():
                inputs = {k: v.to(self.device) for k, v in encoding.items()}
                logits = self.model(**inputs).logits.float().cpu()
            for row, (index, words, keep) in enumerate(zip(rows, chunk, kept)):
                first = first_token_positions(encoding.word_ids(row))
                position_of = {original: first[new] for new, original in enumerate(keep) if new in first}
                yield index, [logits[row, position_of[w]] if w in position_of else None
                              for w, word in enumerate(words) if word == SEPARATOR]

    def predict(self, word_lists: list[list[str]], batch_size: int = 8) -> list[list[str]]:
        """Per input, the predicted label of each `</s>` word, in order (exactly one per separator)."""
        results: list[list[str]] = []
        for _, at_separators in self.separator_logits(word_lists, batch_size):
            labels = []
            for logits in at_separators:
                if logits is None:
                    labels.append(self.fallback_label)
                    self.truncated_separators += 1
                else:
                    labels.append(self.id2label[int(logits.argmax())])
            results.append(labels)
        if self.truncated_separators:
            logger.warning("%d separators did not fit the model window and were labelled %r so far",
                           self.truncated_separators, self.fallback_label)
        return results


# ---------------------------------------------------------------- sequence-level RM (R3, holistic)


def read_reward_stats(path: str | os.PathLike) -> tuple[float, float]:
    """(mean, std) of the training-split scores saved beside a preference RM."""
    stats_path = Path(path) / STATS_FILE
    if stats_path.is_file():
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
        return float(stats["mean"]), float(stats["std"])
    return 0.0, 1.0


class PreferenceRewardModel:
    """R3 / holistic RM: one scalar per text, with the training-split mean and std for normalising."""

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int, mean: float = 0.0, std: float = 1.0,
                 device: str | Any = "cpu") -> None:
        self.device = _device_of(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.mean = float(mean)
        self.std = float(std)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | Any = "cpu", dtype: Any = None) -> PreferenceRewardModel:
        """`dtype` (e.g. torch.bfloat16) casts the frozen weights; None keeps them as saved."""
        from transformers import AutoModelForSequenceClassification

        tokenizer = load_tokenizer(path)
        model = AutoModelForSequenceClassification.from_pretrained(str(path), **({"dtype": dtype} if dtype is not None else {}))
        saved = getattr(model.config, "rm_max_length", None)
        max_length = model_max_length(model.config, tokenizer, int(saved or 1024))
        mean, std = read_reward_stats(path)
        if not (Path(path) / STATS_FILE).is_file():
            mean = float(getattr(model.config, "reward_mean", mean))
            std = float(getattr(model.config, "reward_std", std))
        return cls(model, tokenizer, max_length=max_length, mean=mean, std=std, device=device)

    def score(self, texts: list[str], batch_size: int = 8) -> list[float]:
        import torch

        scores: list[float] = []
        for _, chunk in _batches(texts, batch_size):
            encoding = encode_preference_texts(self.tokenizer, chunk, max_length=self.max_length)
            with torch.no_grad():
                inputs = {k: v.to(self.device) for k, v in encoding.items()}
                scores.extend(self.model(**inputs).logits[:, 0].float().cpu().tolist())
        return scores

    def normalized(self, texts: list[str], batch_size: int = 8) -> list[float]:
        # A constant model has std 0; dividing by it would turn every reward into inf.
        std = self.std if self.std > 0 and math.isfinite(self.std) else 1.0
        return [(s - self.mean) / std for s in self.score(texts, batch_size=batch_size)]


def encode_preference_texts(tokenizer: Any, texts: Sequence[str], *, max_length: int) -> Any:
    """Tokenised, padded tensors of preference-RM texts, long contexts cut as described above."""
    word_lists = [text.split() for text in texts]
    kept = fit_words(tokenizer, word_lists, max_length=max_length, answer_start_of=marker_answer_start)
    return tokenizer(
        [[words[i] for i in keep] for words, keep in zip(word_lists, kept)],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )
