"""A run's folder under MODEL_ROOT and the files the worker keeps in it.

Shared by the researcher's side (services, views: the reaper's log tail, the
log download) and the worker's side (supervisor), so neither imports the other.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

LOG_FILE = "log.txt"
EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.json"
LOG_TAIL_LINES = 60
# The checkpoint name every trainer (SFT, reward models, PPO) gives its newest resumable state.
LAST_CHECKPOINT = "last"


def run_output_path(run) -> Path:
    """The run's folder: `MODEL_ROOT/runs/<id>-<kind>/` (stored relative to MODEL_ROOT)."""
    return Path(settings.MODEL_ROOT) / run.output_dir


def tail_lines(path: Path, n: int = LOG_TAIL_LINES, *, max_bytes: int = 256 * 1024) -> str:
    """The last `n` lines of a text file (reading at most `max_bytes` from its end)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    # Progress bars redraw with carriage returns; keep only what a terminal would show last.
    lines = [line.rsplit("\r", 1)[-1] for line in text.rstrip("\n").split("\n")]
    return "\n".join(lines[-n:])
