"""Token ids -> characters in linear time: the same spans as decoding every prefix, on three kinds of decoders."""

from __future__ import annotations

import random

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from training.ml import rewards
from training.ml.rewards import prefix_token_char_spans, token_char_spans
from training.ml.tiny import build_tiny_tokenizer

TEXTS = [
    "Paris is a very big city, and it has many old museums. It is nice.",
    "The Eiffel Tower was built in 1889; it is 330 m tall!",
    "Café au lait, naïve façade, jalapeño — and “quotes” too.",
    "Emoji 🙂 and CJK 東京 and math ∑x² in one answer?",
    "  Leading spaces and trailing ones  ",
    "Tabs\tand\nnew lines\n\nkeep their place.",
]


@pytest.fixture(scope="module")
def sentencepiece():
    """The tiny T5 (unigram, metaspace) tokenizer every tiny policy uses."""
    return build_tiny_tokenizer(texts=TEXTS * 5, vocab_size=300)


@pytest.fixture(scope="module")
def byte_level():
    """A GPT-2-style byte-level BPE: characters split over tokens decode to U+FFFD until completed."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    from tokenizers.trainers import BpeTrainer

    tok.train_from_iterator(TEXTS * 5, BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                   initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


@pytest.fixture(scope="module")
def byte_fallback():
    """A Llama-style sentencepiece BPE with byte-fallback tokens, fused into characters when decoded."""
    pieces = sorted({c for t in TEXTS for c in t.replace(" ", "▁") if ord(c) < 0x2000} | {"▁the", "▁is", "▁a"})
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=True, unk_token="<unk>"))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


TOKENIZERS = ["sentencepiece", "byte_level", "byte_fallback"]


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _assert_same(tokenizer, ids):
    fast = token_char_spans(tokenizer, ids)
    assert fast == prefix_token_char_spans(tokenizer, ids), ids
    text, spans = fast
    assert "".join(text[s:e] for s, e in spans) == text


@pytest.mark.parametrize("name", TOKENIZERS)
def test_it_equals_prefix_decoding_on_crafted_texts(name, request):
    tokenizer = request.getfixturevalue(name)
    for text in TEXTS:
        ids = _ids(tokenizer, text) + [tokenizer.eos_token_id]
        _assert_same(tokenizer, ids)
        # Cut anywhere, as a sampled answer may be: mid-word and mid-character.
        for cut in range(1, len(ids)):
            _assert_same(tokenizer, ids[:cut])


def test_it_equals_prefix_decoding_on_characters_split_over_byte_tokens(byte_fallback, byte_level):
    euro = [byte_fallback.convert_tokens_to_ids(f"<0x{b:02X}>") for b in "€".encode()]
    word = _ids(byte_fallback, "the")
    crafted = [
        word + euro + word,                     # a character completed by its third byte token
        euro[:2] + word,                        # a character never completed
        [euro[0]] + euro + [euro[1]] + word,    # stray bytes around a whole character
        [byte_fallback.eos_token_id] + word + [byte_fallback.bos_token_id] + euro,  # special tokens inside
    ]
    for ids in crafted:
        _assert_same(byte_fallback, ids)
    emoji = _ids(byte_level, "a 🙂 b")
    _assert_same(byte_level, emoji)
    _assert_same(byte_level, emoji[:2] + emoji)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_it_equals_prefix_decoding_on_random_token_sequences(name, request):
    tokenizer = request.getfixturevalue(name)
    rng = random.Random(14)
    vocab = len(tokenizer)
    special = list(tokenizer.all_special_ids)
    for _ in range(60):
        length = rng.randint(1, 90)
        ids = [rng.randrange(vocab) if rng.random() > 0.05 else rng.choice(special) for _ in range(length)]
        _assert_same(tokenizer, ids)
    for _ in range(30):  # realistic answers: real text, spliced at random
        a, b = rng.choice(TEXTS), rng.choice(TEXTS)
        ids = _ids(tokenizer, a)[: rng.randint(1, 40)] + _ids(tokenizer, b)[rng.randint(0, 10):]
        _assert_same(tokenizer, ids)


class CountingTokenizer:
    """Counts the token ids it decodes, to tell linear from quadratic work."""

    def __init__(self, inner):
        self.inner = inner
        self.decoded = 0
        self.all_special_ids = inner.all_special_ids

    def decode(self, ids, **kwargs):
        self.decoded += len(ids)
        return self.inner.decode(ids, **kwargs)

    def batch_decode(self, rows, **kwargs):
        self.decoded += sum(len(r) for r in rows)
        return self.inner.batch_decode(rows, **kwargs)


def test_its_decoding_work_grows_linearly_with_the_answer_length(sentencepiece):
    text = " ".join(TEXTS * 12)
    ids = _ids(sentencepiece, text)[:800]
    work = {}
    for length in (200, 800):
        counting = CountingTokenizer(sentencepiece)
        token_char_spans(counting, ids[:length])
        work[length] = counting.decoded
        reference = CountingTokenizer(sentencepiece)
        prefix_token_char_spans(reference, ids[:length])
        assert counting.decoded * 5 < reference.decoded
    # Four times the tokens, about four times the work (not sixteen).
    assert work[800] < 5 * work[200]


def test_a_window_that_never_settles_falls_back_to_prefix_decoding(byte_fallback, monkeypatch):
    monkeypatch.setattr(rewards, "MAX_WINDOW", 3)
    stray = [byte_fallback.convert_tokens_to_ids("<0xE2>")] * 12 + _ids(byte_fallback, "the end")
    _assert_same(byte_fallback, stray)
