"""The gradient-variance parts of ``femlm report``: each run's variance table
and plots, the claims they support, and whether the variance tool's ranking
of strategies predicts the measured ranking of final losses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from femlm.masking.strategies import ONE_VIEW, MaskingSpec
from femlm.report.pairs import same_training
from femlm.report.runs import Run, read_config, variant_config, variant_spec
from femlm.report.stats import compare, finals, mean_std
from femlm.runs import ExperimentDir
from femlm.schema import from_dict
from femlm.variance.config import VarianceConfig
from femlm.variance.results import Estimate, VarianceResult
from femlm.variance.table import format_table


def variance_claims(runs: list[Run], fe: str) -> list[str]:
    lines = []
    for r in runs:
        terms = r.variance.terms(fe) if r.variance else None
        cmp = r.variance.comparison(fe) if r.variance else None
        if terms is None or cmp is None:
            continue
        ratio, step = terms.ratio, cmp.step_var_ratio
        verdict = "reproduced" if ratio.high < 1 else "not reproduced"
        lines.append(
            f"| FE lowers the mask-sampling gradient variance (seed {r.seed}, end of training) | "
            f"FE / random-K mask variance {ratio.show('.3f')} | {verdict} |"
        )
        lower = (
            "reproduced"
            if step.high < 1
            else ("not reproduced" if step.low > 1 else "inconclusive")
        )
        against = "standard" if r.variance.old_layout else f"one {cmp.baseline} view"
        lines.append(
            f"| ...and so the variance of a whole step at equal compute | FE / {against} step "
            f"variance {step.show('.3f')} | {lower} |"
        )
    return lines


def variance_section(variants: dict[str, list[Run]], folder: Path, out: Path) -> list[str]:
    """Each run's variance table, with its plots copied beside the report."""
    import shutil

    lines = []
    for name, runs in variants.items():
        for r in runs:
            if r.variance is None:
                continue
            lines += [f"`{name}` seed {r.seed}, at the end of training:", "", "```"]
            lines += [format_table(r.variance), "```", ""]
            for png in sorted(ExperimentDir(folder).run(name, r.seed).variance_dir.glob("*.png")):
                target = out / f"{name}-seed{r.seed}-{png.name}"
                if target.resolve() != png.resolve():
                    shutil.copyfile(png, target)
                lines += [f"![{png.stem}]({target.name})", ""]
    return lines or ["No variance measurements in this experiment."]


def step_variance(result: VarianceResult, spec: MaskingSpec) -> Estimate | None:
    """Which of the variance tool's step variances describes a variant's runs: a
    one-view run's is the baseline side of the comparison with that baseline."""
    if spec.family == ONE_VIEW and spec.views == 1:
        c = next((c for c in result.comparisons if c.baseline == spec.strategy), None)
        return c.baseline_step_var if c else None
    c = result.comparison(spec.strategy)
    return c.step_var if c else None


def _policy(values: Any) -> tuple[float, float]:
    """(mask_prob, random_prob) of a run or probe config (a config or its saved dict)."""
    if isinstance(values, dict):
        values = from_dict(
            VarianceConfig, {k: values[k] for k in ("mask_prob", "random_prob") if k in values}
        )
    return float(values.mask_prob), float(values.random_prob)


def ranking_check(folder: Path, variants: dict[str, list[Run]]) -> list[str]:
    """Does the ordering by implied step variance predict the ordering by final loss?

    One check per replacement policy measured: a probe with 80/10/10 inputs says
    nothing about variants trained with all `[MASK]`, and the other way round.
    """
    cfg = read_config(folder)
    runs_cfg = cfg.get("runs")
    probes: dict[tuple[float, float], tuple[str, VarianceResult]] = {}
    for name, rs in variants.items():
        for r in rs:
            if r.variance is not None:
                probes.setdefault(_policy(r.variance.config), (name, r.variance))
    if not probes or runs_cfg is None:
        return ["No variance measurement to predict from."]
    lines = []
    for policy, (probed, est) in probes.items():
        # Only variants trained as the probed one was, apart from the masking: a
        # probe at rate 1/K says nothing of another rate or another budget.
        names = [
            n for n in variants
            if _policy(variant_config(cfg, n)) == policy
            and (n == probed or n not in runs_cfg or same_training(cfg, probed, n))
        ]  # fmt: skip
        if len(probes) > 1:
            lines += [f"Variants trained with {policy[0]:.0%} `[MASK]`, {policy[1]:.0%} random "
                      "(the variance probe's policy):", ""]  # fmt: skip
        lines += _ranking(est, {n: variants[n] for n in names}, cfg) + [""]
    return lines[:-1]


def _ranking(result: VarianceResult, variants: dict[str, list[Run]], cfg: dict) -> list[str]:
    rows = []
    for name, runs in variants.items():
        e = step_variance(result, variant_spec(cfg, name))
        if e is not None:
            rows.append((name, e, mean_std([r.final for r in runs])[0]))
    if len(rows) < 2:
        return ["Fewer than two variants have a predicted step variance."]
    predicted = [n for n, _, _ in sorted(rows, key=lambda x: x[1].value)]
    measured = [n for n, _, _ in sorted(rows, key=lambda x: x[2])]
    lines = ["| variant | implied step variance | mean final val loss |", "|---|---|---|"]
    lines += [f"| {n} | {e.show('.3f')} | {loss:.4f} |" for n, e, loss in rows]
    same = "the same order" if predicted == measured else "a different order"
    seeds = {n: finals(variants[n]) for n in measured}
    if any(
        compare(seeds[a], seeds[b]) == "tie" for a, b in zip(measured, measured[1:], strict=False)
    ):
        same += ", though neighbouring final losses do not differ beyond noise, so the measured order is not settled"
    lines += [
        "",
        f"Lowest step variance first: {', '.join(predicted)}; lowest final loss first: "
        f"{', '.join(measured)}: {same}. (Step variances are from one model at the end of "
        "training, with the batch size given to the variance tool.)",
    ]
    return lines
