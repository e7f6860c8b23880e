"""The worker's side of a run: start the trainer as a child process, follow it, turn its events into rows.

The worker never imports a trainer: it starts `python -m training.ml.entry`
(or `accelerate launch -m training.ml.entry` on a multi-GPU node) in its own
process group, naming the kind's trainer and config class (training/kinds.py),
with stdout and stderr going to `<output_dir>/log.txt`, then tails the
JSON-lines events file the trainer writes, beats the run's heartbeat and
writes what it reports. A crash in training cannot take the worker down, GPU
memory is freed when the child exits, and a cancel can stop every process the
launcher started by signalling the group.

`run_execute` is what the Celery task calls. This module writes the rows of
a run it has claimed (claim, heartbeat, events, finish) and imports no
module that imports it; `training.services` (the researcher's side) never
imports it. `child_argv`, `EventTail` and `describe_exit` are plain
functions with no ORM.
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from training import inputs, kinds, pipeline_services, selectors
from training.accelerate_configs import accelerate_config_for
from training.models import Artifact, RunMetric, RunSample, RunStatus, TrainingRun
from training.run_folder import CONFIG_FILE, EVENTS_FILE, LOG_FILE, run_output_path, tail_lines

logger = logging.getLogger(__name__)

ENTRY_MODULE = "training.ml.entry"
POLL_INTERVAL_S = 0.5
HEARTBEAT_INTERVAL_S = 3.0
METRIC_KEY_MAX = RunMetric._meta.get_field("key").max_length


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
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("WANDB_MODE", settings.WANDB_MODE)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The trainer imports `training.ml` from the project root, whatever the worker's cwd.
    root = str(settings.BASE_DIR)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env




# ---------------------------------------------------------------- the run's rows, written by the worker that claimed it


def run_claim(*, run_id: int, host: str) -> TrainingRun | None:
    """Mark a queued run as running on `host`; None when it is not queued (already taken, cancelled, gone)."""
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker_host=host[:200], error="", log_tail=""
    )
    if not claimed:
        return None
    return TrainingRun.objects.get(pk=run_id)


def run_mark_started(*, run: TrainingRun, pid: int) -> None:
    run.child_pid = pid
    run.heartbeat_at = timezone.now()
    TrainingRun.objects.filter(pk=run.pk).update(child_pid=pid, heartbeat_at=run.heartbeat_at)


def run_heartbeat(*, run: TrainingRun, log_tail: str) -> None:
    """The worker is alive: refresh the heartbeat and the live log tail."""
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now(), log_tail=log_tail)


def run_cancel_requested(*, run: TrainingRun) -> bool:
    return bool(TrainingRun.objects.filter(pk=run.pk).values_list("cancel_requested", flat=True).first())


def run_resume_checkpoint(*, run: TrainingRun) -> Path | None:
    """The checkpoint of the run this one resumes (selectors.run_checkpoint, which the run page's
    Resume/Restart button also asks), or None: the run starts over."""
    if run.resumed_from_id is None:
        return None
    artifact = selectors.run_checkpoint(run_id=run.resumed_from_id)
    return Path(settings.MODEL_ROOT) / artifact.path if artifact is not None else None


def _artifact_size(path: Path) -> int:
    """Bytes in a file, or in the files of a folder, as found while the trainer may still be writing.

    The trainer swaps `checkpoints/last` for a newer folder as it saves
    (ml.checkpoints.replace_dir), so the folder measured here can vanish
    mid-walk: what is gone is not counted (the next save's event measures
    again), and the run goes on instead of its supervisor failing.
    """
    if not path.is_dir():
        try:
            return path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:
            return 0
    total = 0
    for folder, _, names in os.walk(path):  # a subfolder that vanished is skipped (os.walk ignores its error)
        for name in names:
            try:
                file = os.path.join(folder, name)
                total += os.path.getsize(file) if os.path.isfile(file) else 0
            except FileNotFoundError:
                continue
    return total


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def run_record_events(*, run: TrainingRun, events: Iterable[Mapping[str, Any]]) -> None:
    """Turn a batch of the trainer's progress events into rows, in one transaction.

    Unknown events and malformed values are skipped: a trainer's mistake must
    not stop the worker that follows it.
    """
    metrics: list[RunMetric] = []
    changed: set[str] = set()
    with transaction.atomic():
        for event in events:
            kind = event.get("event")
            if kind == "start":
                total = event.get("total_steps")
                if isinstance(total, int) and total >= 0:
                    run.progress_total = total
                    run.progress_step = min(run.progress_step, total) if total else run.progress_step
                    changed |= {"progress_total", "progress_step"}
                run.wandb_dir = str(event.get("wandb_dir") or run.wandb_dir)[:500]
                run.wandb_url = str(event.get("wandb_url") or run.wandb_url)[:500]
                changed |= {"wandb_dir", "wandb_url"}
            elif kind == "progress":
                step, total = event.get("step"), event.get("total")
                if isinstance(total, int) and total > 0:
                    run.progress_total = total
                    changed.add("progress_total")
                if isinstance(step, int) and step >= 0:
                    run.progress_step = min(step, run.progress_total) if run.progress_total else step
                    changed.add("progress_step")
            elif kind == "metrics":
                metrics += _metric_rows(run=run, event=event)
            elif kind == "sample":
                _record_sample(run=run, event=event)
            elif kind == "artifact":
                _record_artifact(run=run, event=event)
            elif kind == "done":
                summary = event.get("summary")
                run.summary = dict(summary) if isinstance(summary, Mapping) else {}
                changed.add("summary")
            elif kind == "error":
                run.error = str(event.get("message") or "the trainer reported an error")
                changed.add("error")
        if metrics:
            RunMetric.objects.bulk_create(metrics)
        if changed:
            run.save(update_fields=sorted(changed))


def run_record_event(*, run: TrainingRun, event: Mapping[str, Any]) -> None:
    run_record_events(run=run, events=[event])


def _metric_rows(*, run: TrainingRun, event: Mapping[str, Any]) -> list[RunMetric]:
    step = event.get("step")
    values = event.get("metrics")
    if not isinstance(step, int) or step < 0 or not isinstance(values, Mapping):
        return []
    rows = []
    for key, value in values.items():
        number = _float_or_none(value)
        if number is not None:
            rows.append(RunMetric(run=run, step=step, key=str(key)[:METRIC_KEY_MAX], value=number))
    return rows


def _record_sample(*, run: TrainingRun, event: Mapping[str, Any]) -> None:
    segments = event.get("segments") if isinstance(event.get("segments"), list) else []
    RunSample.objects.create(
        run=run,
        step=max(0, int(event.get("step") or 0)),
        prompt=str(event.get("prompt") or ""),
        text=str(event.get("text") or ""),
        segments=[s for s in segments if isinstance(s, Mapping)],
        total_reward=_float_or_none(event.get("total_reward")),
    )


def _record_artifact(*, run: TrainingRun, event: Mapping[str, Any]) -> None:
    relative = str(event.get("path") or "").strip()
    name = str(event.get("name") or relative)[:200]
    if not relative or not name:
        return
    kind = event.get("kind") if event.get("kind") in Artifact.Kind.values else Artifact.Kind.FILE
    absolute = (run_output_path(run) / relative).resolve()
    model_root = Path(settings.MODEL_ROOT).resolve()
    if not absolute.is_relative_to(model_root):
        logger.warning("run %s reported an artifact outside MODEL_ROOT: %s", run.pk, absolute)
        return
    meta = event.get("meta") if isinstance(event.get("meta"), Mapping) else {}
    Artifact.objects.update_or_create(
        run=run,
        kind=kind,
        name=name,
        defaults={
            "path": str(absolute.relative_to(model_root)),
            "size_bytes": _artifact_size(absolute),
            "meta": dict(meta),
        },
    )


def run_finish(*, run: TrainingRun, status: str, error: str = "", log_tail: str | None = None) -> None:
    """The run's last word: final status, error text and log tail, and progress filled when it succeeded."""
    run.status = status
    run.finished_at = timezone.now()
    run.error = error if status != RunStatus.SUCCEEDED else ""
    fields = ["status", "finished_at", "error"]
    if log_tail is not None:
        run.log_tail = log_tail
        fields.append("log_tail")
    if status == RunStatus.SUCCEEDED and run.progress_total:
        run.progress_step = run.progress_total
        fields.append("progress_step")
    with transaction.atomic():
        run.save(update_fields=fields)
        if run.pipeline_id is not None:
            # The next stages start now, not at the next beat tick.
            pipeline_services.request_advance(pipeline_id=run.pipeline_id)


# ---------------------------------------------------------------- following one run from claim to finish


def run_execute(*, run_id: int) -> None:
    """Prepare a queued run's inputs, start its trainer, and follow it to the end.

    Returns quietly when the run is no longer queued (a redelivered task, or a
    run cancelled before any worker took it).
    """
    run = run_claim(run_id=run_id, host=socket.gethostname())
    if run is None:
        logger.info("run %s is not queued any more; nothing to do", run_id)
        return

    output_dir = run_output_path(run)
    output_dir.mkdir(parents=True, exist_ok=True)
    prepared = _prepare(run=run, output_dir=output_dir)
    if prepared is None:
        return
    config_path, resume_from = prepared
    if run_cancel_requested(run=run):
        run_finish(run=run, status=RunStatus.CANCELLED, error="Cancelled by a user before the trainer started.")
        return

    base_command = getattr(settings, "TRAINING_CHILD_COMMAND", None)
    gpu_count = 0 if base_command else local_gpu_count()
    accelerate_config = accelerate_config_for(gpu_count=gpu_count, strategy=settings.TRAINING_ACCELERATE_STRATEGY,
                                              explicit=settings.TRAINING_ACCELERATE_CONFIG)
    argv = child_argv(
        kind=run.kind,
        config_path=config_path,
        output_dir=output_dir,
        events_path=output_dir / EVENTS_FILE,
        resume_from=resume_from,
        run_name=f"{run.pk}-{run.kind}",
        gpu_count=0 if accelerate_config else gpu_count,
        accelerate_config=accelerate_config,
        base_command=base_command,
    )
    log_path = output_dir / LOG_FILE
    child = _start_child(run=run, argv=argv, log_path=log_path)
    if child is None:
        return
    try:
        _supervise(run=run, child=child, events_path=output_dir / EVENTS_FILE, log_path=log_path)
    except BaseException:
        # The worker is going down (or its database is): never leave the trainer running unwatched.
        signal_group(child.pid, signal.SIGKILL)
        child.wait()
        raise


def _prepare(*, run: TrainingRun, output_dir: Path) -> tuple[Path, Path | None] | None:
    """Build the inputs and write the config file; (config path, checkpoint to resume from), or None once failed."""
    last_beat = [time.monotonic()]

    def beat() -> None:
        # Building inputs from a large dataset can outlast the heartbeat timeout.
        if time.monotonic() - last_beat[0] >= HEARTBEAT_INTERVAL_S:
            run_heartbeat(run=run, log_tail="preparing the inputs…")
            last_beat[0] = time.monotonic()

    config_path = output_dir / CONFIG_FILE
    try:
        config = inputs.run_prepare_config(run=run, output_dir=output_dir, beat=beat)
        config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return config_path, run_resume_checkpoint(run=run)
    except inputs.InputError as exc:
        run_finish(run=run, status=RunStatus.FAILED, error=f"Could not prepare the inputs: {exc}")
    except Exception as exc:
        logger.exception("preparing run %s failed", run.pk)
        run_finish(run=run, status=RunStatus.FAILED, error=f"Could not prepare the inputs: {type(exc).__name__}: {exc}")
    return None


def _start_child(*, run: TrainingRun, argv: list[str], log_path: Path) -> subprocess.Popen | None:
    """Start the trainer in its own process group, its output appended to the log; None (run failed) if it cannot start."""
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(argv) + "\n").encode())
        log.flush()
        try:
            return subprocess.Popen(
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
            run_finish(run=run, status=RunStatus.FAILED, error=f"Could not start the trainer: {exc}", log_tail=tail_lines(log_path))
            return None


@dataclass
class _Outcome:
    saw_done: bool = False
    error: str = ""


def _supervise(*, run: TrainingRun, child: subprocess.Popen, events_path: Path, log_path: Path) -> None:
    grace_s = float(settings.TRAINING_CANCEL_GRACE_S)
    run_mark_started(run=run, pid=child.pid)
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
        run_record_events(run=run, events=events)

    while True:
        returncode = child.poll()
        drain()
        if returncode is not None:
            break
        now = time.monotonic()
        if now - last_beat >= HEARTBEAT_INTERVAL_S:
            run_heartbeat(run=run, log_tail=tail_lines(log_path))
            last_beat = now
        if cancel_sent_at is None and run_cancel_requested(run=run):
            signal_group(child.pid, signal.SIGTERM)
            cancel_sent_at = now
        elif cancel_sent_at is not None and now - cancel_sent_at > grace_s:
            signal_group(child.pid, signal.SIGKILL)
        time.sleep(POLL_INTERVAL_S)

    # Helpers the launcher started (accelerate's per-GPU processes) must not outlive it.
    signal_group(child.pid, signal.SIGKILL)
    drain()
    log_tail = tail_lines(log_path)
    if cancel_sent_at is not None or run_cancel_requested(run=run):
        run_finish(run=run, status=RunStatus.CANCELLED, error="Cancelled by a user.", log_tail=log_tail)
    elif returncode == 0 and outcome.saw_done:
        run_finish(run=run, status=RunStatus.SUCCEEDED, log_tail=log_tail)
    else:
        reason = describe_exit(returncode) if returncode != 0 else "the trainer exited without reporting that it finished"
        error = f"{outcome.error} ({reason})" if outcome.error else reason[0].upper() + reason[1:] + "."
        run_finish(run=run, status=RunStatus.FAILED, error=error, log_tail=log_tail)
