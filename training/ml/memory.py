"""Memory savers for large models, each a config option that leaves a run unchanged when off.

- gradient checkpointing: activations are recomputed in the backward pass
  instead of kept (about a third more compute for most of the activation memory);
- LoRA (peft): only low-rank adapters of the attention projections train, so
  optimizer state shrinks from twice the model to a few megabytes, and PPO's
  frozen reference policy is the policy with its adapters switched off (no copy);
- 8-bit optimizers (bitsandbytes): Adam's two moments in 8 bits (CUDA only);
- reward models in bf16: frozen scorers in half the memory.

A LoRA model is saved twice: merged into full weights (`save_pretrained`
layout, what evaluation and later rounds load) and as its adapter (what a
resumed run loads on top of the same base model, so that its reference policy
is still the base model).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from training.ml.configs import ConfigError

ADAPTER_SUFFIX = "_adapter"


# ---------------------------------------------------------------- gradient checkpointing


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Recompute activations in the backward pass (transformers models; a peft model passes it through)."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(target, "activation_checkpointing_enable"):  # transformers 5's name; the old one warns
        target.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        target.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def train_without_dropout(model: torch.nn.Module) -> None:
    """Training mode (transformers checkpoints only modules in it) with every dropout at 0.

    PPO scores in eval mode so that the first epoch's ratio is exactly 1; a dropout of 0
    in training mode computes the same numbers, and lets checkpointing work.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.train()


# ---------------------------------------------------------------- LoRA


def lora_config(*, r: int, alpha: int, dropout: float, task: str | None) -> Any:
    from peft import LoraConfig

    # target_modules=None: peft's per-architecture default (T5: q, v; GPT-2: c_attn; BERT: query, value).
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, task_type=task, target_modules=None)


# peft reads transformers' deprecated `is_gradient_checkpointing` when it wraps a model; the FutureWarning names
# nothing a run's config can change, and would be printed in every LoRA run's log.
PEFT_NOISE = r"`is_gradient_checkpointing` is deprecated"


def with_lora(model: torch.nn.Module, *, r: int, alpha: int, dropout: float, adapter: str | Path | None = None,
              task: str | None = None) -> torch.nn.Module:
    """`model` with trainable LoRA adapters (fresh, or the saved `adapter` folder); its other weights frozen."""
    from peft import PeftModel, get_peft_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_NOISE, category=FutureWarning)
        if adapter is not None:
            return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
        return get_peft_model(model, lora_config(r=r, alpha=alpha, dropout=dropout, task=task))


def is_lora(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def adapters_off(model: Any) -> contextlib.AbstractContextManager:
    """The base model's function for the block: LoRA's frozen reference policy at no memory cost."""
    return model.disable_adapter() if is_lora(model) else contextlib.nullcontext()


def merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """Full weights with each LoRA update folded in, keyed as the base model's own; the model is not touched.

    (Merging in place and back would round the base weights, and a resumed run would drift.)
    """
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    merged: dict[str, torch.Tensor] = {}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            weight = module.get_base_layer().weight
            delta = sum(module.get_delta_weight(a) for a in module.active_adapters)
            merged[f"{name}.weight"] = (weight + delta.to(weight.dtype)).detach()
    for key, tensor in base.state_dict().items():
        if "lora_" in key:
            continue
        key = key.replace(".base_layer.", ".")
        merged.setdefault(key, tensor.detach())
    return merged


def save_pretrained_full(model: Any, folder: Path, *, state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """`save_pretrained` of the full model (a LoRA model merged), and its adapter beside it when it has one."""
    folder = Path(folder)
    if is_lora(model):
        base = model.get_base_model()
        base.save_pretrained(folder, state_dict=merged_state_dict(model))
        model.save_pretrained(adapter_folder(folder))
        return
    model.save_pretrained(folder, state_dict=state_dict)


def adapter_folder(folder: Path) -> Path:
    folder = Path(folder)
    return folder.with_name(folder.name + ADAPTER_SUFFIX)


def trainable(parameters: Iterable[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    return [p for p in parameters if p.requires_grad]


# ---------------------------------------------------------------- optimizers


def check_eight_bit(device: Any) -> None:
    """8-bit optimizers run on CUDA only: refuse elsewhere, naming the setting."""
    if torch.device(device).type != "cuda":
        raise ConfigError([("optim_8bit", f"8-bit optimizers (bitsandbytes) need a CUDA GPU; this process runs on {device}")])
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ConfigError([("optim_8bit", f"bitsandbytes is not installed ({exc})")]) from None


def make_optimizer(params: Any, *, kind: str, lr: float, eps: float = 1e-8, weight_decay: float = 0.0,
                   eight_bit: bool = False, device: Any = "cpu") -> torch.optim.Optimizer:
    """`kind` "adam" or "adamw", in 8 bits when asked (bitsandbytes), else torch's."""
    if eight_bit:
        check_eight_bit(device)
        import bitsandbytes as bnb

        cls = bnb.optim.Adam8bit if kind == "adam" else bnb.optim.AdamW8bit
        return cls(params, lr=lr, eps=eps, weight_decay=weight_decay)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, eps=eps)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


# ---------------------------------------------------------------- reward models


def rm_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]

