"""The analyser's estimators: pure arithmetic on sums of gradients, no model.

Kept apart from :mod:`femlm.variance.analyser` so the known-answer test can feed them
gradients drawn from a known covariance. Notation (docs/theory.md): R draws
of K views per sequence, ``T`` = sum of all R*K view gradients, ``A`` = sum
of their squared norms, ``D`` = sum over draws of the squared norm of the
draw's K-view sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from femlm.masking.strategies import FULLY_EXPLORED
from femlm.variance.results import (
    Comparison,
    Estimate,
    StrategyTerms,
    VarianceResult,
    baseline_of,
)


def finish_moments(T: Tensor, A: float, D: float, R: int, K: int) -> tuple[float, float, Tensor]:
    """Unbiased per-sequence estimates from the sums of one sequence.

    * mask variance of the K-view mean: the sample variance (R - 1 degrees of
      freedom) of the R independent draw means;
    * single-view variance ``sigma2`` (pooled over views, centred at the
      sequence's mean gradient): the within-sequence scatter of all R*K views,
      corrected for the estimated mean's own variance ``mv / R`` (views of one
      draw are not independent, so the usual ``n - 1`` would be biased);
    * the mean gradient ``T / (R K)``.
    """
    n = R * K
    tt = float(T @ T)
    mv = (D / K**2 - tt / (K**2 * R)) / (R - 1)
    s2 = (A - tt / n) / n + mv / R
    return mv, s2, T / n


def moments(grads: Tensor) -> tuple[float, float, Tensor]:
    """:func:`finish_moments` from all gradients of a sequence at once, ``[R, K, P]``."""
    R, K, _ = grads.shape
    sums = grads.sum(1)
    return finish_moments(grads.sum((0, 1)), float((grads**2).sum()), float((sums**2).sum()), R, K)


def finish_hamming(T: Tensor, A: float, TL: Tensor, X: Tensor, pairs: int) -> tuple[float, Tensor]:
    """Single-view variance and covariance per overlap level for one sequence.

    ``TL[l]``: sum of the gradients of level ``l``; ``X[l]``: sum over its
    pairs of the two gradients' inner product. Gradients are centred at the
    sequence's mean of all ``N`` views, which removes the mean exactly (no
    noise from ``<mu, e>`` terms); the centring's small bias (terms in 1/N)
    is undone by solving for the variance and the mean covariance jointly.
    """
    N = 2 * pairs * len(X)
    mean = T / N
    Z = (A - float(T @ T) / N) / N
    Y = (X - TL @ mean + pairs * float(mean @ mean)) / pairs
    Ybar = float(Y.mean())
    s2 = ((1 - 1 / N) * Z + Ybar / N) / (1 - 2 / N)
    cbar = (Z / N + (1 - 1 / N) * Ybar) / (1 - 2 / N)
    return s2, (Y + (s2 - cbar) / N) / (1 - 2 / N)


def v_data(gram: Tensor, mv: Tensor, idx: Tensor, R: int, resampled: bool = False) -> Tensor:
    """Variance across sequences of the mask-averaged gradient.

    The sample variance of the estimated means (from their Gram matrix),
    minus the average noise of those means, ``mv / R``: unbiased. In a
    bootstrap resample, repeated sequences shrink the spread by ``(n-1)/n``
    on average, which ``resampled`` undoes so intervals centre on the estimate.
    """
    g = gram[idx][:, idx]
    n = len(idx)
    spread = (g.diagonal().sum() - g.sum() / n) / ((n - 1) ** 2 / n if resampled else n - 1)
    return spread - mv[idx].mean() / R


@dataclass(frozen=True)
class Arm:
    """One masking distribution the analyser measures: K views of ``strategy`` at ``rate``."""

    strategy: str
    rate: float


@dataclass
class Part:
    """Per-sequence moments of one arm under one replacement setting: mask variance
    of the K-view mean ``mv [S]``, one view's variance ``s2 [S]`` and the Gram
    matrix of the sequences' mean gradients ``gram [S, S]``."""

    mv: Tensor
    s2: Tensor
    gram: Tensor


@dataclass
class Measurement:
    """What :func:`femlm.variance.analyser.measure` returns: per arm the parts with the
    configured replacement and with every chosen token shown as ``[MASK]``, and
    the Hamming curve's per-sequence ``s2 [S]`` and ``cov [S, levels]``."""

    configured: dict[Arm, Part]
    mask_only: dict[Arm, Part]
    hamming_s2: Tensor | None = None
    hamming_cov: Tensor | None = None
    info: dict = field(default_factory=dict)


def arm_of(strategy: str, views: int, rate: float | None) -> Arm:
    """The fully-explored family masks 1/K of the tokens per view; the others ``rate``
    (default 1/K too, so each K-view strategy meets a baseline of its own marginal)."""
    return Arm(strategy, 1 / views if strategy in FULLY_EXPLORED or rate is None else rate)


def plan_arms(strategies: Sequence[str], views: int, rate: float | None) -> list[Arm]:
    """The shown strategies' arms, each one's one-view baseline and the independent
    random views at its rate (the mask-variance ratio's denominator), once each."""
    arms = []
    for s in strategies:
        a = arm_of(s, views, rate)
        arms += [a, Arm(baseline_of(s), a.rate), Arm("random", a.rate)]
    return list(dict.fromkeys(arms))


Flat = dict[tuple, float]


def summarise(
    m: Measurement,
    idx: Tensor,
    strategies: Sequence[str],
    K: int,
    R: int,
    B: int,
    rate: float | None = None,
    resampled: bool = False,
) -> Flat:
    """Every reported number for the sequences ``idx`` (all of them, or a bootstrap
    resample), keyed ``("arm" | "cmp", strategy, field)`` or ``("ham", distance)``.

    Each comparison pools V_data over the arms that share its baseline (the same
    marginal mask distribution, so the same mask-averaged gradient): both sides
    then use one V_data, and the step-variance verdict and the break-even verdict
    are one inequality (docs/theory.md, section 4)."""
    own = {}
    for arm in plan_arms(strategies, K, rate):
        cfg, bare = m.configured[arm], m.mask_only[arm]
        own[arm] = (
            cfg.mv[idx].mean(), bare.mv[idx].mean(), cfg.s2[idx].mean(),
            v_data(cfg.gram, cfg.mv, idx, R, resampled),
        )  # fmt: skip
    members: dict[Arm, set[Arm]] = {}
    for s in strategies:
        a = arm_of(s, K, rate)
        members.setdefault(Arm(baseline_of(s), a.rate), set()).update({a})
    out: Flat = {}
    for s in strategies:
        a = arm_of(s, K, rate)
        mv, mv1, s2, vd = own[a]
        rmv, rmv1 = own[Arm("random", a.rate)][:2]
        values = (
            mv,
            mv1,
            (mv - mv1) / mv,
            s2,
            (mv - s2 / K) / (1 - 1 / K),
            vd,
            mv / rmv,
            mv1 / rmv1,
        )
        out |= {("arm", s, f.name): v for f, v in zip(_ARM_FIELDS, values, strict=True)}
        b = Arm(baseline_of(s), a.rate)
        pool = [own[x][3] for x in sorted(members[b] | {b}, key=str)]
        v, bs2 = sum(pool) / len(pool), own[b][2]
        step, base = (v + mv) / B, (v + bs2) / (B * K)
        values = (v, bs2, step, base, step / base, (bs2 - K * mv) / (K - 1))
        out |= {("cmp", s, f.name): x for f, x in zip(_CMP_FIELDS, values, strict=True)}
    if m.hamming_s2 is not None:
        hs2 = m.hamming_s2[idx].mean()
        for d, c in zip(m.info["distances"], m.hamming_cov[idx].mean(0), strict=True):
            out["ham", d] = c / hs2
    return {k: float(v) for k, v in out.items()}


_ARM_FIELDS = [f for f in fields(StrategyTerms) if f.name not in ("strategy", "rate")]
_CMP_FIELDS = [f for f in fields(Comparison) if f.name not in ("strategy", "baseline", "rate")]


def assemble(
    est: dict[tuple, Estimate], strategies: Sequence[str], K: int, B: int, rate: float | None
) -> VarianceResult:
    """The typed result from :func:`summarise`'s keys (with or without intervals)."""
    terms, comps = [], []
    for s in strategies:
        r = arm_of(s, K, rate).rate
        terms.append(StrategyTerms(s, r, *(est["arm", s, f.name] for f in _ARM_FIELDS)))
        comps.append(
            Comparison(s, baseline_of(s), r, *(est["cmp", s, f.name] for f in _CMP_FIELDS))
        )
    hamming = {k[1]: e for k, e in est.items() if k[0] == "ham"}
    return VarianceResult(K, B, terms, comps, hamming=hamming)


def bootstrap(
    m: Measurement, strategies: Sequence[str], cfg: Any, gen: torch.Generator
) -> VarianceResult:
    """Point estimates with percentile intervals from resampling sequences.

    Sequences are the independent units; draws within a sequence are not
    resampled (their noise is part of each sequence's estimate, so it is in
    the spread of the resampled means).
    """
    S = len(next(iter(m.configured.values())).mv)
    args = (strategies, cfg.views, cfg.draws, cfg.batch_size, cfg.rate)
    point = summarise(m, torch.arange(S), *args)
    samples = [
        summarise(m, torch.randint(S, (S,), generator=gen), *args, resampled=True)
        for _ in range(cfg.bootstrap)
    ]
    alpha = (1 - cfg.confidence) / 2
    q = torch.tensor([alpha, 1 - alpha], dtype=torch.float64)
    out = {}
    for key, value in point.items():
        values = torch.tensor([s[key] for s in samples], dtype=torch.float64)
        values = values[values.isfinite()]
        low, high = torch.quantile(values, q).tolist() if len(values) else (float("nan"),) * 2
        out[key] = Estimate(value, low, high)
    return assemble(out, strategies, cfg.views, cfg.batch_size, cfg.rate)
