"""Checkpoint folders for the policy trainers: written whole or not at all, read back with a clear error.

A checkpoint folder holds the models (each in its own sub-folder, loadable
with `from_pretrained`), `optimizer.pt`, `scheduler.pt` and `state.json`
(step, best score, data position, RNG seeds). It is written under a temporary
name and swapped in, so a crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.json"


class CheckpointError(ValueError):
    """A folder that is not a usable checkpoint."""


def replace_dir(tmp: Path, final: Path) -> None:
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    # A cancel (SIGTERM) between the two renames would leave no `final` at all: hold it until both are done.
    blocked = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        if final.exists():
            final.rename(old)
        tmp.rename(final)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    if old.exists():
        shutil.rmtree(old)


def fresh_tmp(final: Path) -> Path:
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def save_training_state(folder: Path, *, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> None:
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    (folder / STATE_FILE).write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")


def read_state(folder: Path, *, needs: tuple[str, ...] = ()) -> dict[str, Any]:
    """The saved state of a checkpoint; refuses folders that lack it or any of `needs`."""
    folder = Path(folder)
    if not (folder / STATE_FILE).is_file():
        raise CheckpointError(f"{folder} is not a checkpoint: {STATE_FILE} is missing")
    for name in ("optimizer.pt", "scheduler.pt", *needs):
        if not (folder / name).exists():
            raise CheckpointError(f"{folder} is not a complete checkpoint: {name} is missing")
    return json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))


def load_training_state(folder: Path, *, optimizer: Any, scheduler: Any) -> None:
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", map_location="cpu", weights_only=True))
