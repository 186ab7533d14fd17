"""Tuned against tuned: each masking arm's best settings chosen on dev blocks, then
the arms' bests compared on test blocks.

An *arm* is a way of drawing masks, read from a variant's settings (never its
name): standard masking (random positions, one view of each sequence), or a
strategy's name for anything else. Within an arm, variants differ in what is
tuned (rate, schedule, learning rate). The rule (docs/protocol.md):

* choose on dev: among candidates that ran every one of the selection seeds,
  the lowest mean final dev loss wins; a tie keeps the earlier candidate;
* judge on test: best against best, paired by seed over the verdict seeds,
  on the final test loss (the mean over its draws of positions).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from femlm.masking.strategies import MaskingSpec
from femlm.report.runs import Run, variant_config, variant_spec


def arm_of(spec: MaskingSpec) -> str:
    """``standard`` for one random view per sequence, else the strategy's name."""
    return "standard" if spec.is_standard else spec.strategy


def dev_by_seed(runs: list[Run]) -> dict[int, float]:
    return {r.seed: r.final for r in runs}


def test_by_seed(runs: list[Run]) -> dict[int, float]:
    return {r.seed: r.test for r in runs if r.test is not None}


def choose(
    candidates: Iterable[str], variants: dict[str, list[Run]], seeds: list[int]
) -> str | None:
    """The candidate with the lowest mean final dev loss over ``seeds``; candidates
    missing a seed are not eligible; None when none is."""
    best, best_loss = None, None
    for name in candidates:
        dev = dev_by_seed(variants.get(name, []))
        if not seeds or any(s not in dev for s in seeds):
            continue
        loss = statistics.fmean(dev[s] for s in seeds)
        if best_loss is None or loss < best_loss:
            best, best_loss = name, loss
    return best


def arms(config: dict[str, Any], names: Iterable[str]) -> dict[str, list[str]]:
    """``{arm: [variant, ...]}`` in the config's order."""
    out: dict[str, list[str]] = {}
    for name in names:
        out.setdefault(arm_of(variant_spec(config, name)), []).append(name)
    return out


def cell_of(config: dict[str, Any], name: str) -> tuple[float, str]:
    """(effective rate rounded, schedule): what a same-rate comparison holds fixed."""
    c = variant_config(config, name)
    return round(c.masking.rate, 3), c.schedule
