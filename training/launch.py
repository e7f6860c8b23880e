"""Run a trainer as a child process and turn its progress lines into database rows.

The worker never imports a trainer: it starts `python -m training.ml.entry`
(or `accelerate launch -m training.ml.entry` on a multi-GPU node) in its own
process group, with stdout and stderr going to `<output_dir>/log.txt`, then
tails the JSON-lines events file the trainer writes. A crash in training
cannot take the worker down, GPU memory is freed when the child exits, and a
cancel can stop every process the launcher started by signalling the group.

`child_argv`, `EventTail` and `tail_lines` are plain functions with no ORM;
`run_execute` is the supervisor the Celery task calls.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from training import kinds

logger = logging.getLogger(__name__)

ENTRY_MODULE = "training.ml.entry"
LOG_FILE = "log.txt"
EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.json"
LOG_TAIL_LINES = 60
POLL_INTERVAL_S = 0.5
HEARTBEAT_INTERVAL_S = 3.0


def child_argv(
    *,
    kind: str,
    config_path: Path,
    output_dir: Path,
    events_path: Path,
    resume_from: Path | None = None,
    run_name: str = "",
    python: str = sys.executable,
    gpu_count: int = 0,
    accelerate_config: str = "",
    base_command: Sequence[str] | None = None,
) -> list[str]:
    """The command line that starts the trainer for one run: the kind's trainer and config class, then the run's files.

    `base_command` replaces the launcher and module (tests use it to run a
    stand-in trainer). Otherwise several GPUs, or an accelerate config file,
    mean `accelerate launch`; anything else is a plain `python -m`.
    """
    trainer_args = [
        *kinds.get(kind).entry_args(),
        "--config",
        str(config_path),
        "--output-dir",
        str(output_dir),
        "--events",
        str(events_path),
    ]
    if resume_from is not None:
        trainer_args += ["--resume-from", str(resume_from)]
    if run_name:
        trainer_args += ["--run-name", run_name]

    if base_command:
        return [*base_command, *trainer_args]
    if accelerate_config or gpu_count > 1:
        launcher = [python, "-m", "accelerate.commands.launch"]
        if accelerate_config:
            launcher += ["--config_file", accelerate_config]
        else:
            launcher += ["--multi_gpu", "--num_processes", str(gpu_count)]
        return [*launcher, "-m", ENTRY_MODULE, *trainer_args]
    return [python, "-m", ENTRY_MODULE, *trainer_args]


def local_gpu_count() -> int:
    try:
        import torch
    except ImportError:  # a CPU-only web host may not have torch at all
        return 0
    return int(torch.cuda.device_count())


@dataclass
class EventTail:
    """Reads the complete lines appended to an events file since the last read.

    A line the trainer is still writing (no newline yet) is left for the next
    read, so an event is never parsed half-written.
    """

    path: Path
    offset: int = 0
    _partial: bytes = field(default=b"", repr=False)

    def read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        events: list[dict] = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                event = None
            if not isinstance(event, dict) or "event" not in event:
                text = raw.decode("utf-8", errors="replace")[:500]
                events.append({"event": "log", "message": f"unreadable progress line: {text}"})
                continue
            events.append(event)
        return events


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


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the trainer was killed by {name}"
    return f"the trainer exited with code {returncode}"


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    # If the worker itself is killed, take the trainer down with it rather than
    # leaving an orphan holding the GPU (Linux only; elsewhere the reaper copes).
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except Exception:
        pass


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def child_env() -> dict[str, str]:
    from django.conf import settings

    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("WANDB_MODE", settings.WANDB_MODE)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The trainer imports `training.ml` from the project root, whatever the worker's cwd.
    root = str(settings.BASE_DIR)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_execute(*, run_id: int) -> None:
    """Prepare a queued run's inputs, start its trainer, and follow it to the end.

    Returns quietly when the run is no longer queued (a redelivered task, or a
    run cancelled before any worker took it).
    """
    from django.conf import settings

    from training import services
    from training.inputs import InputError, run_prepare_config
    from training.models import RunStatus

    run = services.run_claim(run_id=run_id, host=socket.gethostname())
    if run is None:
        logger.info("run %s is not queued any more; nothing to do", run_id)
        return

    output_dir = services.run_output_path(run)
    output_dir.mkdir(parents=True, exist_ok=True)
    log_path = output_dir / LOG_FILE
    events_path = output_dir / EVENTS_FILE
    config_path = output_dir / CONFIG_FILE

    last_beat = [time.monotonic()]

    def beat() -> None:
        # Building inputs from a large dataset can outlast the heartbeat timeout.
        if time.monotonic() - last_beat[0] >= HEARTBEAT_INTERVAL_S:
            services.run_heartbeat(run=run, log_tail="preparing the inputs…")
            last_beat[0] = time.monotonic()

    try:
        config = run_prepare_config(run=run, output_dir=output_dir, beat=beat)
        config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        resume_from = services.run_resume_checkpoint(run=run)
    except InputError as exc:
        services.run_finish(run=run, status=RunStatus.FAILED, error=f"Could not prepare the inputs: {exc}")
        return
    except Exception as exc:
        logger.exception("preparing run %s failed", run_id)
        services.run_finish(run=run, status=RunStatus.FAILED, error=f"Could not prepare the inputs: {type(exc).__name__}: {exc}")
        return

    if services.run_cancel_requested(run=run):
        services.run_finish(run=run, status=RunStatus.CANCELLED, error="Cancelled by a user before the trainer started.")
        return

    base_command = getattr(settings, "TRAINING_CHILD_COMMAND", None)
    accelerate_config = settings.TRAINING_ACCELERATE_CONFIG
    argv = child_argv(
        kind=run.kind,
        config_path=config_path,
        output_dir=output_dir,
        events_path=events_path,
        resume_from=resume_from,
        run_name=f"{run.pk}-{run.kind}",
        gpu_count=0 if (base_command or accelerate_config) else local_gpu_count(),
        accelerate_config=accelerate_config,
        base_command=base_command,
    )

    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(argv) + "\n").encode())
        log.flush()
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=settings.BASE_DIR,
                env=child_env(),
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            services.run_finish(run=run, status=RunStatus.FAILED, error=f"Could not start the trainer: {exc}", log_tail=tail_lines(log_path))
            return

    try:
        _supervise(run=run, child=child, events_path=events_path, log_path=log_path)
    except BaseException:
        # The worker is going down (or its database is): never leave the trainer running unwatched.
        signal_group(child.pid, signal.SIGKILL)
        child.wait()
        raise


@dataclass
class _Outcome:
    saw_done: bool = False
    error: str = ""


def _supervise(*, run, child: subprocess.Popen, events_path: Path, log_path: Path) -> None:
    from django.conf import settings

    from training import services
    from training.models import RunStatus

    grace_s = float(settings.TRAINING_CANCEL_GRACE_S)
    services.run_mark_started(run=run, pid=child.pid)
    tail = EventTail(events_path)
    outcome = _Outcome()
    last_beat = time.monotonic()
    cancel_sent_at: float | None = None

    def drain() -> None:
        events = tail.read()
        if not events:
            return
        messages = [f"[trainer] {event.get('message', '')}" for event in events if event.get("event") == "log"]
        if messages:
            # The trainer's own notes belong in the log beside its output (both append).
            with open(log_path, "a", encoding="utf-8") as log:
                log.write("\n".join(messages) + "\n")
        for event in events:
            if event.get("event") == "done":
                outcome.saw_done = True
            elif event.get("event") == "error":
                outcome.error = str(event.get("message") or "")
        services.run_record_events(run=run, events=events)

    while True:
        returncode = child.poll()
        drain()
        if returncode is not None:
            break
        now = time.monotonic()
        if now - last_beat >= HEARTBEAT_INTERVAL_S:
            services.run_heartbeat(run=run, log_tail=tail_lines(log_path))
            last_beat = now
        if cancel_sent_at is None and services.run_cancel_requested(run=run):
            signal_group(child.pid, signal.SIGTERM)
            cancel_sent_at = now
        elif cancel_sent_at is not None and now - cancel_sent_at > grace_s:
            signal_group(child.pid, signal.SIGKILL)
        time.sleep(POLL_INTERVAL_S)

    # Helpers the launcher started (accelerate's per-GPU processes) must not outlive it.
    signal_group(child.pid, signal.SIGKILL)
    drain()
    log_tail = tail_lines(log_path)
    if cancel_sent_at is not None or services.run_cancel_requested(run=run):
        services.run_finish(run=run, status=RunStatus.CANCELLED, error="Cancelled by a user.", log_tail=log_tail)
    elif returncode == 0 and outcome.saw_done:
        services.run_finish(run=run, status=RunStatus.SUCCEEDED, log_tail=log_tail)
    else:
        reason = describe_exit(returncode) if returncode != 0 else "the trainer exited without reporting that it finished"
        error = f"{outcome.error} ({reason})" if outcome.error else reason[0].upper() + reason[1:] + "."
        services.run_finish(run=run, status=RunStatus.FAILED, error=error, log_tail=log_tail)
