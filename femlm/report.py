"""``femlm report RUNS_DIR``: markdown and PNG plots from an experiment folder.

Everything is read from the run folders (``metrics.jsonl``, ``finetune-*.json``,
``variance.json``); nothing is re-computed, so a report can be re-made any time.
Verdicts use a simple, stated rule: a difference in mean final loss counts
only when it exceeds twice its standard error over seeds.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from femlm.errors import FemlmError


@dataclass
class Run:
    seed: int
    evals: list[tuple[int, float, float]]  # (step, eval_loss, elapsed seconds)
    unigram: float | None
    finetune: dict[str, dict] = field(default_factory=dict)
    variance: dict | None = None
    variance_steps: list[dict] = field(default_factory=list)  # --variance-every rows

    @property
    def final(self) -> float:
        return self.evals[-1][1]


def load_runs(folder: Path) -> dict[str, list[Run]]:
    """``{variant: [Run per seed]}`` for every finished or partial run under ``folder``."""
    variants: dict[str, list[Run]] = {}
    for metrics in sorted(folder.glob("*/seed-*/metrics.jsonl")):
        run_folder = metrics.parent
        rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
        evals = [
            (r["step"], r["eval_loss"], r.get("elapsed", math.nan))
            for r in rows
            if "eval_loss" in r
        ]
        if not evals:
            continue
        unigram = next((r["unigram_loss"] for r in rows if "unigram_loss" in r), None)
        run = Run(int(run_folder.name.split("-", 1)[1]), evals, unigram)
        run.variance_steps = [r for r in rows if "fully-explored.ratio" in r]
        for f in sorted(run_folder.glob("finetune-*.json")):
            run.finetune[f.stem.removeprefix("finetune-")] = json.loads(f.read_text())
        if (run_folder / "variance.json").is_file():
            run.variance = json.loads((run_folder / "variance.json").read_text())
        variants.setdefault(run_folder.parent.name, []).append(run)
    if not variants:
        raise FemlmError(f"no runs with evaluations under {folder}")
    return variants


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float], digits: int = 3) -> str:
    m, s = mean_std(values)
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


def compare(a: list[float], b: list[float]) -> str:
    """'lower', 'higher' or 'tie' for mean(a) vs mean(b) under the 2-standard-error rule."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    se = math.sqrt(sa**2 / max(len(a), 1) + sb**2 / max(len(b), 1))
    if abs(ma - mb) <= 2 * se or len(a) < 2 or len(b) < 2:
        return "tie"
    return "lower" if ma < mb else "higher"


def pick_baseline(folder: Path, variants: dict[str, list[Run]]) -> str:
    """The standard-masking variant: named in the config, else 'standard', else the first."""
    cfg_file = folder / "experiment.json"
    if cfg_file.is_file():
        cfg = json.loads(cfg_file.read_text())
        for name, values in cfg.get("runs", {}).items():
            values = values or {}
            if (
                values.get("strategy") == "random"
                and values.get("views", 1) == 1
                and name in variants
            ):
                return name
    return "standard" if "standard" in variants else next(iter(variants))


def efficiency_table(variants: dict[str, list[Run]], baseline: str) -> tuple[list[str], dict]:
    """Steps each run needs to reach the baseline's mean final loss.

    The baseline took its whole budget (its last step) to get there, so the
    ratio ``steps / budget`` below 1 means a variant is more step-efficient.
    """
    target = mean_std([r.final for r in variants[baseline]])[0]
    budget = statistics.fmean(r.evals[-1][0] for r in variants[baseline])
    lines = [
        f"Target: the baseline `{baseline}`'s mean final validation loss, {target:.4f}, "
        f"which it reached in its budget of {budget:.0f} steps.",
        "",
        "| variant | final val loss | steps to target (per seed) | steps / baseline's budget |",
        "|---|---|---|---|",
    ]
    numbers = {}
    for name, runs in variants.items():
        steps = [steps_to_reach(r.evals, target) for r in runs]
        reached = [s for s in steps if s is not None]
        ratio = mean_std(reached)[0] / budget if len(reached) == len(steps) else None
        numbers[name] = {"final": [r.final for r in runs], "steps": steps, "ratio": ratio}
        shown = ", ".join("not reached" if s is None else f"{s:.0f}" for s in steps)
        lines.append(
            f"| {name} | {fmt([r.final for r in runs], 4)} | {shown} | "
            f"{'n/a (not reached in every seed)' if ratio is None else f'{ratio:.2f}'} |"
        )
    return lines, numbers


def downstream_table(variants: dict[str, list[Run]]) -> list[str]:
    tasks = sorted({t for runs in variants.values() for r in runs for t in r.finetune})
    if not tasks:
        return ["No fine-tuning results."]
    lines = ["| variant | task | test accuracy | test macro-F1 |", "|---|---|---|---|"]
    for name, runs in variants.items():
        for task in tasks:
            acc, f1 = [], []
            for r in runs:
                for seed in r.finetune.get(task, {}).get("runs", []):
                    acc.append(seed["test_accuracy"])
                    f1.append(seed["test_macro_f1"])
            if acc:
                lines.append(f"| {name} | {task} | {fmt(acc)} | {fmt(f1)} |")
    lines.append("")
    lines.append("Spread is over all (pre-training seed, fine-tuning seed) pairs.")
    return lines


def claims_table(variants: dict[str, list[Run]], baseline: str, eff: dict) -> list[str]:
    fe = next((v for v in variants if v.startswith("fully-explored")), None)
    lines = ["| claim of the paper | what we measured | verdict |", "|---|---|---|"]
    if fe is None:
        return lines + ["| (no fully-explored variant in this experiment) | | |"]
    for other, claim in ((baseline, "FE trains more efficiently than standard random masking at equal compute"),
                         ("random-K", "FE beats independent random views of the same sequences")):  # fmt: skip
        if other not in variants or other == fe:
            continue
        a, b = eff[fe]["final"], eff[other]["final"]
        verdict = {
            "lower": "reproduced",
            "higher": "not reproduced (FE worse)",
            "tie": "inconclusive at this scale",
        }[compare(a, b)]
        lines.append(
            f"| {claim} | final val loss {fe} {fmt(a, 4)} vs {other} {fmt(b, 4)} | {verdict} |"
        )
    lines += _variance_claims(variants[fe], fe)
    return lines


def _variance_claims(runs: list[Run], fe: str) -> list[str]:
    lines = []
    for r in runs:
        est = (r.variance or {}).get("estimates", {})
        if f"{fe}.ratio" not in est or f"{fe}.step_var_vs_standard" not in est:
            continue
        ratio, step = est[f"{fe}.ratio"], est[f"{fe}.step_var_vs_standard"]
        verdict = "reproduced" if ratio["high"] < 1 else "not reproduced"
        lines.append(
            f"| FE lowers the mask-sampling gradient variance (seed {r.seed}, end of training) | "
            f"FE / random-K mask variance {_ci(ratio)} | {verdict} |"
        )
        lower = (
            "reproduced"
            if step["high"] < 1
            else ("not reproduced" if step["low"] > 1 else "inconclusive")
        )
        lines.append(
            f"| ...and so the variance of a whole step at equal compute | FE / standard step variance "
            f"{_ci(step)} | {lower} |"
        )
    return lines


def _ci(e: dict) -> str:
    return f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def plot_curves(variants: dict[str, list[Run]], out: Path, x: str) -> Path:
    """Validation loss vs steps (or training seconds), mean with a min-max band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    col = 0 if x == "steps" else 2
    unigram = None
    for name, runs in variants.items():
        n = min(len(r.evals) for r in runs)
        xs = [statistics.fmean(r.evals[i][col] for r in runs) for i in range(n)]
        ys = [[r.evals[i][1] for r in runs] for i in range(n)]
        ax.plot(xs, [statistics.fmean(y) for y in ys], label=f"{name} ({len(runs)} seeds)")
        ax.fill_between(xs, [min(y) for y in ys], [max(y) for y in ys], alpha=0.2)
        unigram = unigram or next((r.unigram for r in runs if r.unigram), None)
    if unigram:
        ax.axhline(unigram, color="grey", linestyle="--", label=f"unigram baseline {unigram:.2f}")
    ax.set_xlabel("optimizer step" if x == "steps" else "training seconds")
    ax.set_ylabel("validation loss (fixed masks)")
    ax.legend()
    ax.grid(alpha=0.3)
    path = out / f"val_loss_vs_{x}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_variance_steps(variants: dict[str, list[Run]], out: Path) -> Path | None:
    """FE / random-K mask-variance ratio and V_data against steps (``--variance-every``)."""
    if not any(r.variance_steps for runs in variants.values() for r in runs):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, runs in variants.items():
        for i, r in enumerate(x for x in runs if x.variance_steps):
            steps = [v["step"] for v in r.variance_steps]
            label = name if i == 0 else None
            color = f"C{list(variants).index(name)}"
            axes[0].plot(
                steps,
                [v["fully-explored.ratio"] for v in r.variance_steps],
                color=color,
                label=label,
            )
            axes[1].plot(steps, [v["v_data"] for v in r.variance_steps], color=color, label=label)
    axes[0].set_ylabel("FE / random-K mask variance")
    axes[1].set_ylabel("V_data")
    for ax in axes:
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend()
    path = out / "variance_vs_steps.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.md`` and its plots into ``out`` (default: the experiment folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FemlmError(f"no such experiment folder: {folder}")
    out = Path(out) if out else folder
    out.mkdir(parents=True, exist_ok=True)
    variants = load_runs(folder)
    baseline = pick_baseline(folder, variants)
    eff_lines, eff = efficiency_table(variants, baseline)
    plots = [plot_curves(variants, out, "steps"), plot_curves(variants, out, "seconds")]
    unigram = next((r.unigram for runs in variants.values() for r in runs if r.unigram), None)
    md = [f"# Report: {folder.name}", ""]
    md += [
        f"Unigram baseline (eval targets from training token frequencies): {unigram:.4f}"
        if unigram
        else ""
    ]
    md += ["", "## Efficiency", "", *eff_lines, ""]
    md += [
        f"![validation loss vs steps]({plots[0].name})",
        "",
        f"![validation loss vs time]({plots[1].name})",
        "",
    ]
    md += ["## Downstream", "", *downstream_table(variants), ""]
    md += ["## Gradient variance", "", *variance_section(variants, folder, out), ""]
    over_steps = plot_variance_steps(variants, out)
    if over_steps:
        md += [
            "Variance terms during training (`--variance-every`):",
            "",
            f"![variance vs steps]({over_steps.name})",
            "",
        ]
    md += ["## Does the variance predict the outcome?", "", *ranking_check(folder, variants), ""]
    md += ["## Claims", "", *claims_table(variants, baseline, eff), ""]
    md += [
        "Verdict rule: a mean difference counts when it exceeds twice its standard error over seeds."
    ]
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path


def variance_section(variants: dict[str, list[Run]], folder: Path, out: Path) -> list[str]:
    """Each run's variance table, with its plots copied beside the report."""
    import shutil

    from femlm.variance import format_table

    lines = []
    for name, runs in variants.items():
        for r in runs:
            if not (r.variance and "estimates" in r.variance):
                continue
            lines += [f"`{name}` seed {r.seed}, at the end of training:", "", "```"]
            lines += [format_table(r.variance), "```", ""]
            for png in sorted((folder / name / f"seed-{r.seed}" / "variance").glob("*.png")):
                target = out / f"{name}-seed{r.seed}-{png.name}"
                if target.resolve() != png.resolve():
                    shutil.copyfile(png, target)
                lines += [f"![{png.stem}]({target.name})", ""]
    return lines or ["No variance measurements in this experiment."]


def _estimate_key(values: dict[str, Any]) -> str | None:
    """Which of the variance tool's step variances describes a variant's runs."""
    strategy, views = values.get("strategy", "fully-explored"), values.get("views")
    if strategy == "random" and (views or 1) == 1:
        return "standard.step_var"
    if strategy in ("random", "fully-explored", "fully-explored-span", "span") and (
        strategy.startswith("fully-explored") or (views or 1) > 1
    ):
        return f"{strategy}.step_var"
    return None


def ranking_check(folder: Path, variants: dict[str, list[Run]]) -> list[str]:
    """Does the ordering by implied step variance predict the ordering by final loss?"""
    cfg_file = folder / "experiment.json"
    est = next((r.variance["estimates"] for rs in variants.values() for r in rs
                if r.variance and "estimates" in r.variance), None)  # fmt: skip
    if est is None or not cfg_file.is_file():
        return ["No variance measurement to predict from."]
    runs_cfg = json.loads(cfg_file.read_text()).get("runs", {})
    rows = []
    for name, runs in variants.items():
        key = _estimate_key(runs_cfg.get(name) or {})
        if key in est:
            rows.append((name, est[key], mean_std([r.final for r in runs])[0]))
    if len(rows) < 2:
        return ["Fewer than two variants have a predicted step variance."]
    predicted = [n for n, _, _ in sorted(rows, key=lambda x: x[1]["value"])]
    measured = [n for n, _, _ in sorted(rows, key=lambda x: x[2])]
    lines = ["| variant | implied step variance | mean final val loss |", "|---|---|---|"]
    lines += [f"| {n} | {_ci(e)} | {loss:.4f} |" for n, e, loss in rows]
    same = "the same order" if predicted == measured else "a different order"
    finals = {n: [r.final for r in variants[n]] for n in measured}
    if any(
        compare(finals[a], finals[b]) == "tie" for a, b in zip(measured, measured[1:], strict=False)
    ):
        same += ", though neighbouring final losses do not differ beyond noise, so the measured order is not settled"
    lines += [
        "",
        f"Lowest step variance first: {', '.join(predicted)}; lowest final loss first: "
        f"{', '.join(measured)}: {same}. (Step variances are from one model at the end of "
        "training, with the batch size given to the variance tool.)",
    ]
    return lines


def summary(folder: str | Path) -> str:
    """A short table for the terminal: final validation loss per variant."""
    variants = load_runs(Path(folder))
    rows = [f"{'variant':28s} {'final val loss (mean ± std over seeds)':40s}"]
    rows += [f"{name:28s} {fmt([r.final for r in runs], 4)}" for name, runs in variants.items()]
    return "\n".join(rows)
