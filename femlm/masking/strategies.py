"""Masking strategies as names and rules, without torch: the registry and the
resolved masking record.

Each strategy is one :class:`Strategy` entry of :data:`REGISTRY`; its sampler
is the function registered under the same name in :mod:`femlm.masking.samplers`.
Everything else about strategies derives from the entries: the names, the
families, which strategies are word-level, each one's one-view baseline and the
strategies the variance tool compares by default. The command line, configs and
reports import this module to validate settings without paying for torch.

:class:`MaskingSpec` is a run's masking resolved and validated once (strategy,
views, rate, replacement); the collator, the samplers' entry point, the loop, the
variance analyser, ``femlm mask`` and the reports take it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from femlm.errors import FemlmError

# Families: independent views at a rate; a partition into K views of one step;
# a partition whose K groups are spread over a K-epoch cycle, one view per step.
ONE_VIEW = "one-view"
PARTITION = "partition"
ACROSS = "across-epochs"
DEFAULT_RATE = 0.15


@dataclass(frozen=True)
class Strategy:
    """One masking strategy.

    ``key`` keys the variance probe's masks: it is part of the recorded results, so
    an entry's key never changes and a new entry takes a new one. ``baseline`` is the
    one-view strategy whose single mask has the marginal distribution of one of its
    views. ``default_probe``: a partition strategy ``femlm variance`` compares unless
    told otherwise (with its baseline and random, :data:`DEFAULT_PROBED`).
    """

    name: str
    family: str
    word_level: bool
    baseline: str
    key: int
    default_probe: bool
    help: str

    @property
    def ties_views_to_rate(self) -> bool:
        return self.family != ONE_VIEW


REGISTRY: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("random", ONE_VIEW, False, "random", 0, False,
                 "each view: exactly round(rate*n) positions, independently per view"),
        Strategy("random-bernoulli", ONE_VIEW, False, "random-bernoulli", 1, False,
                 "each position with probability rate (Hugging Face's collator)"),
        Strategy("whole-word", ONE_VIEW, True, "whole-word", 2, False,
                 "whole words up to the budget"),
        Strategy("span", ONE_VIEW, True, "span", 3, False,
                 "SpanBERT spans, geometric lengths, word-aligned when word ids are known"),
        Strategy("fully-explored", PARTITION, False, "random", 4, True,
                 "a random partition into K disjoint views"),
        Strategy("fully-explored-contiguous", PARTITION, False, "random", 5, False,
                 "K contiguous blocks"),
        Strategy("fully-explored-span", PARTITION, True, "span", 6, True,
                 "spans tiled over the sequence, dealt to K views"),
        Strategy("fully-explored-epochs", ACROSS, False, "random", 7, False,
                 "fully-explored's K groups spread over a K-epoch cycle, one a step"),
    )
}  # fmt: skip

STRATEGIES = tuple(REGISTRY)
FULLY_EXPLORED = tuple(n for n, s in REGISTRY.items() if s.family == PARTITION)
ACROSS_EPOCHS = tuple(n for n, s in REGISTRY.items() if s.family == ACROSS)
PARTITIONED = FULLY_EXPLORED + ACROSS_EPOCHS
WORD_LEVEL = tuple(n for n, s in REGISTRY.items() if s.word_level)
# What femlm variance compares by default: random (the reference), the partition
# strategies marked default_probe, then their one-view baselines.
_PROBED = [n for n, s in REGISTRY.items() if s.default_probe and s.family == PARTITION]
DEFAULT_PROBED = list(dict.fromkeys(["random", *_PROBED, *(REGISTRY[n].baseline for n in _PROBED)]))


def strategy(name: str) -> Strategy:
    """The registry entry of ``name``, or a FemlmError listing the names."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise FemlmError(
            f"unknown masking strategy {name!r}; choose from {', '.join(STRATEGIES)}"
        ) from None


def resolve_views_rate(name: str, views: int | None, rate: float | None) -> tuple[int, float]:
    """Fill in and check ``views`` and ``rate`` for a strategy.

    The fully-explored family ties them: ``views = round(1 / rate)`` and the
    effective rate is ``1 / views``; giving both is allowed only when they
    agree up to that rounding. Other strategies draw ``views`` independent
    masks (default 1) at ``rate`` (default 0.15).
    """
    info = strategy(name)
    if rate is not None and not (isinstance(rate, (int, float)) and 0.0 < rate < 1.0):
        raise FemlmError(f"mask rate must be a number in (0, 1), got {rate!r}")
    if views is not None and (isinstance(views, bool) or not isinstance(views, int) or views < 1):
        raise FemlmError(f"views must be a positive integer, got {views!r}")
    if not info.ties_views_to_rate:
        return (views or 1), (DEFAULT_RATE if rate is None else float(rate))
    if views is None:
        views = _round_half_up(1.0 / (DEFAULT_RATE if rate is None else rate))
    elif rate is not None and _round_half_up(1.0 / rate) != views:
        raise FemlmError(
            f"{name} ties views and rate (views = round(1/rate)): views={views} and "
            f"rate={rate} disagree; give one of them, or rate close to {1 / views:.4f}"
        )
    if views < 2:
        raise FemlmError(f"{name} needs at least 2 views (rate <= 2/3), got {views}")
    return views, 1.0 / views


def check_replacement(
    mask_prob: float, random_prob: float, names: tuple[str, str] = ("mask_prob", "random_prob")
) -> None:
    """The one rule for a replacement policy: two probabilities with a sum <= 1."""
    ok = all(isinstance(p, (int, float)) and 0.0 <= p <= 1.0 for p in (mask_prob, random_prob))
    if not ok or mask_prob + random_prob > 1.0 + 1e-9:
        raise FemlmError(
            f"{names[0]} and {names[1]} must be in [0, 1] with a sum <= 1, got "
            f"{mask_prob} and {random_prob}"
        )


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


@dataclass(frozen=True)
class MaskingSpec:
    """A run's masking, resolved and validated: build it with :meth:`resolve`.

    ``views`` and ``rate`` are the resolved values (for the fully-explored family
    ``rate == 1 / views``); ``mask_prob``/``random_prob`` the 80/10/10 policy.
    """

    strategy: str
    views: int
    rate: float
    mask_prob: float = 0.8
    random_prob: float = 0.1

    @classmethod
    def resolve(
        cls,
        strategy: str = "fully-explored",
        views: int | None = None,
        rate: float | None = None,
        mask_prob: float = 0.8,
        random_prob: float = 0.1,
    ) -> MaskingSpec:
        views, rate = resolve_views_rate(strategy, views, rate)
        check_replacement(mask_prob, random_prob)
        return cls(strategy, views, rate, float(mask_prob), float(random_prob))

    @classmethod
    def of(cls, settings: Any) -> MaskingSpec:
        """From a config (TrainConfig, VarianceConfig) or a saved config's dict."""
        get = settings.get if isinstance(settings, dict) else lambda k, d: getattr(settings, k, d)
        return cls.resolve(
            get("strategy", "fully-explored"), get("views", None), get("rate", None),
            get("mask_prob", 0.8), get("random_prob", 0.1),
        )  # fmt: skip

    def to_settings(self) -> dict[str, Any]:
        """The config keys that resolve back to this record."""
        return {
            "strategy": self.strategy, "views": self.views, "rate": self.rate,
            "mask_prob": self.mask_prob, "random_prob": self.random_prob,
        }  # fmt: skip

    @property
    def info(self) -> Strategy:
        return REGISTRY[self.strategy]

    @property
    def family(self) -> str:
        return self.info.family

    @property
    def step_views(self) -> int:
        """Rows each sequence takes in one step: its ``views``, except across epochs,
        where ``views`` is the cycle length K and a step shows one group."""
        return 1 if self.family == ACROSS else self.views

    @property
    def is_standard(self) -> bool:
        """Standard masking: random positions, one view of each sequence."""
        return self.strategy == "random" and self.views == 1

    def cycle_of(self, epoch: Any) -> Any:
        """What masks are keyed on besides (seed, example): the epoch, or across epochs
        the K-epoch cycle, so one partition serves the K epochs of a cycle."""
        return epoch // self.views if self.family == ACROSS else epoch
