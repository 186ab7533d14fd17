"""Fair pairs for ``femlm report``: each fully-explored variant (within a step or
across epochs) against the
variants of the same experiment that differ from it only in how masks are
drawn (strategy, views, how the step's rows split into sequences x views) and
mask the same share of tokens. So `fe-allmask` meets `standard-allmask`, not
the 80/10/10 `standard`, and `fe-K2` meets `standard-r50`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from femlm.config import TrainConfig
from femlm.masking.strategies import FULLY_EXPLORED, PARTITIONED
from femlm.report.runs import Run, variant_config
from femlm.report.stats import VERDICTS, finals, fmt, mean_std, t_test
from femlm.schema import to_dict, training_invariant

# Settings that describe the masking pattern and the split of a step's rows; and the
# settings marked affects_training=False, which leave the trained model as it is.
_MASKING = {"strategy", "views", "rate", "batch_size"}
NOT_COMPARED = _MASKING | training_invariant(TrainConfig)
_RATE_TOLERANCE = 0.01  # fully-explored with rate 0.15 masks 1/7 = 0.143


def _rate(cfg: TrainConfig) -> float:
    # A fully-explored variant given a rate is meant to match that rate.
    return float(cfg.rate) if cfg.rate is not None else cfg.masking.rate


def same_training(config: dict[str, Any], a: str, b: str) -> bool:
    """Whether variants ``a`` and ``b`` differ only in how masks are drawn and
    mask the same share of tokens."""
    x, y = variant_config(config, a), variant_config(config, b)
    kept = [{k: v for k, v in to_dict(c).items() if k not in NOT_COMPARED} for c in (x, y)]
    return kept[0] == kept[1] and abs(_rate(x) - _rate(y)) <= _RATE_TOLERANCE


def _partitioned(config: dict[str, Any], name: str) -> bool:
    return variant_config(config, name).strategy in PARTITIONED


@dataclass(frozen=True)
class Roles:
    """Which variants the paper's claims are about, read from their settings: the
    within-step fully-explored variant trained as the baseline is (else the first),
    and independent random views of the same rows as that variant (random-K)."""

    fe: str | None
    random_k: str | None


def roles(config: dict[str, Any], variants: dict[str, list[Run]], baseline: str) -> Roles:
    configured = config.get("runs") or {}
    names = [n for n in variants if n in configured]
    within = [n for n in names if variant_config(config, n).strategy in FULLY_EXPLORED]
    paired = [n for n in within if baseline in configured and same_training(config, n, baseline)]
    fe = (paired or within or [None])[0]
    independent = [
        n for n in names
        if fe is not None and (c := variant_config(config, n)).strategy == "random"
        and c.masking.views > 1 and same_training(config, fe, n)
    ]  # fmt: skip
    return Roles(fe, independent[0] if independent else None)


def counterparts(cfg: dict[str, Any], variants: dict[str, list[Run]]) -> list[tuple[str, str]]:
    """``(fe_variant, other)`` for every fully-explored variant and every
    non-fully-explored variant that matches it outside the masking settings."""
    names = [n for n in variants if n in (cfg.get("runs") or {})]
    return [
        (fe, other)
        for fe in names
        if _partitioned(cfg, fe)
        for other in names
        if not _partitioned(cfg, other) and same_training(cfg, fe, other)
    ]


def pairs_section(cfg: dict[str, Any], variants: dict[str, list[Run]]) -> list[str]:
    """One row per fair pair: the difference of mean final losses, its verdict,
    and the same difference paired by seed."""
    pairs = counterparts(cfg, variants)
    if not pairs:
        return ["No fully-explored variant has a counterpart here."]
    lines = [
        "Each fully-explored variant against every variant that differs from it only in "
        "the masking (strategy, views, sequences x views per step) and masks the same share "
        "of tokens:",
        "",
        "| FE variant | final val loss | against | its final val loss | FE minus it "
        "| difference ± 95% interval (test), seeds lower | verdict for FE |",
        "|---|---|---|---|---|---|---|",
    ]
    for fe, other in pairs:
        a, b = finals(variants[fe]), finals(variants[other])
        t = t_test(a, b)
        va, vb = list(a.values()), list(b.values())
        lines.append(
            f"| {fe} | {fmt(va, 4)} | {other} | {fmt(vb, 4)} | "
            f"{mean_std(va)[0] - mean_std(vb)[0]:+.4f} | {t.text()} | {VERDICTS[t.outcome]} |"
        )
    return lines
