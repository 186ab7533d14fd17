"""PNG plots of the variance analysis; matplotlib is imported only when plotting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from femlm.variance.results import Estimate, VarianceResult


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _errors(estimates: list[Estimate]) -> tuple[list[float], list[list[float]]]:
    values = [e.value for e in estimates]
    low = [max(0.0, e.value - e.low) for e in estimates]
    high = [max(0.0, e.high - e.value) for e in estimates]
    return values, [low, high]


def plot_variance(result: VarianceResult, path: str | Path) -> None:
    """Mask variance by strategy (with and without replacement), and each K-view
    strategy's step variance beside its one-view baseline's."""
    plt = pyplot()
    names = [t.strategy for t in result.strategies]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    x = list(range(len(names)))
    for shift, label, values in (
        (-0.2, "80/10/10 replacement", [t.maskvar for t in result.strategies]),
        (0.2, "all [MASK]", [t.maskvar_no_replacement for t in result.strategies]),
    ):
        heights, err = _errors(values)
        left.bar([i + shift for i in x], heights, 0.4, yerr=err, capsize=3, label=label)
    left.set_xticks(x, names, rotation=20, ha="right")
    left.set_ylabel("mask variance of the K-view mean")
    left.legend()
    x = list(range(len(result.comparisons)))
    for shift, label, values in (
        (-0.2, "K views of B sequences", [c.step_var for c in result.comparisons]),
        (0.2, "one view of B*K (baseline)", [c.baseline_step_var for c in result.comparisons]),
    ):
        heights, err = _errors(values)
        right.bar([i + shift for i in x], heights, 0.4, yerr=err, capsize=3, label=label)
    ticks = [f"{c.strategy}\nvs {c.baseline}" for c in result.comparisons]
    right.set_xticks(x, ticks, rotation=20, ha="right")
    right.set_ylabel("implied step variance, equal compute")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_hamming(result: VarianceResult, path: str | Path) -> None:
    """Normalised covariance of two views' centred gradients vs their Hamming distance."""
    plt = pyplot()
    dist = list(result.hamming)
    values, err = _errors(list(result.hamming.values()))
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.errorbar(dist, values, yerr=err, marker="o", capsize=3)
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set_xlabel(f"Hamming distance between masks (size m = {result.hamming_size})")
    ax.set_ylabel("covariance / sigma2")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
