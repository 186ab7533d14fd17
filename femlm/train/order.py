"""The data order: which training blocks each optimizer step takes, and in which epoch.

Each epoch is a fresh permutation of the ``n`` training blocks keyed on (seed,
epoch), so the order is a pure function of (seed, step) and a resumed run, or
any rank, computes the same rows. An epoch's order has ``n mod B`` blocks more
than its whole batches hold (``B`` the batch size); ``epoch_tail`` says what
happens to them:

* ``drop``: they are not used in that epoch, so every step lies inside one
  epoch (``n // B`` steps an epoch). A block then misses some epochs, which
  breaks "every token once per cycle" for ``fully-explored-epochs``.
* ``wrap``: the epochs' orders are laid end to end and step ``s`` takes the
  blocks at places ``s*B .. s*B + B - 1`` of that stream, so every block is
  seen exactly once per epoch and a step may hold the end of one epoch and the
  start of the next (``n / B`` steps an epoch).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from femlm.errors import FemlmError
from femlm.masking.keyed import mix_ints

TAILS = ("drop", "wrap")


def steps_per_epoch(n: int, batch_size: int, tail: str = "drop") -> float:
    """Optimizer steps of one pass: ``n // B`` when the tail is dropped, ``n / B`` when
    it wraps into the next epoch."""
    return n // batch_size if tail == "drop" else n / batch_size


def epoch_steps(epochs: float, n: int, batch_size: int, tail: str = "drop") -> int:
    """``max_steps`` for ``--epochs``: whole epochs exactly, a fraction rounded (at least 1)."""
    if not epochs > 0:
        raise FemlmError(f"epochs must be positive, got {epochs}")
    return max(1, round(epochs * steps_per_epoch(n, batch_size, tail)))


def epochs_done(step: int, n: int, batch_size: int, tail: str = "drop") -> int:
    """Whole epochs completed after ``step`` optimizer steps."""
    if tail == "drop":
        return step // (n // batch_size)
    return step * batch_size // n


def step_rows(n: int, batch_size: int, seed: int, step: int, tail: str = "drop") -> list:
    """``[(epoch, block index), ...]`` of the ``batch_size`` blocks of step ``step``."""
    if tail not in TAILS:
        raise FemlmError(f"epoch_tail must be one of {', '.join(TAILS)}, got {tail!r}")
    if tail == "drop":
        epoch, within = divmod(step, n // batch_size)
        chunk = _epoch_order(n, seed, epoch)[within * batch_size : (within + 1) * batch_size]
        return [(epoch, i) for i in chunk.tolist()]
    rows = []
    for place in range(step * batch_size, (step + 1) * batch_size):
        epoch, within = divmod(place, n)
        rows.append((epoch, int(_epoch_order(n, seed, epoch)[within])))
    return rows


@functools.lru_cache(maxsize=2)
def _epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    g = torch.Generator().manual_seed(int(mix_ints(seed, epoch)) & (2**63 - 1))
    return torch.randperm(n, generator=g)
