"""Fixtures shared by the run-system tests (imported by name; kept out of conftest so other helpers own theirs)."""

import json
import sys
from pathlib import Path

import pytest

FAKE_TRAINER = Path(__file__).resolve().parent / "fake_trainer.py"
TOKEN_LINE = {"id": "0", "text": ["question:", "who?", "answer:", "</s>", "Him."], "feedback_tags": ["Ignore", "Ignore", "Ignore", "O", "Ignore"]}


@pytest.fixture
def token_rm_file(tmp_path) -> Path:
    """A one-line NF-ERR_subsentence file, as a researcher would upload it."""
    path = tmp_path / "upload-train.json"
    path.write_text(json.dumps(TOKEN_LINE) + "\n")
    return path


@pytest.fixture
def fake_trainer(settings):
    """Run the stand-in trainer instead of training.ml.entry; returns a function that picks its mode."""

    def use(mode: str = "ok", *, steps: int = 5) -> None:
        settings.TRAINING_CHILD_COMMAND = [sys.executable, str(FAKE_TRAINER), "--mode", mode, "--steps", str(steps)]

    use()
    return use
