"""Tiny untrained R1 / R2 / preference reward models for the suggestion tests and benchmark (seconds to build)."""

from __future__ import annotations

from pathlib import Path

from annotation.qa.vocab import FACTUALITY_LABELS, RELEVANCE_LABELS

SAMPLE_TEXTS = [
    "question: who wrote the book? context: wikipage: Book text: The book was written by a writer in 1990.",
    "The answer is short. It has two sentences, and a clause that goes on for a while.",
]


def build_suggest_models(root: Path, *, texts=(), seed: int = 0) -> dict[str, Path]:
    """{"relevance", "factuality", "preference"} -> saved model folders, loadable by training.ml.reward_models."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    from training.ml.tiny import build_tiny_encoder

    encoder = build_tiny_encoder(root / "encoder", texts=[*SAMPLE_TEXTS, *texts], seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    out = {}
    for name, labels in (("relevance", RELEVANCE_LABELS), ("factuality", FACTUALITY_LABELS)):
        torch.manual_seed(seed + len(out))
        model = AutoModelForTokenClassification.from_pretrained(
            encoder, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)}
        )
        with torch.no_grad():
            # Spread the logits so that both labels occur on real text.
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
