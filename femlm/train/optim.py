"""The optimizer and learning-rate schedule of pre-training and fine-tuning alike."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from femlm.config import TrainConfig

# RoBERTa's betas and epsilon for pre-training; fine-tuning keeps AdamW's defaults.
PRETRAIN_BETAS, PRETRAIN_EPS = (0.9, 0.98), 1e-6


def adamw(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """AdamW without weight decay on biases and LayerNorm weights (the BERT recipe)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.dim() < 2 or "LayerNorm" in name else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Pre-training's AdamW."""
    return adamw(model, cfg.lr, cfg.weight_decay, PRETRAIN_BETAS, PRETRAIN_EPS)


def warmup_then(warm: int, total: int, schedule: str = "linear") -> Callable[[int], float]:
    """The learning-rate multiplier of each step: linear warm-up over ``warm`` steps,
    then ``schedule`` (linear, cosine or constant) down to the step ``total``."""

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, total - warm))
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress

    return factor


def lr_factor(cfg: TrainConfig) -> Callable[[int], float]:
    """Pre-training's schedule: ``cfg.warmup_steps``, then ``cfg.schedule`` to the last step."""
    return warmup_then(cfg.warmup_steps, cfg.max_steps, cfg.schedule)
