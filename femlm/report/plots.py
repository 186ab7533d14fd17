"""PNG plots of ``femlm report``; matplotlib is imported only when plotting.

Loss curves, variance during training, and the ablation plots: final loss per
variant, and final loss against the number of views K of fully-explored masking.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from femlm.masking.strategies import MaskingSpec
from femlm.report.pairs import counterparts
from femlm.report.runs import Run, variant_spec
from femlm.report.stats import mean_std


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    plt = pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(variants: dict[str, list[Run]], out: Path, x: str) -> Path:
    """Validation loss vs steps (or training seconds), mean with a min-max band over seeds."""
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    col = 0 if x == "steps" else 2
    unigram = None
    for name, runs in variants.items():
        n = min(len(r.evals) for r in runs)
        xs = [statistics.fmean(r.evals[i][col] for r in runs) for i in range(n)]
        ys = [[r.evals[i][1] for r in runs] for i in range(n)]
        ax.plot(
            xs,
            [statistics.fmean(y) for y in ys],
            label=f"{name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})",
        )
        ax.fill_between(xs, [min(y) for y in ys], [max(y) for y in ys], alpha=0.2)
        unigram = unigram or next((r.unigram for r in runs if r.unigram), None)
    if unigram:
        ax.axhline(unigram, color="grey", linestyle="--", label=f"unigram baseline {unigram:.2f}")
    ax.set_xlabel("optimizer step" if x == "steps" else "training seconds")
    ax.set_ylabel("validation loss (fixed masks)")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, out / f"val_loss_vs_{x}.png")


def plot_variance_steps(variants: dict[str, list[Run]], out: Path) -> Path | None:
    """FE / random-K mask-variance ratio and V_data against steps (``--variance-every``)."""
    if not any(r.variance_steps for runs in variants.values() for r in runs):
        return None
    fig, axes = pyplot().subplots(1, 2, figsize=(10, 4))
    for name, runs in variants.items():
        for i, r in enumerate(x for x in runs if x.variance_steps):
            steps = [step for step, _ in r.variance_steps]
            label = name if i == 0 else None
            color = f"C{list(variants).index(name)}"
            ratios = [t.ratio for _, t in r.variance_steps]
            axes[0].plot(steps, ratios, color=color, label=label)
            v_data = [t.v_data for _, t in r.variance_steps]
            axes[1].plot(steps, v_data, color=color, label=label)
    axes[0].set_ylabel("FE / random-K mask variance")
    axes[1].set_ylabel("V_data")
    for ax in axes:
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, out / "variance_vs_steps.png")


def plot_final_loss(variants: dict[str, list[Run]], baseline: str, out: Path) -> Path:
    """Mean final validation loss per variant (± std), every seed as a dot, baseline dashed."""
    fig, ax = pyplot().subplots(figsize=(max(6.0, 0.8 * len(variants) + 2), 4.5))
    for i, runs in enumerate(variants.values()):
        finals = [r.final for r in runs]
        mean, std = mean_std(finals)
        ax.errorbar([i], [mean], yerr=[std], fmt="o", color="C0", capsize=4, markersize=7)
        # Seeds sit slightly right of the mean so the error bar stays readable.
        ax.scatter([i + 0.15] * len(finals), finals, s=10, color="black", alpha=0.6, zorder=3)
    base = mean_std([r.final for r in variants[baseline]])[0]
    ax.axhline(base, color="grey", linestyle="--", label=f"baseline {baseline} mean {base:.3f}")
    ax.set_xticks(range(len(variants)), list(variants), rotation=30, ha="right")
    ax.set_ylabel("final validation loss (fixed masks)")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, out / "final_loss_by_variant.png")


def fe_views(spec: MaskingSpec) -> int | None:
    """K of a plain fully-explored variant with the default replacement, else None."""
    if spec.strategy != "fully-explored":
        return None
    default = MaskingSpec.resolve("fully-explored")
    if not (
        math.isclose(spec.mask_prob, default.mask_prob)
        and math.isclose(spec.random_prob, default.random_prob)
    ):
        return None
    return spec.views


def standard_at_views(
    cfg: dict[str, Any], variants: dict[str, list[Run]], views: dict[str, int]
) -> dict[str, int]:
    """``{variant: K}`` for standard masking (random, one view) that the report's fair
    pairs (:func:`femlm.report.pairs.counterparts`: same settings outside the masking,
    same share masked) match with a variant of the K plot ``views``."""
    found = {}
    for fe, other in counterparts(cfg, variants):
        if fe in views and variant_spec(cfg, other).is_standard:
            found[other] = views[fe]
    return found


def views_ablation(cfg: dict[str, Any], variants: dict[str, list[Run]]) -> dict[str, int]:
    """``{variant: K}`` for the K plot, or {} unless at least two different K were run."""
    configured = cfg.get("runs") or {}  # a folder on disk the config no longer names has no K
    found = {}
    for name in variants:
        k = fe_views(variant_spec(cfg, name)) if name in configured else None
        if k is not None:
            found[name] = k
    return found if len(set(found.values())) >= 2 else {}


def plot_loss_vs_views(
    variants: dict[str, list[Run]],
    baseline: str,
    views: dict[str, int],
    out: Path,
    matched: dict[str, int] | None = None,
) -> Path:
    """Final validation loss (mean ± std over seeds) against K, the baseline as a band,
    and standard masking at rate 1/K (``matched``) as a second line when it was run."""
    fig, ax = pyplot().subplots(figsize=(6.5, 4.5))
    ks: list[int] = []
    for series, label in ((views, "fully-explored, rate 1/K"), (matched or {}, "standard masking, rate 1/K")):  # fmt: skip
        if not series:
            continue
        points = sorted((k, name, mean_std([r.final for r in variants[name]])) for name, k in series.items())  # fmt: skip
        ks += [k for k, _, _ in points]
        ax.errorbar([k for k, _, _ in points], [m for _, _, (m, _) in points],
                    yerr=[s for _, _, (_, s) in points], fmt="o-", capsize=4, label=label)  # fmt: skip
        for k, name, (mean, _) in points:
            ax.annotate(name, (k, mean), textcoords="offset points", xytext=(6, 4), fontsize=8)
    mean, std = mean_std([r.final for r in variants[baseline]])
    ax.axhspan(mean - std, mean + std, color="grey", alpha=0.2)
    ax.axhline(mean, color="grey", linestyle="--", label=f"baseline {baseline} (mean ± std)")
    ax.set_xticks(sorted(set(ks)))
    ax.set_xlabel("views K")
    ax.set_ylabel("final validation loss (fixed masks)")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, out / "final_loss_vs_views.png")


def ablation_section(
    variants: dict[str, list[Run]], baseline: str, cfg: dict[str, Any], out: Path
) -> list[str]:
    """The report's "Ablations" lines: each plot that applies, with what it shows."""
    by_variant = plot_final_loss(variants, baseline, out)
    lines = [
        "Final validation loss of each variant: the mean over seeds with a ±1 std error bar, "
        f"each seed as a small dot, and the baseline `{baseline}`'s mean as a dashed line.",
        "",
        f"![final loss by variant]({by_variant.name})",
        "",
    ]
    views = views_ablation(cfg, variants)
    if views:
        matched = standard_at_views(cfg, variants, views)
        path = plot_loss_vs_views(variants, baseline, views, out, matched)
        lines += [
            "Final validation loss (mean ± std over seeds) of the fully-explored variants with "
            "the default 80/10/10 replacement against their number of views K"
            + (", standard masking at rate 1/K beside them" if matched else "")
            + f", and the baseline `{baseline}`'s mean ± std as a grey band.",
            "",
            f"![final loss vs views]({path.name})",
            "",
        ]
    return lines
