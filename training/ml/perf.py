"""Throughput figures every trainer logs under `perf/`: step time and its split, tokens/s, samples/s, MFU.

FLOPs are counted the usual way for transformers (Kaplan et al.; PaLM's MFU):
a forward pass costs 2 x parameters per token and a training pass (forward
and backward) 6 x parameters per token; attention's own term is left out, so
the MFU is a slight underestimate at long inputs. For an encoder-decoder the
tokens are the prompt's plus the answer's. MFU is achieved FLOP/s over the
peak dense bf16 FLOP/s of the devices (`GPU_PEAK_TFLOPS` overrides the table);
on a CPU, or a GPU not in the table, there is no MFU.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

# Dense bf16 tensor-core peak, TFLOP/s per device (vendor data sheets, SXM parts).
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "A800": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
    "A10": 125.0,
    "L4": 121.0,
    "V100": 125.0,
    "RTX 4090": 165.0,
    "RTX 3090": 71.0,
}
SECTIONS = ("generation", "scoring", "training")


def peak_flops(device: Any) -> float | None:
    """Peak FLOP/s of one device, or None where unknown (CPU, a GPU not in the table)."""
    override = os.environ.get("GPU_PEAK_TFLOPS", "").strip()
    if override:
        return float(override) * 1e12
    import torch

    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):  # "A10G" before "A10"
        if key in name:
            return PEAK_TFLOPS[key] * 1e12
    return None


def parameter_count(*models: Any) -> int:
    """Parameters of the models, each counted once (a shared or tied tensor too)."""
    seen: set[int] = set()
    total = 0
    for model in models:
        if model is None:
            continue
        for p in model.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel() if p.numel() else int(getattr(p, "ds_numel", 0))  # ZeRO-3 shards report 0
    return total


def forward_flops(params: int, tokens: float) -> float:
    return 2.0 * params * tokens


def training_flops(params: int, tokens: float) -> float:
    return 6.0 * params * tokens


class StepTimer:
    """Wall time of one step and of its sections; CUDA work is waited for at each boundary."""

    def __init__(self, device: Any = "cpu") -> None:
        import torch

        self._cuda = torch.device(device).type == "cuda" and torch.cuda.is_available()
        self.seconds = {name: 0.0 for name in SECTIONS}
        self.started = self._now()

    def _now(self) -> float:
        if self._cuda:
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        start = self._now()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + self._now() - start

    def metrics(self, *, tokens: float, samples: float, flops: float, processes: int = 1,
                peak: float | None = None) -> dict[str, float]:
        """This process's step under `perf/`; tokens, samples and FLOPs are this process's, scaled to all."""
        elapsed = max(self._now() - self.started, 1e-9)
        out = {"perf/step_seconds": elapsed}
        for name, seconds in self.seconds.items():
            out[f"perf/{name}_seconds"] = seconds
        out["perf/tokens_per_second"] = tokens * processes / elapsed
        out["perf/samples_per_second"] = samples * processes / elapsed
        out["perf/tflops_per_device"] = flops / elapsed / 1e12
        if peak:
            out["perf/mfu"] = flops / elapsed / peak
        memory = peak_memory_gb()
        if memory is not None:
            out["perf/peak_memory_gb"] = memory
        return out


def peak_memory_gb() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated() / 2**30


class Throughput:
    """Steps timed since the last report, reported with the loss (trainers that log every N steps)."""

    def __init__(self) -> None:
        self.seconds = self.tokens = self.samples = self.flops = 0.0
        self.steps = 0

    def add(self, *, seconds: float, tokens: float, samples: float, flops: float) -> None:
        self.seconds += seconds
        self.tokens += tokens
        self.samples += samples
        self.flops += flops
        self.steps += 1

    def pop(self, *, processes: int = 1, peak: float | None = None) -> dict[str, float]:
        """The mean step and its throughput over the steps added since the last call, all processes together."""
        seconds = max(self.seconds, 1e-9)
        out = {
            "perf/step_seconds": self.seconds / max(1, self.steps),
            "perf/training_seconds": self.seconds / max(1, self.steps),
            "perf/tokens_per_second": self.tokens * processes / seconds,
            "perf/samples_per_second": self.samples * processes / seconds,
            "perf/tflops_per_device": self.flops / seconds / 1e12,
        }
        if peak:
            out["perf/mfu"] = self.flops / seconds / peak
        memory = peak_memory_gb()
        if memory is not None:
            out["perf/peak_memory_gb"] = memory
        self.__init__()
        return out
