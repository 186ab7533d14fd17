"""Mixed precision and memory options of the loop: bf16 or fp16 autocast (fp16 with a
gradient scaler, for GPUs without bf16 such as T4 and V100) and gradient
checkpointing (recompute activations in backward: less memory, ~30% more time)."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from femlm.config import TrainConfig
from femlm.errors import FemlmError

log = logging.getLogger("femlm")


def check_precision(cfg: TrainConfig) -> None:
    if cfg.fp16 and (cfg.bf16 or cfg.auto_bf16):
        flag = "--bf16" if cfg.bf16 else "--auto-bf16"
        raise FemlmError(f"{flag} and --fp16 exclude each other: choose one")


def resolve_auto_bf16(cfg: TrainConfig, device: torch.device) -> None:
    """``auto_bf16`` at a run's start: bf16 autocast where ``device`` runs it natively,
    fp32 elsewhere. The pick is written into ``cfg.bf16``, so the saved config records
    it and a resumed run (which loads that config) keeps it on any machine."""
    if not cfg.auto_bf16 or cfg.bf16:
        return
    if device.type == "cuda":
        cfg.bf16 = bool(torch.cuda.is_bf16_supported())
        why = f"{torch.cuda.get_device_name(device)} {'has' if cfg.bf16 else 'lacks'} bf16"
    else:
        cfg.bf16 = device.type == "cpu" and native_cpu_bf16()
        why = "this CPU has " + (
            "AVX512-BF16 or AMX" if cfg.bf16 else "neither AVX512-BF16 nor AMX"
        )
    log.info("auto_bf16: %s (%s)", "bf16 autocast" if cfg.bf16 else "fp32", why)


def native_cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX); without
    either, bf16 matmuls are emulated and slower than fp32 (docs/benchmarks.md)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


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
