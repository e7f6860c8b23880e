"""JSON-lines progress events from a trainer, with a do-nothing twin.

A trainer never asks whether anyone listens: it always calls its reporter.
`Reporter` appends one JSON object per line to an events file (flushed per
line, so the worker that launched the trainer can tail it) and mirrors
metrics to wandb when a wandb run is attached. `NullReporter` takes the same
calls and does nothing. Only the main process of a multi-GPU launch reports.

Events (the `event` key names the kind):
  start     {"total_steps", "wandb_dir", "wandb_url", ...}
  progress  {"step", "total"}
  metrics   {"step", "metrics": {"train/loss": 0.3, ...}}
  sample    {"step", "prompt", "text", "segments": [{"text", "reward", "label"}], "total_reward"}
  artifact  {"kind": "model"|"checkpoint"|"file", "name", "path" (relative to the output dir), "meta"}
  log       {"message"}
  done      {"summary": {...}}
  error     {"message", "traceback"}
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    # JSON has no NaN/Infinity; report them as null rather than writing invalid lines.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _clean(value.item())
    return value


class NullReporter:
    wandb_dir = ""
    wandb_url = ""

    def start(self, *, total_steps: int, **info: Any) -> None: ...
    def progress(self, step: int, total: int | None = None) -> None: ...
    def metrics(self, step: int, metrics: dict[str, float]) -> None: ...
    def sample(self, step: int, *, prompt: str, text: str, segments: list[dict], total_reward: float | None) -> None: ...
    def artifact(self, *, kind: str, name: str, path: str, **meta: Any) -> None: ...
    def log(self, message: str) -> None: ...
    def done(self, **summary: Any) -> None: ...
    def error(self, message: str, traceback: str = "") -> None: ...
    def close(self) -> None: ...


class Reporter(NullReporter):
    def __init__(self, events_path: str | os.PathLike, *, wandb_run: Any = None) -> None:
        self.events_path = Path(events_path)
        self.events_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.events_path, "a", encoding="utf-8")
        self._wandb = wandb_run
        self.total_steps = 0
        if wandb_run is not None:
            self.wandb_dir = str(getattr(wandb_run, "dir", "") or "")
            self.wandb_url = str(getattr(wandb_run, "url", "") or "")

    def _emit(self, event: str, **payload: Any) -> None:
        record = {"event": event, "time": time.time(), **_clean(payload)}
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def start(self, *, total_steps: int, **info: Any) -> None:
        self.total_steps = int(total_steps)
        self._emit("start", total_steps=self.total_steps, wandb_dir=self.wandb_dir, wandb_url=self.wandb_url, **info)

    def progress(self, step: int, total: int | None = None) -> None:
        self._emit("progress", step=int(step), total=int(total if total is not None else self.total_steps))

    def metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._emit("metrics", step=int(step), metrics=metrics)
        if self._wandb is not None:
            self._wandb.log(_clean(metrics), step=int(step))

    def sample(self, step: int, *, prompt: str, text: str, segments: list[dict], total_reward: float | None) -> None:
        self._emit("sample", step=int(step), prompt=prompt, text=text, segments=segments, total_reward=total_reward)

    def artifact(self, *, kind: str, name: str, path: str, **meta: Any) -> None:
        self._emit("artifact", kind=kind, name=name, path=str(path), meta=meta)

    def log(self, message: str) -> None:
        self._emit("log", message=message)

    def done(self, **summary: Any) -> None:
        self._emit("done", summary=summary)
        if self._wandb is not None:
            for key, value in _clean(summary).items():
                if isinstance(value, (int, float, str)):
                    self._wandb.summary[key] = value

    def error(self, message: str, traceback: str = "") -> None:
        self._emit("error", message=message, traceback=traceback)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def start_wandb(*, project: str, name: str, config: dict, directory: Path, mode: str | None = None) -> Any:
    """Start a wandb run (offline unless WANDB_MODE/mode says online and a key is set)."""
    import wandb

    mode = mode or os.environ.get("WANDB_MODE", "offline")
    if mode == "online" and not os.environ.get("WANDB_API_KEY"):
        mode = "offline"
    directory.mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=project,
        name=name,
        config=_clean(config),
        dir=str(directory),
        mode=mode,
        reinit="finish_previous",
        settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
    )


def quiet_transformers() -> None:
    """Silence transformers' own warnings and progress bars: a trainer's progress is its events."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
