"""The variance result in words: the recommendation and the terminal table.

Torch-free, like :mod:`femlm.variance.results`, so the report can print a
run's table without importing torch.
"""

from __future__ import annotations

import math

from femlm.masking.strategies import FULLY_EXPLORED
from femlm.variance.results import Comparison, Estimate, VarianceResult


def _sure(ratio: Estimate, lower: bool) -> str:
    if lower:
        return "beyond its interval" if ratio.high < 1 else "but its interval reaches 1"
    return "beyond its interval" if ratio.low > 1 else "but its interval reaches 1"


def _baseline_label(c: Comparison, B: int, K: int) -> str:
    return f"{c.baseline} (B*K={B * K} sequences x 1 view, rate {c.rate:.3g})"


def recommendation(result: VarianceResult) -> str:
    """Which masking has the lowest implied step variance at equal compute, and what
    made it lowest: disjoint views, many distinct sequences, or (for independent
    views) the strategy's own mask distribution."""
    B, K = result.batch_size, result.views
    steps: dict[str, tuple[float, Comparison, bool]] = {}
    for c in result.comparisons:
        steps[c.strategy] = (c.step_var.value, c, False)
        steps.setdefault(_baseline_label(c, B, K), (c.baseline_step_var.value, c, True))
    best = min(steps, key=lambda k: steps[k][0])
    _, c, is_baseline = steps[best]
    v = c.v_data.value
    if is_baseline:
        beaten = [x for x in result.comparisons if x.baseline == c.baseline and x.rate == c.rate]
        evens = ", ".join(f"{x.strategy} {x.break_even_v_data.value:.3g}" for x in beaten)
        why = (
            f"the pooled V_data ({v:.3g}) is above the break-even V_data of every K-view strategy "
            f"of the same marginal mask distribution ({evens}): B*K distinct sequences divide "
            f"V_data by B*K, K views of B sequences only by B, and the K-view strategies' lower "
            f"mask variance does not make up for it; a K-view strategy can pay off only where "
            f"distinct sequences are scarce (small corpus, many epochs). Where each sequence "
            f"is seen for more than K epochs, fully-explored-epochs keeps this one-view step "
            f"and spreads fully-explored's K groups over a K-epoch cycle"
        )
    else:
        terms = result.terms(c.strategy)
        ratio = terms.ratio.value if terms else math.nan
        if c.strategy in FULLY_EXPLORED:
            how = (
                f"its K views are disjoint, which cuts the mask variance of the K-view mean to "
                f"{ratio:.2f}x that of K independent random views, and the pooled V_data "
                f"({v:.3g}) is below its break-even {c.break_even_v_data.value:.3g}"
            )
        else:
            how = (
                f"of its own mask distribution (one view's variance {c.sigma2.value:.3g}, V_data "
                f"{v:.3g}), not of how its views are drawn together: its K views are independent "
                f"(mask variance {ratio:.2f}x that of independent random views)"
            )
        r = c.step_var_ratio
        why = (
            f"{how}; step variance {r.value:.2f}x that of {c.baseline} with one view of B*K "
            f"sequences, {_sure(r, lower=True)}"
        )
    return f"lowest step variance at equal compute (B={B}, K={K}): {best}, because {why}."


def format_table(result: VarianceResult) -> str:
    """Mask-variance terms per strategy, then each K-view strategy against its one-view
    baseline; the last line is the fully-explored / random mask-variance ratio."""
    K, B = result.views, result.batch_size
    cols = ("mask var (K-view mean)", "/ random", "/ random, all [MASK]", "replacement share")
    lines = [f"{'strategy':<20}" + " ".join(f"{c:<29}" for c in cols).rstrip()]
    for t in result.strategies:
        values = (t.maskvar, t.ratio, t.ratio_no_replacement, t.replacement_share)
        lines.append(f"{t.strategy:<20}" + " ".join(f"{v.show():<29}" for v in values).rstrip())
    head = ("vs one view of", "V_data (pooled)", "break-even V_data", "step var", "/ baseline's")
    lines += ["", f"equal compute, B={B} sequences x K={K} views vs B*K={B * K} x 1:"]
    lines.append(f"{'strategy':<20}{head[0]:<22}" + " ".join(f"{h:<29}" for h in head[1:]).rstrip())
    for c in result.comparisons:
        base = f"{c.baseline} at {c.rate:.3g}"
        values = (c.v_data, c.break_even_v_data, c.step_var, c.step_var_ratio)
        lines.append(
            f"{c.strategy:<20}{base:<22}" + " ".join(f"{v.show():<29}" for v in values).rstrip()
        )
    if result.old_layout:
        lines.append(
            "(measured before the pooled V_data rule: V_data and sigma2 are random's, the "
            "K-view step variances used each strategy's own V_data)"
        )
    if result.hamming:
        curve = ", ".join(f"{d}: {e.value:.2f}" for d, e in result.hamming.items())
        lines.append(f"covariance / sigma2 by Hamming distance (m={result.hamming_size}): {curve}")
    lines.append(result.recommendation)
    fe = result.terms("fully-explored")
    if fe is not None:
        lines.append(across_epochs_line(fe.ratio, K))
        lines.append(f"fully-explored / random mask-variance ratio (K={K}): {fe.ratio.show()}")
    return "\n".join(lines)


def across_epochs_line(ratio: Estimate, K: int) -> str:
    """What the probe says of fully-explored-epochs: at fixed parameters one cycle of
    its K epochs sums one sequence's gradient over the K groups of one partition,
    exactly fully-explored's K views, while each step is standard masking."""
    return (
        f"fully-explored-epochs (K={K}): each step is standard masking (one view at rate "
        f"1/K), so its step variance is standard's; over a K-epoch cycle, at fixed "
        f"parameters, one sequence's summed gradient has {ratio.show()} of the mask "
        f"variance of K independent epochs (the ratio below; training moves the "
        f"parameters between epochs, so this is its idealisation)"
    )
