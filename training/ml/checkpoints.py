"""Checkpoint folders for every trainer: written whole or not at all, read back with a clear error.

A checkpoint folder holds the models (loadable with `from_pretrained`),
`optimizer.pt`, `scheduler.pt` and a state file (step, best score, the
config; `state.json`, or `trainer_state.json` for the reward models). It is
written under a temporary name and swapped in, so a crash mid-save leaves the
previous checkpoint intact, and a cancel that arrives during the swap waits
until the new folder is in place.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.json"
# Signals that stop a run: SIGTERM is the cancel from the UI, SIGINT a Ctrl-C at a terminal.
HELD_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class CheckpointError(ValueError):
    """A folder that is not a usable checkpoint."""


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Run the block with no SIGTERM / SIGINT handler running inside it; held signals are raised again after it.

    Python runs signal handlers in the main thread, between two bytecodes, whichever thread the
    operating system delivered the signal to. Blocking the signals in the calling thread
    (`pthread_sigmask`) is therefore not enough once the process has other threads, and a trainer
    always has some: the kernel hands the signal to one of them and the handler still runs here.
    Instead the handlers themselves are swapped, for the block, for one that only notes the signal.
    Off the main thread nothing needs holding: no handler ever runs in this thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def note(signum: int, frame: Any) -> None:  # noqa: ARG001
        if signum not in pending:
            pending.append(signum)

    previous: dict[int, Any] = {}
    try:
        for signum in HELD_SIGNALS:
            if signal.getsignal(signum) is None:
                continue  # a handler installed outside Python could not be put back
            previous[signum] = signal.signal(signum, note)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in pending:
            signal.raise_signal(signum)


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap the complete folder `tmp` in as `final`; no signal handler runs between the two renames."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    with signals_held():
        if final.exists():
            final.rename(old)
        tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def fresh_tmp(final: Path) -> Path:
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def save_folder(final: Path, write: Callable[[Path], None]) -> None:
    """Write a folder with `write(tmp)` under a temporary name, then swap it in as `final`."""
    tmp = fresh_tmp(Path(final))
    write(tmp)
    replace_dir(tmp, Path(final))


class CheckpointFolders:
    """A run's `checkpoints/<name>` folders; each is announced to the reporter the first time it is written."""

    def __init__(self, output_dir: Path, reporter: Any) -> None:
        self.root = Path(output_dir) / "checkpoints"
        self.reporter = reporter
        self.announced: set[str] = set()

    def path(self, name: str) -> Path:
        return self.root / name

    def save(self, name: str, write: Callable[[Path], None], *, step: int) -> None:
        save_folder(self.path(name), write)
        if name not in self.announced:
            self.reporter.artifact(kind="checkpoint", name=name, path=f"checkpoints/{name}", step=step)
            self.announced.add(name)


def save_training_state(folder: Path, *, optimizer: Any, scheduler: Any, state: dict[str, Any],
                        state_file: str = STATE_FILE) -> None:
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    (folder / state_file).write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")


def read_state(folder: Path, *, needs: tuple[str, ...] = (), state_file: str = STATE_FILE) -> dict[str, Any]:
    """The saved state of a checkpoint; refuses folders that lack it or any of `needs`."""
    folder = Path(folder)
    if not (folder / state_file).is_file():
        raise CheckpointError(f"{folder} is not a checkpoint: {state_file} is missing")
    for name in ("optimizer.pt", "scheduler.pt", *needs):
        if not (folder / name).exists():
            raise CheckpointError(f"{folder} is not a complete checkpoint: {name} is missing")
    return json.loads((folder / state_file).read_text(encoding="utf-8"))


def load_training_state(folder: Path, *, optimizer: Any, scheduler: Any) -> None:
    optimizer.load_state_dict(torch.load(Path(folder) / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(Path(folder) / "scheduler.pt", map_location="cpu", weights_only=True))
