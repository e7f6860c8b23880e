"""Sharded training through accelerate: DeepSpeed ZeRO-2/3 and FSDP, beside plain data parallel.

What changes when the models are sharded, and where each trainer asks:

- preparation: under DeepSpeed every trained model is its own engine with its
  own optimizer, and accelerate refuses two models in one `prepare` call; so
  PPO's policy and value model each get an optimizer and a `prepare` call of
  their own (`prepare_pairs`). DeepSpeed also needs the micro-batch size and
  the accumulation steps it should expect, since no dataloader is prepared.
- generation: under ZeRO-3 / FSDP each process holds a shard of every weight;
  `generate` runs on the unwrapped module inside `gathered` (the full weights,
  read-only, for the block).
- saving: `full_state_dict` gathers the full weights, a collective call that
  every process makes; the main process then writes them as usual.
- resuming under another number of GPUs: models are saved as full weights, so
  they load under any count, and the step, schedule and data order come from
  the state file. Under ZeRO / FSDP the optimizer state is sharded over the
  processes; a checkpoint records that (`optimizer_sharded`), and a resumed run
  then starts Adam's moments afresh (as after a warm-up restart) instead of
  loading one process's shard as if it were the whole state.

Plain runs (one process, or DDP) take the paths they always took.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

DEEPSPEED = "DEEPSPEED"
FSDP = "FSDP"


def distributed_type(accelerator: Any) -> str:
    value = getattr(accelerator, "distributed_type", "NO")
    return str(getattr(value, "value", value))


def is_deepspeed(accelerator: Any) -> bool:
    return distributed_type(accelerator) == DEEPSPEED


def is_fsdp(accelerator: Any) -> bool:
    return distributed_type(accelerator) == FSDP


def zero_stage(accelerator: Any) -> int:
    """The DeepSpeed ZeRO stage (0 when not under DeepSpeed)."""
    if not is_deepspeed(accelerator):
        return 0
    plugin = accelerator.state.deepspeed_plugin
    return int(plugin.deepspeed_config.get("zero_optimization", {}).get("stage", plugin.zero_stage or 0))


def is_sharded(accelerator: Any) -> bool:
    """Weights split over processes: ZeRO-3 or FSDP (ZeRO-2 shards only gradients and optimizer state)."""
    return zero_stage(accelerator) == 3 or is_fsdp(accelerator)


def configure_deepspeed(accelerator: Any, *, micro_batch_size: int, grad_accum: int, max_grad_norm: float = 0.0) -> None:
    """The batch figures DeepSpeed checks at `prepare` (it would read them off a prepared dataloader) and the
    run's gradient clipping (0 = none), which DeepSpeed applies itself in place of the trainer's `clip_grad_norm_`."""
    if not is_deepspeed(accelerator):
        return
    config = accelerator.state.deepspeed_plugin.deepspeed_config
    config["gradient_clipping"] = float(max_grad_norm)
    config["train_micro_batch_size_per_gpu"] = int(micro_batch_size)
    config["gradient_accumulation_steps"] = int(grad_accum)
    config["train_batch_size"] = int(micro_batch_size) * int(grad_accum) * int(accelerator.num_processes)
    # Saving gathers full 16-bit weights from the ZeRO-3 shards (see full_state_dict).
    if zero_stage(accelerator) == 3:
        config.setdefault("zero_optimization", {})["stage3_gather_16bit_weights_on_model_save"] = True


def prepare_pairs(accelerator: Any, pairs: Sequence[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Each (model, optimizer) prepared: in one call normally, one call per pair under DeepSpeed."""
    if is_deepspeed(accelerator) or len(pairs) == 1:
        return [tuple(accelerator.prepare(model, optimizer)) for model, optimizer in pairs]
    flat = accelerator.prepare(*[x for pair in pairs for x in pair])
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


@contextlib.contextmanager
def gathered(accelerator: Any, model: Any) -> Iterator[None]:
    """Full weights of a sharded model for the block (generation); nothing to do when it is not sharded."""
    if zero_stage(accelerator) == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
            yield
    elif is_fsdp(accelerator):
        from torch.distributed.fsdp import FullyShardedDataParallel

        with FullyShardedDataParallel.summon_full_params(model, writeback=False, recurse=True):
            yield
    else:
        yield


def full_state_dict(accelerator: Any, model: Any) -> dict | None:
    """The full weights of a prepared model for saving; call on every process (sharded runs gather).

    None when the model is not sharded: the caller saves the module's own weights, as before.
    """
    if not is_sharded(accelerator):
        return None
    return accelerator.get_state_dict(model, unwrap=True)


def no_sync(accelerator: Any, models: Sequence[Any], *, sync: bool) -> contextlib.AbstractContextManager:
    """Skip the gradient all-reduce of `models` for a micro-batch that is not the update's last (DDP)."""
    if sync or accelerator.num_processes == 1 or is_deepspeed(accelerator):
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    for model in models:
        stack.enter_context(accelerator.no_sync(model))
    return stack


def optimizer_is_sharded(accelerator: Any) -> bool:
    """Whether each process holds only part of the optimizer state (any ZeRO stage, FSDP)."""
    return is_deepspeed(accelerator) or is_fsdp(accelerator)
