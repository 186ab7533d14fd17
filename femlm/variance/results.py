"""What the variance analyser reports, as types: written to ``variance.json``
and ``metrics.jsonl`` here and read back here, by the report and the plots.

Torch-free, so ``femlm report`` reads results without importing torch. Files
written before this layout (flat keys such as ``"fully-explored.ratio"``)
still load; they are marked ``old_layout``, since their comparisons gave each
strategy its own V_data (docs/theory.md, section 4, says why that was wrong).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from femlm.errors import FemlmError
from femlm.masking.strategies import FULLY_EXPLORED, REGISTRY

LAYOUT = 2
T = TypeVar("T")


def baseline_of(strategy: str) -> str:
    """The one-view strategy whose single mask has the marginal distribution of one
    view of ``strategy`` (the registry's entry; a name it lacks is its own)."""
    info = REGISTRY.get(strategy)
    return info.baseline if info else strategy


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval."""

    value: float
    low: float = math.nan
    high: float = math.nan

    def show(self, spec: str = ".3g") -> str:
        """``value [low, high]``, each number formatted with ``spec`` (nan shows as nan)."""
        return f"{self.value:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"

    @classmethod
    def of(cls, data: dict[str, float] | float) -> Estimate:
        if isinstance(data, (int, float)):
            return cls(float(data))
        return cls(float(data["value"]), float(data["low"]), float(data["high"]))


_NAN = Estimate(math.nan)


@dataclass
class StrategyTerms(Generic[T]):
    """One measured masking distribution: K views of ``strategy`` at ``rate``."""

    strategy: str
    rate: float
    maskvar: T  # variance of the K-view mean over masks
    maskvar_no_replacement: T  # the same with every chosen token shown as [MASK]
    replacement_share: T
    sigma2: T  # one view's variance over masks
    C: T  # mean covariance of two views of one sequence
    v_data: T  # this arm's own estimate of V_data
    ratio: T  # maskvar / that of K independent random views at the same rate
    ratio_no_replacement: T


@dataclass
class Comparison(Generic[T]):
    """A K-view strategy against the one-view strategy of the same marginal mask
    distribution at equal compute (B sequences x K views vs B*K x 1), both sides
    with one pooled V_data, so ``step_var_ratio < 1`` exactly when
    ``v_data < break_even_v_data``."""

    strategy: str
    baseline: str
    rate: float
    v_data: T
    sigma2: T  # one view of the baseline
    step_var: T  # (v_data + maskvar_K) / B
    baseline_step_var: T  # (v_data + sigma2) / (B K)
    step_var_ratio: T
    break_even_v_data: T  # (sigma2 - K maskvar_K) / (K - 1)


@dataclass
class VarianceResult:
    """Everything ``femlm variance`` reports (``variance.json``)."""

    views: int
    batch_size: int
    strategies: list[StrategyTerms[Estimate]]
    comparisons: list[Comparison[Estimate]]
    hamming_size: int | None = None
    hamming: dict[int, Estimate] = field(default_factory=dict)  # distance -> cov / sigma2
    recommendation: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    old_layout: bool = False

    def terms(self, strategy: str) -> StrategyTerms[Estimate] | None:
        return next((t for t in self.strategies if t.strategy == strategy), None)

    def comparison(self, strategy: str) -> Comparison[Estimate] | None:
        return next((c for c in self.comparisons if c.strategy == strategy), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "layout": LAYOUT,
            "config": self.config,
            "setup": self.setup,
            "views": self.views,
            "batch_size": self.batch_size,
            "strategies": [dataclasses.asdict(t) for t in self.strategies],
            "comparisons": [dataclasses.asdict(c) for c in self.comparisons],
            "hamming": {
                "size": self.hamming_size,
                "points": [
                    {"distance": d, **dataclasses.asdict(e)} for d, e in self.hamming.items()
                ],
            },
            "recommendation": self.recommendation,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VarianceResult:
        if "estimates" in data:
            return _from_old_layout(data)
        if data.get("layout") != LAYOUT:
            raise FemlmError(f"variance.json layout {data.get('layout')!r} is not one femlm reads")
        ham = data.get("hamming") or {}
        return cls(
            views=int(data["views"]),
            batch_size=int(data["batch_size"]),
            strategies=[_typed(StrategyTerms, t) for t in data["strategies"]],
            comparisons=[_typed(Comparison, c) for c in data["comparisons"]],
            hamming_size=ham.get("size"),
            hamming={int(p["distance"]): Estimate.of(p) for p in ham.get("points", [])},
            recommendation=data.get("recommendation", ""),
            config=data.get("config", {}),
            setup=data.get("setup", {}),
        )


def _typed(kind: type, data: dict[str, Any]) -> Any:
    values = {}
    for f in dataclasses.fields(kind):
        v = data[f.name]
        values[f.name] = Estimate.of(v) if isinstance(v, dict) else v
    return kind(**values)


def _from_old_layout(data: dict[str, Any]) -> VarianceResult:
    """A ``variance.json`` of flat keys (``"fully-explored.ratio"``): every strategy
    was compared with standard masking using random's V_data and sigma2."""
    est = {k: Estimate.of(v) for k, v in data["estimates"].items()}
    cfg = data.get("config", {})
    K, B = int(cfg.get("views", 7)), int(cfg.get("batch_size", 8))
    strategies, comparisons = [], []
    for s in data["strategies"]:
        rate = 1 / K if s in FULLY_EXPLORED else float(cfg.get("rate", 0.15))
        names = [f.name for f in dataclasses.fields(StrategyTerms)][2:]
        strategies.append(StrategyTerms(s, rate, *(est.get(f"{s}.{n}", _NAN) for n in names)))
        comparisons.append(
            Comparison(
                s, "random", float(cfg.get("rate", 0.15)), est["v_data"], est["sigma2"],
                est[f"{s}.step_var"], est["standard.step_var"],
                est[f"{s}.step_var_vs_standard"], est.get(f"{s}.break_even_v_data", _NAN),
            )
        )  # fmt: skip
    setup = data.get("setup", {})
    hamming = {int(d): est[f"hamming.d{d}"] for d in setup.get("distances", [])}
    return VarianceResult(
        K, B, strategies, comparisons, setup.get("hamming_size"), hamming,
        data.get("recommendation", ""), cfg, setup, old_layout=True,
    )  # fmt: skip


@dataclass
class ProbeTerms:
    """Point estimates of the in-training probe (``--variance-every``): fully-explored
    against K independent random views and against one random view, rate 1/K."""

    views: int
    ratio: float  # FE / random-K mask variance
    ratio_no_replacement: float
    v_data: float  # pooled
    sigma2: float
    step_var_ratio: float  # FE / standard (B*K sequences x 1 view) step variance
    break_even_v_data: float

    PREFIX = "variance_"

    def to_row(self) -> dict[str, float]:
        """Flat ``metrics.jsonl`` / TensorBoard scalars."""
        return {self.PREFIX + k: float(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ProbeTerms | None:
        """The terms in a metrics row, None when it holds none; rows written before
        this layout had ``fully-explored.ratio`` and ``v_data`` only."""
        if cls.PREFIX + "ratio" in row:
            names = [f.name for f in dataclasses.fields(cls)]
            return cls(**{n: row.get(cls.PREFIX + n, math.nan) for n in names})
        if "fully-explored.ratio" in row:
            nan = math.nan
            return cls(0, row["fully-explored.ratio"], nan, row.get("v_data", nan), nan, nan, nan)
        return None
