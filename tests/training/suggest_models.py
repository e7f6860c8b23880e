"""Tiny untrained reward models for the suggestion tests (built by training.ml.tiny in seconds)."""

from __future__ import annotations

from pathlib import Path

from training.ml.tiny import build_tiny_reward_models


def build_suggest_models(root: Path, *, texts=(), seed: int = 0) -> dict[str, Path]:
    return build_tiny_reward_models(root, texts=texts, seed=seed)
