"""Statistics of the report: means and spreads over seeds, steps to a target
loss, and the verdict rule that every comparison uses."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

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


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (p > 0.5) of Student's t with ``df`` degrees of freedom, by
    bisection on its CDF, which is exact through the regularized incomplete beta."""
    if not (0.5 < p < 1 and df > 0):
        raise ValueError(f"t_quantile needs 0.5 < p < 1 and df > 0, got {p}, {df}")
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < p:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def _t_cdf(t: float, df: float) -> float:
    """P(T <= t) for t >= 0."""
    return 1 - 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b), by its continued fraction (modified Lentz),
    on the side of x where the fraction converges fast."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):
        return 1 - _betainc(b, a, 1 - x)
    log_front = a * math.log(x) + b * math.log(1 - x) - math.log(a)
    log_front += math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return math.exp(log_front) * f


CONFIDENCE = 0.95


@dataclass(frozen=True)
class Verdict:
    """The verdict rule: a two-sided 95% t interval for mean(a) - mean(b). Paired over
    the seeds both ran (a seed fixes initial weights and data order), t with n - 1
    degrees of freedom; Welch (Welch-Satterthwaite df) when fewer than 2 seeds are
    shared. A difference counts when the interval excludes 0."""

    kind: str  # "paired" or "Welch"
    diff: float
    half: float  # half-width of the interval
    df: float
    n: int  # paired: shared seeds; Welch: seeds of a + seeds of b
    lower: int | None = None  # paired: seeds where a is lower

    @classmethod
    def paired(
        cls, mean: float, sd: float, n: int, lower: int | None, confidence: float = CONFIDENCE
    ) -> Verdict:
        if n < 2:
            return cls("paired", mean, math.nan, 0, n, lower)
        half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
        return cls("paired", mean, half, n - 1, n, lower)

    @classmethod
    def welch(cls, ma: float, sa: float, na: int, mb: float, sb: float, nb: int) -> Verdict:
        if min(na, nb) < 2:
            return cls("Welch", ma - mb, math.nan, 0, na + nb)
        va, vb = sa**2 / na, sb**2 / nb
        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)) if se > 0 else na + nb - 2
        half = t_quantile(0.5 + CONFIDENCE / 2, df) * se
        return cls("Welch", ma - mb, half, df, na + nb)

    @property
    def outcome(self) -> str:
        """'lower', 'higher' or 'tie' for a against b."""
        if math.isnan(self.half) or abs(self.diff) <= self.half:
            return "tie"
        return "lower" if self.diff < 0 else "higher"

    def text(self) -> str:
        if math.isnan(self.half):
            return f"{self.diff:+.4f} (fewer than 2 seeds: no noise estimate)"
        what = f"{self.diff:+.4f} ± {self.half:.4f} ({self.kind} t, {self.df:.3g} df)"
        if self.lower is None:
            return f"{what}, seeds not paired"
        return f"{what}, lower in {self.lower} of {self.n}"


def t_test(a: dict[int, float], b: dict[int, float], confidence: float = CONFIDENCE) -> Verdict:
    """The rule on per-seed values ``{seed: value}``: paired over shared seeds when at
    least 2 are shared, else Welch on all (``confidence`` other than 0.95: paired only,
    e.g. a Bonferroni-corrected interval)."""
    shared = [s for s in a if s in b]
    if len(shared) >= 2:
        diffs = [a[s] - b[s] for s in shared]
        m, sd = mean_std(diffs)
        return Verdict.paired(m, sd, len(diffs), sum(d < 0 for d in diffs), confidence)
    (ma, sa), (mb, sb) = mean_std(list(a.values())), mean_std(list(b.values()))
    return Verdict.welch(ma, sa, len(a), mb, sb, len(b))


def compare(a: dict[int, float], b: dict[int, float]) -> str:
    """'lower', 'higher' or 'tie' for a against b under :class:`Verdict`'s rule."""
    return t_test(a, b).outcome


def finals(runs: list[Run]) -> dict[int, float]:
    return {r.seed: r.final for r in runs}


RULE = (
    "Verdict rule: a difference counts when the 95% t interval of the mean difference excludes "
    "0: paired by seed over the seeds both ran (t with n-1 degrees of freedom), Welch where "
    "fewer than 2 seeds are shared."
)
VERDICTS = {"lower": "lower (better)", "higher": "higher (worse)", "tie": "tie within noise"}


# Keyed by ``compare`` with FE first and lower meaning better.
CLAIM_VERDICTS = {
    "lower": "reproduced",
    "higher": "not reproduced (FE worse)",
    "tie": "inconclusive at this scale",
}
