"""Mixed precision and memory options of the loop: bf16 or fp16 autocast (fp16 with a
gradient scaler, for GPUs without bf16 such as T4 and V100) and gradient
checkpointing (recompute activations in backward: less memory, ~30% more time)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from femlm.config import TrainConfig
from femlm.errors import FemlmError


def check_precision(cfg: TrainConfig) -> None:
    if cfg.bf16 and cfg.fp16:
        raise FemlmError("--bf16 and --fp16 exclude each other: choose one")


def autocast(cfg: TrainConfig, device: torch.device) -> Any:
    """The forward passes' autocast context (a null context in fp32)."""
    if cfg.bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if cfg.fp16:
        return torch.autocast(device_type=device.type, dtype=torch.float16)
    return nullcontext()


def grad_scaler(cfg: TrainConfig, device: torch.device) -> torch.amp.GradScaler:
    """fp16 gradients underflow without loss scaling; disabled, the scaler passes
    losses and optimizer steps through unchanged, so fp32 and bf16 runs are as before."""
    return torch.amp.GradScaler(device.type, enabled=cfg.fp16)


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Checkpoint every encoder layer (non-reentrant: works under DDP and with inputs
    that need no gradient)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise FemlmError(f"{type(model).__name__} does not support gradient checkpointing")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5's name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
