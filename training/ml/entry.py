"""Command-line entry for every trainer: `python -m training.ml.entry KIND ...`.

The run system starts this as a child process (through `accelerate launch -m
training.ml.entry` on multi-GPU nodes). It reads a JSON config, writes
progress events to --events (see progress.py), and exits non-zero on failure
after reporting the error as an event.
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

from training.ml.configs import CONFIG_CLASSES, ConfigError, from_dict, config_class
from training.ml.loop import cancel_requested
from training.ml.progress import NullReporter, Reporter, start_wandb

# kind -> "module:function"; each function is
#   run(config, *, kind, output_dir: Path, reporter, resume_from: Path | None) -> dict (summary)
TRAINERS: dict[str, str] = {
    "sft": "training.ml.sft:run",
    "rm_relevance": "training.ml.train_rm:run_token_rm",
    "rm_factuality": "training.ml.train_rm:run_token_rm",
    "rm_completeness": "training.ml.train_rm:run_preference_rm",
    "rm_preference": "training.ml.train_rm:run_preference_rm",
    "ppo_holistic": "training.ml.ppo:run",
    "ppo_fine_grained": "training.ml.ppo:run",
}


def _is_main_process() -> bool:
    # accelerate sets RANK/LOCAL_RANK; only rank 0 reports and logs to wandb.
    return os.environ.get("RANK", "0") == "0"


def _terminate(signum, frame):  # noqa: ARG001
    # Cancel from the UI: only ask. The training loop stops at the next step boundary, after saving
    # its last checkpoint, by raising `Cancelled` (a KeyboardInterrupt) with this reason.
    cancel_requested.set(f"received signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ml.entry", description=__doc__)
    parser.add_argument("kind", choices=sorted(TRAINERS))
    parser.add_argument("--config", required=True, type=Path, help="JSON file with the trainer's settings")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--events", type=Path, help="JSON-lines progress file (default: OUTPUT_DIR/events.jsonl)")
    parser.add_argument("--resume-from", type=Path, default=None, help="checkpoint folder to resume from")
    parser.add_argument("--run-name", default="", help="name shown in wandb")
    parser.add_argument("--no-wandb", action="store_true")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _terminate)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # trainers load local folders; HF_HUB_OFFLINE=0 lets them download
    args.output_dir.mkdir(parents=True, exist_ok=True)
    raw = json.loads(args.config.read_text(encoding="utf-8"))

    main_process = _is_main_process()
    reporter: NullReporter = NullReporter()
    try:
        config = from_dict(config_class(args.kind), raw)
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

    module_name, _, func_name = TRAINERS[args.kind].partition(":")
    trainer = getattr(importlib.import_module(module_name), func_name)
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


assert set(TRAINERS) == set(CONFIG_CLASSES)

if __name__ == "__main__":
    sys.exit(main())
