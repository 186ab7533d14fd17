"""``femlm report RUNS_DIR``: markdown and PNG plots from an experiment folder.

Everything is read from the run folders (``metrics.jsonl``, ``finetune-*.json``,
``variance.json``); nothing is re-computed, so a report can be re-made any time.
Verdicts use one stated rule (:class:`femlm.report.stats.Verdict`): a 95% t
interval of the mean difference, paired by seed, must exclude 0.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from femlm.errors import FemlmError
from femlm.report.downstream import downstream_claims, downstream_table, probe_table
from femlm.report.pairs import Roles, pairs_section, roles
from femlm.report.plots import ablation_section, plot_curves, plot_variance_steps
from femlm.report.runs import (
    Run,
    compute_note,
    first_saved_config,
    load_runs,
    pick_baseline,
    precision_note,
    read_config,
    unfinished_note,
    variant_spec,
)
from femlm.report.stats import (
    CLAIM_VERDICTS,
    RULE,
    VERDICTS,
    compare,
    finals,
    fmt,
    mean_std,
    steps_to_reach,
    t_test,
)
from femlm.report.tuning import test_by_seed, tuned_section
from femlm.report.variance import ranking_check, variance_claims, variance_section


def efficiency_table(variants: dict[str, list[Run]], baseline: str) -> tuple[list[str], dict]:
    """Steps each run needs to reach the baseline's mean final loss (ratio < 1: more
    step-efficient), and the steps the baseline needs to reach each variant's."""
    target = mean_std([r.final for r in variants[baseline]])[0]
    budget = statistics.fmean(r.evals[-1][0] for r in variants[baseline])
    lines = [
        f"Target: the baseline `{baseline}`'s mean final validation loss, {target:.4f}, "
        f"which it reached in its budget of {budget:.0f} steps.",
        "",
        "| variant | final val loss | steps to target (per seed) | steps / baseline's budget "
        f"| `{baseline}`'s steps to this final loss (mean over its seeds) |",
        "|---|---|---|---|---|",
    ]
    numbers = {}
    for name, runs in variants.items():
        steps = [steps_to_reach(r.evals, target) for r in runs]
        reached = [s for s in steps if s is not None]
        ratio = mean_std(reached)[0] / budget if len(reached) == len(steps) else None
        numbers[name] = {"final": [r.final for r in runs], "steps": steps, "ratio": ratio}
        shown = ", ".join("not reached" if s is None else f"{s:.0f}" for s in steps)
        mine = mean_std([r.final for r in runs])[0]
        back = [steps_to_reach(r.evals, mine) for r in variants[baseline]]
        lines.append(
            f"| {name} | {fmt([r.final for r in runs], 4)} | {shown} | "
            f"{'n/a (not reached in every seed)' if ratio is None else f'{ratio:.2f}'} | "
            f"{'not reached in every seed' if None in back else f'{statistics.fmean(back):.0f}'} |"
        )
    return lines, numbers


def comparison_table(
    variants: dict[str, list[Run]], reference: str, label: str = "final val loss", values=finals
) -> list[str]:
    """Every other variant against ``reference``: the mean difference, its 95% t
    interval (paired by seed where seeds are shared) and the verdict, on ``values``
    (each run's final dev loss, or its test loss: :func:`test_by_seed`)."""
    ref = values(variants[reference])
    lines = [
        f"| variant | {label} | mean minus `{reference}`'s | difference ± 95% interval "
        "(test), seeds lower | verdict |",
        "|---|---|---|---|---|",
    ]
    for name, runs in variants.items():
        if name == reference:
            continue
        mine = values(runs)
        t = t_test(mine, ref)
        lines.append(
            f"| {name} | {fmt(list(mine.values()), 4)} | "
            f"{mean_std(list(mine.values()))[0] - mean_std(list(ref.values()))[0]:+.4f} | "
            f"{t.text()} | {VERDICTS[t.outcome]} |"
        )
    return lines


def comparisons_section(variants: dict[str, list[Run]], baseline: str, fe: str | None) -> list[str]:
    """All pairwise verdicts against the baseline (and against the FE variant), not a pick."""
    lines = [
        f"Each variant against the baseline `{baseline}`: the difference of mean final "
        "validation losses and the verdict of a 95% t interval of the difference, paired by "
        "seed where both ran the seed (same initial weights and data order), Welch otherwise.",
        "",
        *comparison_table(variants, baseline),
        "",
    ]
    if fe is not None and baseline != fe:
        lines += [f"Each variant against `{fe}`:", ""]
        lines += [*comparison_table(variants, fe), ""]
    if all(r.test is not None for runs in variants.values() for r in runs):
        lines += [
            "On the test blocks (held-out positions no choice was made on; the mean over "
            "their draws), each variant against the baseline:",
            "",
            *comparison_table(variants, baseline, "final test loss", test_by_seed),
            "",
        ]
    return lines


def reevaluation_section(
    variants: dict[str, list[Run]], baseline: str, fe: str | None
) -> list[str]:
    """Tables of ``femlm evaluate`` losses (same positions, other input replacement)."""
    tags = sorted({t for runs in variants.values() for r in runs for t in r.reevals})
    lines = []
    for tag in tags:
        e = next(r.reevals[tag] for rs in variants.values() for r in rs if tag in r.reevals)
        rescored = {
            name: [Run(r.seed, [(0, r.reevals[tag]["eval_loss"], math.nan)], None) for r in runs]
            for name, runs in variants.items()
            if all(tag in r.reevals for r in runs)
        }
        if baseline not in rescored:
            continue
        lines += [
            f"The same {e['sequences']} validation sequences and positions, re-scored by "
            f"`femlm evaluate` with {e['mask_prob']:.0%} `[MASK]` and {e['random_prob']:.0%} "
            "random tokens at the predicted positions (the rest kept):",
            "",
            *comparison_table(rescored, baseline, "re-scored val loss"),
            "",
        ]
        if fe in rescored and baseline != fe:
            lines += [*comparison_table(rescored, fe, "re-scored val loss"), ""]
    return lines


def eval_note(folder: Path) -> list[str]:
    """How the validation positions were shown to the model (from a run's saved config)."""
    cfg = first_saved_config(folder)
    if not cfg:
        return []
    # Runs saved before these keys existed were scored with 80/10/10 inputs.
    m, r = cfg.get("eval_mask_prob", 0.8), cfg.get("eval_random_prob", 0.1)
    lines = [
        f"Validation: {cfg.get('eval_sequences')} sequences, fixed random positions at rate "
        f"{cfg.get('eval_rate')}; inputs there {m:.0%} `[MASK]`, {r:.0%} random, "
        f"{1 - m - r:.0%} kept.",
    ]
    if m + r < 1:
        lines[0] += (
            " A model can copy the kept tokens, which the unigram baseline cannot, so these "
            "curves fall below that line sooner than the model learns to predict hidden "
            "tokens (`femlm evaluate` re-scores with all `[MASK]`)."
        )
    return [*lines, ""]


def claims_table(
    variants: dict[str, list[Run]], baseline: str, eff: dict, who: Roles, standard: bool = True
) -> list[str]:
    """``standard``: the baseline is standard masking (else the claim names it)."""
    fe = who.fe
    lines = ["| claim of the paper | what we measured | verdict |", "|---|---|---|"]
    if fe is None:
        return lines + ["| (no fully-explored variant in this experiment) | | |"]
    than = "standard random masking" if standard else f"`{baseline}`"
    for other, claim in ((baseline, f"FE trains more efficiently than {than} at equal compute"),
                         (who.random_k, "FE beats independent random views of the same sequences")):  # fmt: skip
        if other is None or other not in variants or other == fe:
            continue
        a, b = eff[fe]["final"], eff[other]["final"]
        verdict = CLAIM_VERDICTS[compare(finals(variants[fe]), finals(variants[other]))]
        lines.append(
            f"| {claim} | final val loss {fe} {fmt(a, 4)} vs {other} {fmt(b, 4)} | {verdict} |"
        )
    lines += variance_claims(variants[fe], fe)
    if baseline != fe:
        lines += downstream_claims(variants, fe, baseline)
    return lines


def write_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.md`` and its plots into ``out`` (default: the experiment folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FemlmError(f"no such experiment folder: {folder}")
    out = Path(out) if out else folder
    out.mkdir(parents=True, exist_ok=True)
    variants = load_runs(folder)
    config = read_config(folder)
    baseline = pick_baseline(config, variants)
    who = roles(config, variants, baseline)
    eff_lines, eff = efficiency_table(variants, baseline)
    plots = [plot_curves(variants, out, "steps"), plot_curves(variants, out, "seconds")]
    unigram = next((r.unigram for runs in variants.values() for r in runs if r.unigram), None)
    md = [f"# Report: {folder.name}", ""]
    if unigram:
        md += [f"Unigram baseline (eval targets from training token frequencies): {unigram:.4f}"]
    md += ["", *eval_note(folder), *compute_note(folder, variants), *precision_note(folder)]
    md += unfinished_note(folder)
    md += ["## Efficiency", "", *eff_lines, ""]
    md += [f"![validation loss vs steps]({plots[0].name})", ""]
    md += [f"![validation loss vs time]({plots[1].name})", ""]
    if config.get("tuning"):
        md += ["## Tuned against tuned", "", *tuned_section(config, variants, folder), ""]
    md += ["## Every comparison", "", *comparisons_section(variants, baseline, who.fe)]
    md += [*pairs_section(config, variants), ""]
    md += ["## Ablations", "", *ablation_section(variants, baseline, config, out)]
    if rescored := reevaluation_section(variants, baseline, who.fe):
        md += ["## Re-evaluation with another replacement policy", "", *rescored]
    md += ["## Downstream", "", *downstream_table(variants, folder), ""]
    if probes := probe_table(variants, folder):
        md += ["### Linear probes (frozen encoders)", "", *probes, ""]
    md += ["## Gradient variance", "", *variance_section(variants, folder, out), ""]
    over_steps = plot_variance_steps(variants, out)
    if over_steps:
        md += ["Variance terms during training (`--variance-every`):", ""]
        md += [f"![variance vs steps]({over_steps.name})", ""]
    md += ["## Does the variance predict the outcome?", "", *ranking_check(folder, variants), ""]
    standard = variant_spec(config, baseline).is_standard
    md += ["## Claims", "", *claims_table(variants, baseline, eff, who, standard), ""]
    md += [RULE]
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path


def summary(folder: str | Path) -> str:
    """A short table for the terminal: final validation loss per variant."""
    variants = load_runs(Path(folder))
    rows = [f"{'variant':28s} {'final val loss (mean ± std over seeds)':40s}"]
    rows += [f"{name:28s} {fmt([r.final for r in runs], 4)}" for name, runs in variants.items()]
    return "\n".join(rows + unfinished_note(Path(folder))[:1])
