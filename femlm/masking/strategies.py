"""Masking strategies as names and rules, without torch.

The one home of the strategy names, the default mask rate and the rule that
ties views to rate. The command line, configs and reports import this module
to validate settings without paying for torch; the samplers import it too.
"""

from __future__ import annotations

import math

from femlm.errors import FemlmError

FULLY_EXPLORED = ("fully-explored", "fully-explored-contiguous", "fully-explored-span")
# One group of a fully-explored partition per epoch, the K groups over a K-epoch
# cycle: each step looks like standard masking (one view at rate 1/K), and every
# token of a sequence is predicted once per cycle.
ACROSS_EPOCHS = ("fully-explored-epochs",)
STRATEGIES = ("random", "random-bernoulli", "whole-word", "span", *FULLY_EXPLORED, *ACROSS_EPOCHS)
DEFAULT_RATE = 0.15
# Strategies that mask whole words (whole-word) or word-aligned spans when word ids are given.
WORD_LEVEL = ("whole-word", "span", "fully-explored-span")


def resolve_views_rate(strategy: str, views: int | None, rate: float | None) -> tuple[int, float]:
    """Fill in and check ``views`` and ``rate`` for a strategy.

    The fully-explored family ties them: ``views = round(1 / rate)`` and the
    effective rate is ``1 / views``; giving both is allowed only when they
    agree up to that rounding. Other strategies draw ``views`` independent
    masks (default 1) at ``rate`` (default 0.15).
    """
    if strategy not in STRATEGIES:
        raise FemlmError(
            f"unknown masking strategy {strategy!r}; choose from {', '.join(STRATEGIES)}"
        )
    if rate is not None and not (isinstance(rate, (int, float)) and 0.0 < rate < 1.0):
        raise FemlmError(f"mask rate must be a number in (0, 1), got {rate!r}")
    if views is not None and (isinstance(views, bool) or not isinstance(views, int) or views < 1):
        raise FemlmError(f"views must be a positive integer, got {views!r}")
    if strategy not in FULLY_EXPLORED + ACROSS_EPOCHS:
        return (views or 1), (DEFAULT_RATE if rate is None else float(rate))
    if views is None:
        views = _round_half_up(1.0 / (DEFAULT_RATE if rate is None else rate))
    elif rate is not None and _round_half_up(1.0 / rate) != views:
        raise FemlmError(
            f"{strategy} ties views and rate (views = round(1/rate)): views={views} and "
            f"rate={rate} disagree; give one of them, or rate close to {1 / views:.4f}"
        )
    if views < 2:
        raise FemlmError(f"{strategy} needs at least 2 views (rate <= 2/3), got {views}")
    return views, 1.0 / views


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def step_views(strategy: str, views: int) -> int:
    """Rows each sequence takes in one step: its ``views``, except across epochs, where
    ``views`` is the cycle length K and a step shows one group of the partition."""
    return 1 if strategy in ACROSS_EPOCHS else views


def cycle_of(strategy: str, views: int, epoch: int) -> int:
    """What masks are keyed on besides (seed, example): the epoch, or across epochs the
    K-epoch cycle, so that one partition serves the K epochs of a cycle."""
    return epoch // views if strategy in ACROSS_EPOCHS else epoch
