"""State a collator shares with its copies in data-loader workers.

Each worker of a ``DataLoader`` holds its own copy of the collator (a fork, or a
pickle under spawn), so a plain attribute set after the workers start never
reaches them: persistent workers would keep epoch 0's masks forever. The epoch
and the per-example visit counts therefore live in shared-memory tensors, which
a fork inherits and torch's multiprocessing pickler shares under spawn.
"""

from __future__ import annotations

import multiprocessing

import torch
from torch import Tensor

from femlm.errors import FemlmError

UNKNOWN = -1  # no epoch given: masks are drawn fresh on every call


class SharedEpoch:
    """One int64 in shared memory: the epoch masks are keyed on, or UNKNOWN."""

    def __init__(self, epoch: int | None = None) -> None:
        self.value = torch.full((1,), UNKNOWN if epoch is None else int(epoch), dtype=torch.long)
        self.value.share_memory_()

    def get(self) -> int | None:
        v = int(self.value[0])
        return None if v == UNKNOWN else v

    def set(self, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.value[0] = int(epoch)


class VisitCounter:
    """How many times each example key has been collated, across worker processes.

    An open-addressing table of (key, count) rows in shared memory, updated under
    one lock per batch. With no epoch to key on, the visit number stands for it, so
    ``fully-explored-epochs`` still walks each sequence through its K groups.
    """

    def __init__(self, capacity: int = 1 << 20) -> None:
        self.capacity = capacity
        self.table = torch.zeros(capacity, 2, dtype=torch.long)  # key, count; key 0 = empty
        self.table.share_memory_()
        # spawn's lock works under fork too; a fork lock cannot cross into a spawned worker
        self.lock = multiprocessing.get_context("spawn").Lock()

    def visit(self, keys: Tensor) -> Tensor:
        """``[batch]`` visit numbers (0 on the first) of ``keys``; each call counts once."""
        out = torch.empty_like(keys)
        with self.lock:
            for i, key in enumerate(keys.tolist()):
                slot = self._slot(key or 1)  # 0 marks an empty row
                out[i] = self.table[slot, 1]
                self.table[slot, 1] += 1
        return out

    def _slot(self, key: int) -> int:
        start = key % self.capacity
        for probe in range(self.capacity):
            slot = (start + probe) % self.capacity
            held = int(self.table[slot, 0])
            if held == key:
                return slot
            if held == 0:
                self.table[slot, 0] = key
                return slot
        raise FemlmError(
            f"the collator has seen more than {self.capacity:,} distinct sequences without an "
            "epoch: call collator.set_epoch(epoch) each epoch (or pass "
            "callbacks=[epoch_callback(collator)] to Trainer)"
        )
