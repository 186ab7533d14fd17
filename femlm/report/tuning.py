"""Tuned against tuned: each masking arm's best settings chosen on dev blocks, then
the arms' bests compared on test blocks.

An *arm* is a way of drawing masks, read from a variant's settings (never its
name): standard masking (random positions, one view of each sequence), or a
strategy's name for anything else. Within an arm, variants differ in what is
tuned (rate, schedule, learning rate). The rule (docs/protocol.md):

* choose on dev: among candidates that ran every one of the selection seeds,
  the lowest mean final dev loss wins; a tie keeps the earlier candidate;
* judge on test: best against best, paired by seed over the verdict seeds,
  on the final test loss (the mean over its draws of positions).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from femlm.masking.strategies import MaskingSpec
from femlm.report.downstream import best_downstream
from femlm.report.runs import Run, start_weights_by_seed, variant_config, variant_spec


def arm_of(spec: MaskingSpec) -> str:
    """``standard`` for one random view per sequence, else the strategy's name."""
    return "standard" if spec.is_standard else spec.strategy


def dev_by_seed(runs: list[Run]) -> dict[int, float]:
    return {r.seed: r.final for r in runs}


def test_by_seed(runs: list[Run]) -> dict[int, float]:
    return {r.seed: r.test for r in runs if r.test is not None}


def choose(
    candidates: Iterable[str], variants: dict[str, list[Run]], seeds: list[int]
) -> str | None:
    """The candidate with the lowest mean final dev loss over ``seeds``; candidates
    missing a seed are not eligible; None when none is."""
    best, best_loss = None, None
    for name in candidates:
        dev = dev_by_seed(variants.get(name, []))
        if not seeds or any(s not in dev for s in seeds):
            continue
        loss = statistics.fmean(dev[s] for s in seeds)
        if best_loss is None or loss < best_loss:
            best, best_loss = name, loss
    return best


def arms(config: dict[str, Any], names: Iterable[str]) -> dict[str, list[str]]:
    """``{arm: [variant, ...]}`` in the config's order."""
    out: dict[str, list[str]] = {}
    for name in names:
        out.setdefault(arm_of(variant_spec(config, name)), []).append(name)
    return out


def cell_of(config: dict[str, Any], name: str) -> tuple[float, str]:
    """(effective rate rounded, schedule): what a same-rate comparison holds fixed."""
    c = variant_config(config, name)
    return round(c.masking.rate, 3), c.schedule


def _seeds(config: dict[str, Any], name: str) -> list[int]:
    return list((config.get("runs") or {}).get(name, {}).get("seeds") or config.get("seeds") or [])


def configured_bests(config: dict[str, Any]) -> dict[str, str]:
    """``{arm: variant}``: each arm's best as a written grid records it, the variant that
    runs the first verdict seed (stage C of docs/protocol.md)."""
    first = (config.get("tuning") or {}).get("verdict_seeds", [None])[0]
    names = list(config.get("runs") or {})
    return {
        arm: n
        for arm, members in arms(config, names).items()
        for n in members
        if first in _seeds(config, n)
    }


def configured_cell(config: dict[str, Any], arm: str, cell: tuple[float, str]) -> str | None:
    """The arm's variant at ``cell`` (rate, schedule) that runs every selection seed: the
    learning rate a written grid chose there (stage B); None when there is none."""
    select = (config.get("tuning") or {}).get("select_seeds", [])
    members = arms(config, list(config.get("runs") or {})).get(arm, [])
    return next(
        (n for n in members
         if cell_of(config, n) == cell and all(s in _seeds(config, n) for s in select)),
        None,
    )  # fmt: skip


def _mean(values: dict[int, float], seeds: list[int]) -> float:
    return statistics.fmean(values[s] for s in seeds)


def _show(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def tuned_section(
    config: dict[str, Any], variants: dict[str, list[Run]], folder: Path | None = None
) -> list[str]:
    """The protocol's tables: every cell's dev loss, each arm's best on dev, best against
    best on test over the verdict seeds, and same rate against same rate."""
    tuning = config.get("tuning") or {}
    select, verdict = list(tuning.get("select_seeds", [])), list(tuning.get("verdict_seeds", []))
    names = [n for n in (config.get("runs") or {}) if n in variants]
    groups = arms(config, names)
    lines = [
        f"Choices on dev blocks over seeds {select}, verdicts on test blocks over seeds "
        f"{verdict} (docs/protocol.md). Losses are final hidden-token losses; a difference "
        "is the paired mean ± the half-width of its 95% t interval.",
        "",
        "| arm | variant | rate | schedule | lr | seeds run | mean dev loss, its choice seeds "
        "| mean test loss, seeds run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, members in groups.items():
        for n in members:
            c = variant_config(config, n)
            dev, test = dev_by_seed(variants[n]), test_by_seed(variants[n])
            chosen_on = [v for s, v in dev.items() if s in select or not select]
            mean_dev = statistics.fmean(chosen_on) if chosen_on else None
            mean_test = statistics.fmean(test.values()) if test else None
            lines.append(
                f"| {arm} | {n} | {c.masking.rate:.4f} | {c.schedule} | {c.lr:g} | "
                f"{len(dev)} | {_show(mean_dev)} | {_show(mean_test)} |"
            )
    best = {arm: choose(members, variants, select) for arm, members in groups.items()}
    lines += ["", starts_note([variants[n] for n in names])]
    if folder and (Path(folder) / "start-fingerprints.json").is_file():
        lines += ["", references_note(config, variants, Path(folder) / "start-fingerprints.json")]
    lines += ["", *_best_against_best(best, variants, verdict, config), ""]
    chosen = {arm: n for arm, n in best.items() if n is not None}
    if edges := edge_note(config, groups, chosen):
        lines += [edges, ""]
    n_starts = len(config.get("starts") or []) or 1
    planned = {k: (config.get(k) or {}).get("pretrain_seeds") for k in ("probe", "finetune")}
    if downstream := best_downstream(chosen, variants, folder and Path(folder), n_starts, planned):
        lines += [*downstream, ""]
    lines += _same_rate(config, groups, variants, select)
    return lines


def edge_note(config: dict[str, Any], groups: dict[str, list[str]], best: dict[str, str]) -> str:
    """Which of each best's tuned values is the largest or smallest the grid tried: the
    optimum may lie outside the grid there."""
    parts = []
    for arm, name in best.items():
        values = [variant_config(config, n) for n in groups[arm]]
        mine = variant_config(config, name)
        for what, get in (("rate", lambda c: round(c.masking.rate, 4)), ("lr", lambda c: c.lr)):
            tried = sorted({get(c) for c in values})
            if len(tried) > 1 and get(mine) in (tried[0], tried[-1]):
                end = "largest" if get(mine) == tried[-1] else "smallest"
                parts.append(f"{arm}'s {what} {get(mine):g} is the {end} the grid tried")
    if not parts:
        return ""
    return "Grid edges: " + "; ".join(parts) + " (a better value may lie outside the grid)."


def starts_note(groups: list[list[Run]]) -> str:
    """Whether every seed's runs started from bit-identical weights (a start pre-trained
    again on another CPU differs in its last bits)."""
    every = [r for runs in groups for r in runs]
    by_seed = start_weights_by_seed(every)
    unknown = sum(r.start_weights is None for r in every)
    mixed = sorted(s for s, found in by_seed.items() if len(found) > 1)
    line = (
        "Starts: every seed's runs began from bit-identical weights (fingerprints at step 0)."
        if not mixed
        else "Starts: the runs of seeds "
        + ", ".join(f"{s} ({len(by_seed[s])} different weights)" for s in mixed)
        + " began from starts pre-trained again in different sessions; their pairs carry "
        "that difference too."
    )
    return line + (f" {unknown} runs recorded no fingerprint." if unknown else "")


def references_note(config: dict[str, Any], variants: dict[str, list[Run]], path: Path) -> str:
    """Whether the references (probes and fine-tuning of the starts) were measured on the
    starts the verdict units began from (unit u begins from start u mod the number of
    starts); the references are read beside those units only, so the selection units,
    which may come from another session's starts, do not count."""
    measured = json.loads(path.read_text())
    starts = list(config.get("starts") or [])
    verdict = set((config.get("tuning") or {}).get("verdict_seeds") or [])
    differ = []
    for i, start in enumerate(starts):
        runs_fp = {
            r.start_weights
            for runs in variants.values()
            for r in runs
            if r.seed % len(starts) == i and r.start_weights and (not verdict or r.seed in verdict)
        }
        if start in measured and runs_fp and runs_fp != {measured[start]}:
            differ.append(f"start {i} ({measured[start]} against the runs' {sorted(runs_fp)})")
    if differ:
        return (
            "References: measured on starts pre-trained again elsewhere, not the runs' own: "
            + "; ".join(differ) + f" ({path.name})."
        )  # fmt: skip
    return f"References: measured on the runs' own starts (fingerprints in {path.name})."


def _best_against_best(
    best: dict[str, str | None], variants: dict[str, list[Run]], seeds: list[int], config: dict
) -> list[str]:
    from femlm.report.stats import VERDICTS, t_test

    chosen = {arm: n for arm, n in best.items() if n is not None}
    lines = [
        "Each arm's best on dev: "
        + (
            ", ".join(f"{a} `{n}`" for a, n in chosen.items())
            or "not yet (selection seeds unfinished)"
        )
    ]
    if "standard" not in chosen or len(chosen) < 2:
        return lines
    ref = {s: v for s, v in test_by_seed(variants[chosen["standard"]]).items() if s in seeds}
    for arm, name in chosen.items():
        if arm == "standard":
            continue
        mine = {s: v for s, v in test_by_seed(variants[name]).items() if s in seeds}
        shared = sorted(set(mine) & set(ref))
        if len(shared) < len(seeds):  # a verdict is over every verdict seed, never part
            interim = f": interim {t_test(mine, ref).text()}" if len(shared) > 1 else ""
            lines.append(
                f"{arm} best against standard best: verdict seeds not finished "
                f"({len(shared)} of {len(seeds)}){interim}; no verdict until all have run"
            )
            continue
        t = t_test(mine, ref)
        strict = t_test(mine, ref, confidence=0.975)
        lines.append(
            f"**{arm} best minus standard best, test loss: {t.text()} — {VERDICTS[t.outcome]}** "
            f"(97.5%, Bonferroni over two settings: {VERDICTS[strict.outcome]}, ± {strict.half:.4f})"
        )
        lines.append(_per_start(mine, ref, config))
        lines.append(_draws(variants[name], variants[chosen["standard"]], shared))
    return lines


def _per_start(mine: dict[int, float], ref: dict[int, float], config: dict) -> str:
    starts = config.get("starts") or []
    if not starts:
        return ""
    by: dict[int, list[float]] = {}
    for s in sorted(set(mine) & set(ref)):
        by.setdefault(s % len(starts), []).append(mine[s] - ref[s])
    shown = ", ".join(
        f"start {k}: {statistics.fmean(v):+.4f} (n={len(v)})" for k, v in sorted(by.items())
    )
    return f"Mean difference per start: {shown}."


def _draws(a: list[Run], b: list[Run], seeds: list[int]) -> str:
    """The same difference on each draw of test positions: the evaluation-sample spread."""
    da = {r.seed: r.tests[-1][2] for r in a if r.tests}
    db = {r.seed: r.tests[-1][2] for r in b if r.tests}
    n = min((len(da[s]) for s in seeds if s in da), default=0)
    parts = []
    for k in range(n):
        diffs = [da[s][k] - db[s][k] for s in seeds if s in da and s in db]
        parts.append(f"draw {k + 1}: {statistics.fmean(diffs):+.4f}")
    return f"By draw of test positions: {', '.join(parts)}." if parts else ""


def _same_rate(
    config: dict, groups: dict[str, list[str]], variants: dict[str, list[Run]], seeds: list[int]
) -> list[str]:
    from femlm.report.stats import VERDICTS, t_test

    cells: dict[tuple[float, str], dict[str, str]] = {}
    for arm, members in groups.items():
        by_cell: dict[tuple[float, str], list[str]] = {}
        for n in members:
            by_cell.setdefault(cell_of(config, n), []).append(n)
        for cell, names in by_cell.items():
            if (chosen := choose(names, variants, seeds)) is not None:
                cells.setdefault(cell, {})[arm] = chosen
    rows = [c for c in sorted(cells) if "standard" in cells[c] and len(cells[c]) > 1]
    if not rows:
        return ["Same rate against same rate: not yet (the selection seeds are unfinished)."]
    confidence = 1 - 0.05 / len(rows)
    lines = [
        f"Same rate against same rate (each arm's lr chosen on dev per cell; test, paired over "
        f"seeds {seeds}; these seeds also chose the cells, so the table is descriptive; a row "
        f"counts only where its {confidence:.2%} Bonferroni interval excludes 0):",
        "",
        "| rate | schedule | arm | its variant | minus standard's (test) | 95% verdict | Bonferroni |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in rows:
        ref = cells[cell]["standard"]
        for arm, name in cells[cell].items():
            if arm == "standard":
                continue
            a = {s: v for s, v in test_by_seed(variants[name]).items() if s in seeds}
            b = {s: v for s, v in test_by_seed(variants[ref]).items() if s in seeds}
            t, strict = t_test(a, b), t_test(a, b, confidence=confidence)
            lines.append(
                f"| {cell[0]:.3f} | {cell[1]} | {arm} | {name} vs {ref} | {t.text()} | "
                f"{VERDICTS[t.outcome]} | {VERDICTS[strict.outcome]} (± {strict.half:.4f}) |"
            )
    return lines
