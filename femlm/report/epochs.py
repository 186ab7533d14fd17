"""The epochs study (stage E of docs/protocol.md) and stage G's test of hypothesis H.

Stage E runs each arm's tuned best at budgets of 1 to 80 epochs on the verdict
units; the 40-epoch point of each best is stage C's own run. Where the two bests
sit in different cells, stage E also runs standard masking at fully-explored-
epochs' cell (amendment 3): H is about the same rate, the rule of thumb about
best against best. A *series* is one stage-C variant's settings at every budget,
found by settings (everything but the step counts), never by name.

The rule of thumb: the smallest budget from which every longer budget's 95%
interval of fully-explored-epochs minus standard lies below 0; "not found" when
there is none; "not yet" while a budget lacks a unit. H is rejected at a budget
when the measured same-rate interval excludes its committed prediction.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from femlm.errors import FemlmError
from femlm.report.runs import Run, start_weights_by_seed, variant_config
from femlm.report.stats import VERDICTS, Verdict, t_test
from femlm.report.tuning import cell_of, configured_bests, configured_cell, test_by_seed


@dataclass(frozen=True)
class Point:
    """One budget of one pair: fully-explored-epochs' series against a standard one."""

    epochs: int
    steps: int
    units: list[int]  # the units both arms finished
    fe_loss: float | None  # mean final test loss over ``units``
    standard_loss: float | None
    verdict: Verdict | None  # None below 2 shared units
    predicted: float | None = None  # H's committed gain at this budget
    planned: int = 0  # the units the budget is to run on
    unpaired: list[int] = dataclasses.field(default_factory=list)  # arms from two starts

    @property
    def complete(self) -> bool:
        return self.verdict is not None and len(self.units) >= self.planned

    @property
    def h_rejected(self) -> bool | None:
        """Whether the measured interval excludes H's prediction (None: nothing to judge,
        or not every planned unit has run)."""
        if self.predicted is None or not self.complete:
            return None
        return abs(self.verdict.diff - self.predicted) > self.verdict.half


@dataclass(frozen=True)
class Study:
    units: list[int]
    fe: str  # stage C's variant names of the series
    standard: str
    same_rate: str  # standard at fe's cell (== standard when the bests share a cell)
    best: list[Point]  # best against best, by budget
    same: list[Point]  # fe against standard at fe's cell, with H's predictions
    rule: str  # the rule of thumb, in words
    starts: str  # whether each unit's runs began from one start


def _settings_key(config: dict[str, Any], name: str) -> Any:
    """A variant's training settings without its budget: what a series holds fixed."""
    return dataclasses.replace(variant_config(config, name), max_steps=1, warmup_steps=0)


def series(
    c_config: dict, c_runs: dict[str, list[Run]], e_config: dict, e_runs: dict[str, list[Run]],
    name: str, units: list[int],
) -> dict[int, list[Run]]:  # fmt: skip
    """``{max_steps: [Run per unit]}`` of stage C's variant ``name``: the stage-E variants
    with its settings, and its own stage-C runs at stage C's budget."""
    key = _settings_key(c_config, name)
    out: dict[int, list[Run]] = {}
    for variant in e_config.get("runs") or {}:
        if _settings_key(e_config, variant) == key:
            steps = variant_config(e_config, variant).max_steps
            out[steps] = [r for r in e_runs.get(variant, []) if r.seed in units]
    steps = variant_config(c_config, name).max_steps
    if steps not in out:  # stage E does not repeat a point stage C ran on its units
        out[steps] = [r for r in c_runs.get(name, []) if r.seed in units]
    return out


def _pair(
    fe: dict[int, list[Run]],
    std: dict[int, list[Run]],
    epochs_of: Any,
    predicted: dict,
    planned: int,
) -> list[Point]:
    points = []
    for steps in sorted(set(fe) & set(std)):
        a, b = test_by_seed(fe[steps]), test_by_seed(std[steps])
        # amendment 1: a pair judges only where both arms began from one start's weights
        both = set(a) & set(b)
        starts = start_weights_by_seed([*fe[steps], *std[steps]])
        unpaired = sorted(s for s in both if len(starts.get(s, ())) > 1)
        shared = sorted(both - set(unpaired))
        e = epochs_of(steps)
        points.append(Point(
            e, steps, shared,
            statistics.fmean(a[s] for s in shared) if shared else None,
            statistics.fmean(b[s] for s in shared) if shared else None,
            t_test({s: a[s] for s in shared}, {s: b[s] for s in shared}) if len(shared) > 1 else None,
            predicted.get(e), planned, unpaired,
        ))  # fmt: skip
    return points


def rule_of_thumb(points: list[Point], units: list[int]) -> str:
    """The protocol's rule on best-against-best points, in words."""
    if not points:
        return "not yet (no budget finished)"
    unpaired = [p.epochs for p in points if p.unpaired]
    if unpaired:
        return f"not judged (budgets {unpaired} pair runs from different starts)"
    unfinished = [p.epochs for p in points if not p.complete]
    if unfinished:
        return f"not yet (budgets {unfinished} lack units)"
    found = None
    for i in range(len(points) - 1, -1, -1):
        if points[i].verdict.outcome != "lower":
            break
        found = points[i].epochs
    if found is None:
        return "not found: the longest budget's interval does not lie below 0"
    return f"from about {found} epochs on (every budget from {found} up lies below 0)"


def epochs_study(
    c_config: dict, c_runs: dict[str, list[Run]], e_config: dict, e_runs: dict[str, list[Run]],
    prediction: dict | None = None,
) -> Study:  # fmt: skip
    """Stage E's pairs from the two grids' configs and runs, and H's committed prediction
    (``scripts/prediction.py``'s JSON) beside the same-rate pair."""
    units = list(e_config.get("seeds") or [])
    bests = configured_bests(c_config)
    fe = next(n for arm, n in bests.items() if arm != "standard")
    std = bests["standard"]
    same = std
    if cell_of(c_config, std) != cell_of(c_config, fe):
        same = configured_cell(c_config, "standard", cell_of(c_config, fe))
        if same is None:
            raise FemlmError(f"stage C's grid has no standard cell at {fe}'s rate and schedule")
    every = [r for runs in (*c_runs.values(), *e_runs.values()) for r in runs]
    blocks = next((r.train_blocks for r in every if r.train_blocks), None)
    batch = variant_config(c_config, fe).batch_size

    def epochs_of(steps: int) -> int:
        return round(steps * batch / blocks) if blocks else steps

    got = {n: series(c_config, c_runs, e_config, e_runs, n, units) for n in {fe, std, same}}
    predicted = {p["epochs"]: p["gain"] for p in (prediction or {}).get("predicted", [])}
    best = _pair(got[fe], got[std], epochs_of, {}, len(units))
    same_points = _pair(got[fe], got[same], epochs_of, predicted, len(units))
    return Study(
        units, fe, std, same, best, same_points, rule_of_thumb(best, units),
        _starts_line(got, units),
    )  # fmt: skip


def _starts_line(got: dict[str, dict[int, list[Run]]], units: list[int]) -> str:
    seen = start_weights_by_seed(
        r for by_steps in got.values() for rs in by_steps.values() for r in rs
    )
    mixed = [u for u in units if len(seen.get(u, ())) > 1]
    if mixed:
        return (
            f"Starts: units {mixed} have runs from different start weights (pre-trained again "
            "in another session). A budget's pair is judged only on units whose two runs "
            "began from the same weights (amendment 1); budgets are compared across starts."
        )
    return "Starts: each unit's runs, stage C's and stage E's, began from one start's weights."


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def _table(points: list[Point], with_h: bool) -> list[str]:
    head = (
        "| epochs | steps | units | fe-epochs test | standard test | difference (95%) | verdict |"
    )
    rule = "|---|---|---|---|---|---|---|"
    if with_h:
        head, rule = head + " H predicts | H |", rule + "---|---|"
    lines = [head, rule]
    for p in points:
        diff = p.verdict.text() if p.verdict else "fewer than 2 units"
        verdict = VERDICTS[p.verdict.outcome] if p.complete else "interim: no verdict"
        if p.unpaired:
            diff = f"units {p.unpaired}: arms from different starts"
            verdict = "not judged (not a pair)"
        row = f"| {p.epochs} | {p.steps} | {len(p.units)} | {_fmt(p.fe_loss)} | {_fmt(p.standard_loss)} | {diff} | {verdict} |"  # fmt: skip
        if with_h:
            judged = {None: "—", True: "**rejected**", False: "not rejected"}[p.h_rejected]
            row += f" {'—' if p.predicted is None else f'{p.predicted:+.4f}'} | {judged} |"
        lines.append(row)
    return lines


def study_lines(study: Study) -> list[str]:
    """The study in markdown: best against best by budget with the rule of thumb, then
    the same-rate pair against H's prediction."""
    lines = [
        f"Units {study.units} (paired by unit: same start, data order and dropout), final test "
        "loss (the mean of its draws of positions); a difference is fully-explored-epochs "
        "minus standard, ± the half-width of its 95% t interval.",
        "",
        study.starts,
        "",
        f"### Best against best: `{study.fe}` vs `{study.standard}`",
        "",
        *_table(study.best, with_h=False),
        "",
        f"**Rule of thumb: {study.rule}.**",
        "",
    ]
    if any(p.predicted is not None for p in study.same):
        what = (
            "the same pair"
            if study.same_rate == study.standard
            else f"`{study.fe}` vs `{study.same_rate}`"
        )
        lines += [
            f"### Hypothesis H at the same rate ({what})",
            "",
            "H is rejected at a budget where the measured interval excludes its prediction "
            "(committed before stage E ran).",
            "",
            *_table(study.same, with_h=True),
            "",
        ]
    return lines


def study_json(study: Study) -> dict[str, Any]:
    def point(p: Point) -> dict[str, Any]:
        v = p.verdict
        return {
            "epochs": p.epochs, "steps": p.steps, "units": p.units,
            "fe_test": p.fe_loss, "standard_test": p.standard_loss,
            "difference": v.diff if v else None, "half_width_95": v.half if v else None,
            "lower_in": v.lower if v else None, "outcome": v.outcome if v else None,
            "predicted": p.predicted, "h_rejected": p.h_rejected,
            "unpaired_units": p.unpaired,
        }  # fmt: skip

    return {
        "units": study.units, "fe_epochs": study.fe, "standard": study.standard,
        "same_rate_standard": study.same_rate, "rule_of_thumb": study.rule,
        "starts": study.starts,
        "best_against_best": [point(p) for p in study.best],
        "same_rate": [point(p) for p in study.same],
    }  # fmt: skip


def plot_study(study: Study, out: Path) -> Path:
    """The paired difference against epochs (log axis), with H's prediction."""
    from femlm.report.plots import pyplot, save_figure

    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    pairs = [("best against best", study.best, 0.97)]
    if study.same_rate != study.standard:
        pairs.append(("same rate", study.same, 1.03))
    for label, points, shift in pairs:
        done = [p for p in points if p.verdict and not p.unpaired]
        ax.errorbar(
            [p.epochs * shift for p in done], [p.verdict.diff for p in done],
            yerr=[p.verdict.half for p in done], fmt="o-", capsize=3, label=label,
        )  # fmt: skip
    predicted = [p for p in study.same if p.predicted is not None]
    if predicted:
        ax.plot([p.epochs for p in predicted], [p.predicted for p in predicted], "k--",
                label="H's prediction (committed first)")  # fmt: skip
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("epochs (budget)")
    ax.set_ylabel("fe-epochs minus standard, test loss")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, out / "epochs.png")
