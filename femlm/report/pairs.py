"""Fair pairs for ``femlm report``: each fully-explored variant (within a step or
across epochs) against the
variants of the same experiment that differ from it only in how masks are
drawn (strategy, views, how the step's rows split into sequences x views) and
mask the same share of tokens. So `fe-allmask` meets `standard-allmask`, not
the 80/10/10 `standard`, and `fe-K2` meets `standard-r50`."""

from __future__ import annotations

from typing import Any

from femlm.masking.strategies import ACROSS_EPOCHS, FULLY_EXPLORED, resolve_views_rate
from femlm.report.runs import Run, variant_settings
from femlm.report.stats import VERDICTS, finals, fmt, mean_std, t_test

# Settings that describe the masking pattern and the split of a step's rows.
_MASKING = {"strategy", "views", "rate", "batch_size", "seeds"}
# Settings that leave the trained model's loss unchanged: what is logged or saved and
# when, where it runs, and how a step is split into micro-batches.
_UNTRAINED = {
    *("variance_every", "variance_sequences", "log_every", "save_every", "keep_last"),
    *("out_dir", "progress", "threads", "device", "compile", "grad_accum"),
}
_IGNORED = _MASKING | _UNTRAINED
_RATE_TOLERANCE = 0.01  # fully-explored with rate 0.15 masks 1/7 = 0.143
_PARTITIONED = FULLY_EXPLORED + ACROSS_EPOCHS


def _rate(values: dict[str, Any]) -> float:
    _, rate = resolve_views_rate(
        values.get("strategy", "fully-explored"), values.get("views"), values.get("rate")
    )
    # A fully-explored variant given a rate is meant to match that rate.
    return float(values["rate"]) if values.get("rate") is not None else rate


def same_training(cfg: dict[str, Any], a: str, b: str) -> bool:
    """Whether variants ``a`` and ``b`` differ only in how masks are drawn and
    mask the same share of tokens."""
    x, y = variant_settings(cfg, a), variant_settings(cfg, b)
    if {k: v for k, v in x.items() if k not in _IGNORED} != {
        k: v for k, v in y.items() if k not in _IGNORED
    }:
        return False
    return abs(_rate(x) - _rate(y)) <= _RATE_TOLERANCE


def _partitioned(cfg: dict[str, Any], name: str) -> bool:
    return variant_settings(cfg, name).get("strategy", "fully-explored") in _PARTITIONED


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
