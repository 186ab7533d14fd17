"""Made-up words for the benchmarks (a BERT tokenizer over ``w0 .. wN`` and random text
in it) and the two ways they time a training step.

Imported by the benchmark scripts beside it (``python benchmarks/X.py`` puts
this folder on the path); nothing is downloaded.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from femlm.data.tokenizer import (
    SPECIAL_TOKENS,
    load_tokenizer,
    save_tokenizer,
    wordpiece_from_vocab,
)


def made_up_tokenizer(folder: Path, vocab: int) -> Any:
    """Save and return a BERT-style WordPiece tokenizer with ``vocab`` entries: the
    specials, then the words ``w0``, ``w1``, ...

    Built with ``tokenizers`` and saved by femlm, not from a ``Bert*`` class, so
    it works with every transformers version pyproject.toml admits.
    """
    words = [f"w{i}" for i in range(vocab - len(SPECIAL_TOKENS))]
    save_tokenizer(wordpiece_from_vocab(words), folder)
    return load_tokenizer(folder)


def made_up_corpus(path: Path, docs: int, vocab: int, seed: int = 0) -> None:
    """``docs`` lines of 200 uniformly random words of :func:`made_up_tokenizer`'s vocabulary."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab - len(SPECIAL_TOKENS), (docs, 200), generator=g).tolist()
    path.write_text("\n".join(" ".join(f"w{i}" for i in row) for row in ids) + "\n")


def median_logged_rate(metrics: Path) -> float:
    """femlm's own tokens/s from a run's metrics.jsonl: the median over the logged
    steps after the first two (warm-up)."""
    rows = [json.loads(x) for x in metrics.read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in rows if r.get("tokens_per_s")]
    return statistics.median(rates[2:])


def median_step_seconds(
    model: Any, opt: Any, batch: dict, steps: int, clip: float | None = None, warmup: int = 2
) -> float:
    """fwd + bwd (+ gradient clipping) + optimizer step on one pre-masked batch, the
    median seconds over the steps after ``warmup`` warm-up steps."""
    from femlm.model import mlm_loss_sum

    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss, count = mlm_loss_sum(model, batch)
        (loss / count).backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[warmup:])
