"""Command-line entry for every trainer: `python -m training.ml.entry KIND --trainer MODULE:FUNC --config-class MODULE:CLASS ...`.

The run system starts this as a child process (through `accelerate launch -m
training.ml.entry` on multi-GPU nodes), naming the trainer function and its
config class from its registry of run kinds (training/kinds.py), which this
package never imports. It reads a JSON config, validates it through the
config class, writes progress events to --events (see progress.py), and
exits non-zero on failure after reporting the error as an event. The trainer
is a function `run(config, *, kind, output_dir: Path, reporter, resume_from:
Path | None) -> dict` (its summary).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import traceback
from pathlib import Path

from training.ml.configs import ConfigError, from_dict
from training.ml.loop import cancel_requested
from training.ml.progress import NullReporter, Reporter, start_wandb


def reference(text: str) -> str:
    """An argparse type: `package.module:name`, checked for shape only (importing waits until it is needed)."""
    module_name, sep, attr = text.partition(":")
    if not sep or not module_name or not attr.isidentifier() or not all(part.isidentifier() for part in module_name.split(".")):
        raise argparse.ArgumentTypeError(f"{text!r} is not MODULE:NAME (like training.ml.sft:run)")
    return text


def load(ref: str):
    """The object a `module:name` reference names."""
    module_name, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _is_main_process() -> bool:
    # accelerate sets RANK/LOCAL_RANK; only rank 0 reports and logs to wandb.
    return os.environ.get("RANK", "0") == "0"


def _terminate(signum, frame):  # noqa: ARG001
    # Cancel from the UI: only ask. The training loop stops at the next step boundary, after saving
    # its last checkpoint, by raising `Cancelled` (a KeyboardInterrupt) with this reason.
    cancel_requested.set(f"received signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ml.entry", description=__doc__)
    parser.add_argument("kind", help="the run kind, passed to the trainer (it picks kind-dependent defaults)")
    parser.add_argument("--trainer", required=True, type=reference, metavar="MODULE:FUNC", help="the trainer function to run")
    parser.add_argument("--config-class", required=True, type=reference, metavar="MODULE:CLASS", help="the config class the settings go through")
    parser.add_argument("--config", required=True, type=Path, help="JSON file with the trainer's settings")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--events", type=Path, help="JSON-lines progress file (default: OUTPUT_DIR/events.jsonl)")
    parser.add_argument("--resume-from", type=Path, default=None, help="checkpoint folder to resume from")
    parser.add_argument("--run-name", default="", help="name shown in wandb")
    parser.add_argument("--no-wandb", action="store_true")
    args = parser.parse_args(argv)
    try:
        config_class = load(args.config_class)
    except (ImportError, AttributeError) as exc:
        parser.error(f"--config-class {args.config_class}: {exc}")

    signal.signal(signal.SIGTERM, _terminate)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # trainers load local folders; HF_HUB_OFFLINE=0 lets them download
    args.output_dir.mkdir(parents=True, exist_ok=True)
    raw = json.loads(args.config.read_text(encoding="utf-8"))

    main_process = _is_main_process()
    reporter: NullReporter = NullReporter()
    try:
        config = from_dict(config_class, raw)
    except ConfigError as exc:
        if main_process:
            Reporter(args.events or args.output_dir / "events.jsonl").error(f"invalid config: {exc}")
        print(f"invalid config: {exc}", file=sys.stderr)
        return 2

    if main_process:
        wandb_run = None
        if not args.no_wandb:
            try:
                wandb_run = start_wandb(
                    project="granary",
                    name=args.run_name or f"{args.kind}",
                    config={"kind": args.kind, **raw},
                    directory=args.output_dir,
                )
            except Exception as exc:  # wandb trouble must never stop training
                print(f"wandb disabled: {exc}", file=sys.stderr)
        reporter = Reporter(args.events or args.output_dir / "events.jsonl", wandb_run=wandb_run)

    trainer = load(args.trainer)
    try:
        summary = trainer(config, kind=args.kind, output_dir=args.output_dir, reporter=reporter, resume_from=args.resume_from)
        reporter.done(**(summary or {}))
        return 0
    except KeyboardInterrupt as exc:  # Cancelled between two steps (SIGTERM), or Ctrl-C
        reporter.error(f"stopped: {exc}")
        return 130
    except Exception as exc:
        reporter.error(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        traceback.print_exc()
        return 1
    finally:
        reporter.close()


if __name__ == "__main__":
    sys.exit(main())
