"""PNG plots of the variance analysis; matplotlib is imported only when plotting."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _errors(
    est: dict[str, dict[str, float]], keys: list[str]
) -> tuple[list[float], list[list[float]]]:
    values = [est[k]["value"] for k in keys]
    low = [max(0.0, v - est[k]["low"]) for v, k in zip(values, keys, strict=True)]
    high = [max(0.0, est[k]["high"] - v) for v, k in zip(values, keys, strict=True)]
    return values, [low, high]


def plot_variance(result: dict[str, Any], path: str | Path) -> None:
    """Mask variance by strategy (with and without replacement) and step variances."""
    plt = _pyplot()
    est, names = result["estimates"], result["strategies"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    x = list(range(len(names)))
    for shift, suffix, label in (
        (-0.2, "maskvar", "80/10/10 replacement"),
        (0.2, "maskvar_no_replacement", "all [MASK]"),
    ):
        values, err = _errors(est, [f"{s}.{suffix}" for s in names])
        left.bar([i + shift for i in x], values, 0.4, yerr=err, capsize=3, label=label)
    left.set_xticks(x, names, rotation=20, ha="right")
    left.set_ylabel("mask variance of the K-view mean")
    left.legend()
    keys = [f"{s}.step_var" for s in names] + ["standard.step_var"]
    values, err = _errors(est, keys)
    right.bar(range(len(keys)), values, yerr=err, capsize=3, color="tab:gray")
    right.set_xticks(range(len(keys)), [*names, "standard (B*K x 1)"], rotation=20, ha="right")
    right.set_ylabel("implied step variance, equal compute")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_hamming(result: dict[str, Any], path: str | Path) -> None:
    """Normalised covariance of two views' centred gradients vs their Hamming distance."""
    plt = _pyplot()
    est, dist = result["estimates"], result["setup"]["distances"]
    values, err = _errors(est, [f"hamming.d{d}" for d in dist])
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.errorbar(dist, values, yerr=err, marker="o", capsize=3)
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set_xlabel(f"Hamming distance between masks (size m = {result['setup']['hamming_size']})")
    ax.set_ylabel("covariance / sigma2")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
