"""Which accelerate config file a GPU worker launches its trainer with.

`ACCELERATE_CONFIG_FILE` names one outright. Otherwise the worker picks from
the files in `config/accelerate/<strategy>/<n>gpu.yaml` by the node's GPU
count, for the strategy `TRAINING_ACCELERATE_STRATEGY` names (`ddp`, the
default; `zero2`, `zero3` or `fsdp`). A node without GPUs runs the trainer
with plain `python -m`; a GPU count without a file (3, 5, 6, 7) under `ddp`
falls back to `--multi_gpu` on all of them, and under a sharded strategy takes
the largest file it fits (a sharded run's figures are laid out for 1/2/4/8).
"""

from __future__ import annotations

from pathlib import Path

from annotation.qa.errors import Refused

ACCELERATE_DIR = Path(__file__).resolve().parent.parent / "config" / "accelerate"
STRATEGIES = ("ddp", "zero2", "zero3", "fsdp")
GPU_COUNTS = (1, 2, 4, 8)


def accelerate_config_for(*, gpu_count: int, strategy: str = "ddp", explicit: str = "") -> str:
    """The config file for a node with `gpu_count` GPUs; "" for plain `python -m` or `--multi_gpu`."""
    if explicit.strip():
        return explicit.strip()
    if strategy not in STRATEGIES:
        raise Refused(f"TRAINING_ACCELERATE_STRATEGY is {strategy!r}; use one of {', '.join(STRATEGIES)}",
                      field="TRAINING_ACCELERATE_STRATEGY")
    if gpu_count < 1:
        return ""
    fitting = [n for n in GPU_COUNTS if n <= gpu_count]
    if gpu_count not in GPU_COUNTS and strategy == "ddp":
        return ""
    return str(ACCELERATE_DIR / strategy / f"{fitting[-1]}gpu.yaml")
