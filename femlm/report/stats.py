"""Statistics of the report: means and spreads over seeds, steps to a target
loss, and the verdict rule that every comparison uses."""

from __future__ import annotations

import math
import statistics

from femlm.report.runs import Run


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float], digits: int = 3) -> str:
    m, s = mean_std(values)
    if len(values) == 1:  # one seed: no spread to show
        return f"{m:.{digits}f} (n=1)"
    return f"{m:.{digits}f} ± {s:.{digits}f} (n={len(values)})"


def steps_to_reach(evals: list[tuple[int, float, float]], target: float) -> float | None:
    """First step where the eval loss reaches ``target`` (linear between evaluations)."""
    prev: tuple[int, float] | None = None
    for step, loss, _ in evals:
        if loss <= target:
            if prev is None:
                return float(step)
            s0, l0 = prev
            return s0 + (l0 - target) / max(l0 - loss, 1e-12) * (step - s0)
        prev = (step, loss)
    return None


def two_se(a: list[float], b: list[float]) -> float:
    """Twice the standard error of mean(a) - mean(b): the smallest gap that counts."""
    (_, sa), (_, sb) = mean_std(a), mean_std(b)
    return 2 * math.sqrt(sa**2 / max(len(a), 1) + sb**2 / max(len(b), 1))


def compare(a: list[float], b: list[float]) -> str:
    """'lower', 'higher' or 'tie' for mean(a) vs mean(b) under the 2-standard-error rule."""
    ma, mb = mean_std(a)[0], mean_std(b)[0]
    if abs(ma - mb) <= two_se(a, b) or len(a) < 2 or len(b) < 2:
        return "tie"
    return "lower" if ma < mb else "higher"


VERDICTS = {"lower": "lower (better)", "higher": "higher (worse)", "tie": "tie within noise"}


def paired(a: list[Run], b: list[Run]) -> str:
    """Per-seed differences of final losses over the seeds both ran (a seed fixes the
    initial weights, so pairing removes that part of the spread): mean, 2 SE, wins."""
    finals = {r.seed: r.final for r in b}
    diffs = [r.final - finals[r.seed] for r in a if r.seed in finals]
    if len(diffs) < 2:
        return "n/a (fewer than 2 shared seeds)"
    m, s = mean_std(diffs)
    lower = sum(d < 0 for d in diffs)
    return f"{m:+.4f} ± {2 * s / math.sqrt(len(diffs)):.4f}, lower in {lower} of {len(diffs)}"


# Keyed by ``compare`` with FE first and lower meaning better.
CLAIM_VERDICTS = {
    "lower": "reproduced",
    "higher": "not reproduced (FE worse)",
    "tie": "inconclusive at this scale",
}
