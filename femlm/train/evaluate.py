"""The fixed evaluation set, its loss, and the unigram baseline to beat."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from femlm.masking.collator import MaskingCollator
from femlm.model import mlm_loss_sum

EVAL_BATCH = 32


def eval_batches_for(
    cfg: Any, tokenizer: Any, eval_set: Any, rank: int = 0, world: int = 1
) -> list:
    """The fixed evaluation set (the dev blocks): the first ``cfg.eval_sequences``
    evaluation blocks with ``random`` masks at ``cfg.eval_rate`` keyed on
    ``cfg.eval_seed``, identical for every strategy; rank ``r`` takes every
    ``world``-th batch. Inputs there are replaced as ``cfg.eval_mask_prob``/
    ``cfg.eval_random_prob`` say; the positions do not depend on them."""
    n = min(cfg.eval_sequences, len(eval_set))
    return _fixed_batches(cfg, tokenizer, eval_set, range(n), cfg.eval_seed, rank, world)


def test_batches_for(
    cfg: Any, tokenizer: Any, eval_set: Any, rank: int = 0, world: int = 1
) -> list[list]:
    """The test set, one list of batches per draw: the ``cfg.test_sequences`` blocks
    after the dev blocks, each draw's positions keyed on ``cfg.eval_seed + 1 + draw``
    (so no draw repeats the dev masks' keys); [] when there is no test set."""
    start = min(cfg.eval_sequences, len(eval_set))
    stop = min(start + cfg.test_sequences, len(eval_set))
    if stop <= start:
        return []
    rows = range(start, stop)
    return [
        _fixed_batches(cfg, tokenizer, eval_set, rows, cfg.eval_seed + 1 + draw, rank, world)
        for draw in range(cfg.test_draws)
    ]


def _fixed_batches(
    cfg: Any, tokenizer: Any, eval_set: Any, rows: range, seed: int, rank: int, world: int
) -> list:
    collator = MaskingCollator(
        tokenizer, "random", 1, cfg.eval_rate, cfg.eval_mask_prob, cfg.eval_random_prob,
        seed=seed, epoch=0,
    )  # fmt: skip
    batches = []
    for k, start in enumerate(range(rows.start, rows.stop, EVAL_BATCH)):
        if k % world != rank:
            continue
        idx = list(range(start, min(rows.stop, start + EVAL_BATCH)))
        ids = eval_set[idx]["input_ids"]
        feats = [{"input_ids": r, "example_index": i} for r, i in zip(ids, idx, strict=True)]
        batches.append(collator(feats))
    return batches


@torch.no_grad()
def evaluate(model: nn.Module, batches: list, d: Any, autocast: Any = None) -> float:
    """Mean cross-entropy over every masked token of the fixed evaluation set
    (summed over ranks when ``d`` is a multi-process :class:`femlm.dist.Dist`)."""
    model.eval()
    loss, count = 0.0, 0.0
    for batch in batches:
        batch = {k: v.to(d.device) for k, v in batch.items()}
        with autocast or nullcontext():
            s, c = mlm_loss_sum(model, batch)
        loss, count = loss + float(s), count + c
    loss, count = d.sum([loss, count])
    return loss / max(count, 1.0)


def unigram_loss(train_set: Any, batches: list, vocab_size: int, chunk: int = 4096) -> float:
    """Cross-entropy of the eval targets under training-set token frequencies.

    Add-one smoothing keeps unseen targets finite. Counting streams over the
    training blocks in chunks, so memory stays bounded.
    """
    counts = np.ones(vocab_size, dtype=np.float64)
    for start in range(0, len(train_set), chunk):
        rows = train_set[start : start + chunk]["input_ids"]
        counts += np.bincount(np.concatenate([np.asarray(r) for r in rows]), minlength=vocab_size)[
            :vocab_size
        ]
    logp = np.log(counts / counts.sum())
    total, n = 0.0, 0
    for batch in batches:
        labels = batch["labels"][batch["labels"] != -100].numpy()
        total -= float(logp[labels].sum())
        n += len(labels)
    return total / n if n else math.nan
