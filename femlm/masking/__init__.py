"""Masking: strategy rules, samplers, keyed random numbers and the collator.

Dependencies inside point one way: ``strategies`` (torch-free) <- ``keyed`` <-
``samplers`` <- ``collator``; ``show`` (``femlm mask``) sits on top. The
public names are re-exported here, lazily, so that ``import femlm.masking``
(or its torch-free ``strategies``) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from femlm.masking.strategies import DEFAULT_RATE, FULLY_EXPLORED, STRATEGIES, resolve_views_rate

_LAZY = {
    "sample_masks": "samplers",
    "apply_replacement": "samplers",
    "budget": "samplers",
    "unit_ids": "samplers",
    "KeyedGenerator": "keyed",
    "MaskingCollator": "collator",
    "epoch_callback": "collator",
}

__all__ = ["DEFAULT_RATE", "FULLY_EXPLORED", "STRATEGIES", "resolve_views_rate", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"femlm.masking.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'femlm.masking' has no attribute {name!r}")
