"""The analyser's estimators: pure arithmetic on sums of gradients, no model.

Kept apart from :mod:`femlm.variance.analyser` so the known-answer test can feed them
gradients drawn from a known covariance. Notation (docs/theory.md): R draws
of K views per sequence, ``T`` = sum of all R*K view gradients, ``A`` = sum
of their squared norms, ``D`` = sum over draws of the squared norm of the
draw's K-view sum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


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


def summarise(
    parts: dict[Any, Any],
    idx: Tensor,
    strategies: Sequence[str],
    K: int,
    R: int,
    B: int,
    resampled: bool = False,
) -> dict[str, float]:
    """Every reported number for the sequences ``idx`` (all of them, or a bootstrap resample)."""
    out: dict[str, float] = {}
    for s in strategies:
        cfg, bare = parts[s, "configured"], parts[s, "mask_only"]
        mv, mv1 = cfg["mv"][idx].mean(), bare["mv"][idx].mean()
        s2, vd = cfg["s2"][idx].mean(), v_data(cfg["gram"], cfg["mv"], idx, R, resampled)
        out |= {
            f"{s}.maskvar": mv, f"{s}.maskvar_no_replacement": mv1,
            f"{s}.replacement_share": (mv - mv1) / mv, f"{s}.sigma2": s2,
            f"{s}.C": (mv - s2 / K) / (1 - 1 / K), f"{s}.v_data": vd, f"{s}.step_var": (vd + mv) / B,
        }  # fmt: skip
    vd, s2 = out["random.v_data"], out["random.sigma2"]
    out |= {"v_data": vd, "sigma2": s2, "standard.step_var": (vd + s2) / (B * K)}
    out["random.maskvar_times_K_over_sigma2"] = out["random.maskvar"] * K / s2
    for s in strategies:
        out[f"{s}.ratio"] = out[f"{s}.maskvar"] / out["random.maskvar"]
        out[f"{s}.ratio_no_replacement"] = (
            out[f"{s}.maskvar_no_replacement"] / out["random.maskvar_no_replacement"]
        )
        out[f"{s}.step_var_vs_standard"] = out[f"{s}.step_var"] / out["standard.step_var"]
        # FE-type strategy beats standard iff V_data < (sigma2 - K * maskvar) / (K - 1).
        out[f"{s}.break_even_v_data"] = (s2 - K * out[f"{s}.maskvar"]) / (K - 1)
    if "hamming" in parts:
        h = parts["hamming"]
        hs2 = h["s2"][idx].mean()
        out["hamming.sigma2"] = hs2
        for d, c in zip(parts["info"]["distances"], h["cov"][idx].mean(0), strict=True):
            out[f"hamming.d{d}"] = c / hs2
    return {k: float(v) for k, v in out.items()}


def bootstrap(
    parts: dict[Any, Any], strategies: Sequence[str], cfg: Any, gen: torch.Generator
) -> dict[str, dict[str, float]]:
    """Point estimates with percentile intervals from resampling sequences.

    Sequences are the independent units; draws within a sequence are not
    resampled (their noise is part of each sequence's estimate, so it is in
    the spread of the resampled means).
    """
    S = len(parts["random", "configured"]["mv"])
    args = (strategies, cfg.views, cfg.draws, cfg.batch_size)
    point = summarise(parts, torch.arange(S), *args)
    samples = [
        summarise(parts, torch.randint(S, (S,), generator=gen), *args, resampled=True)
        for _ in range(cfg.bootstrap)
    ]
    alpha = (1 - cfg.confidence) / 2
    out = {}
    for key, value in point.items():
        values = torch.tensor([s[key] for s in samples], dtype=torch.float64)
        values = values[values.isfinite()]
        low, high = (
            torch.quantile(values, torch.tensor([alpha, 1 - alpha], dtype=torch.float64)).tolist()
            if len(values)
            else (float("nan"),) * 2
        )
        out[key] = {"value": value, "low": low, "high": high}
    return out


def recommendation(
    est: dict[str, dict[str, float]], strategies: Sequence[str], K: int, B: int
) -> str:
    """Which strategy has the lowest implied step variance at equal compute, and why."""
    steps = {s: est[f"{s}.step_var"]["value"] for s in strategies}
    steps[f"standard random (B*K={B * K} sequences x 1 view)"] = est["standard.step_var"]["value"]
    best = min(steps, key=steps.get)
    vd, s2 = est["v_data"]["value"], est["sigma2"]["value"]
    fe = est["fully-explored.break_even_v_data"]["value"]
    if best.startswith("standard"):
        why = (
            f"V_data ({vd:.3g}) is large next to the mask variance: standard masking divides it by "
            f"B*K distinct sequences, K-view strategies only by B. Fully-explored would win only "
            f"below V_data = {fe:.3g}; prefer it when distinct sequences are scarce (small corpus, many epochs)"
        )
    else:
        rel = est[f"{best}.step_var_vs_standard"]
        sure = "clearly" if rel["high"] < 1 else "but its interval overlaps standard's"
        why = (
            f"its disjoint masks cut the mask variance and V_data ({vd:.3g}) is below the break-even "
            f"{est[f'{best}.break_even_v_data']['value']:.3g} (sigma2 = {s2:.3g}); step variance "
            f"{rel['value']:.2f}x standard's, {sure}"
        )
    return f"lowest step variance at equal compute (B={B}, K={K}): {best}, because {why}."


def _ci(e: dict[str, float], digits: int = 3) -> str:
    def fmt(x: float) -> str:
        return "nan" if math.isnan(x) else f"{x:.{digits}g}"

    return f"{fmt(e['value'])} [{fmt(e['low'])}, {fmt(e['high'])}]"


def format_table(result: dict[str, Any]) -> str:
    """A short table; the last line is the fully-explored / random mask-variance ratio."""
    est, K = result["estimates"], result["config"]["views"]
    cols = ("mask var (K-view mean)", "/ random", "/ random, all [MASK]", "replacement share")
    cols += ("step var", "/ standard")
    lines = [f"{'strategy':<20}" + " ".join(f"{c:<29}" for c in cols).rstrip()]
    for s in result["strategies"]:
        keys = ("maskvar", "ratio", "ratio_no_replacement", "replacement_share", "step_var")
        keys += ("step_var_vs_standard",)
        lines.append(f"{s:<20}" + " ".join(f"{_ci(est[f'{s}.{k}']):<29}" for k in keys).rstrip())
    lines.append(
        f"V_data {_ci(est['v_data'])}   sigma2 {_ci(est['sigma2'])}   standard step var {_ci(est['standard.step_var'])}"
    )
    dist = result["setup"]["distances"]
    curve = ", ".join(f"{d}: {est[f'hamming.d{d}']['value']:.2f}" for d in dist)
    lines.append(
        f"covariance / sigma2 by Hamming distance (m={result['setup']['hamming_size']}): {curve}"
    )
    lines.append(result["recommendation"])
    lines.append(
        f"fully-explored / random mask-variance ratio (K={K}): {_ci(est['fully-explored.ratio'])}"
    )
    return "\n".join(lines)
