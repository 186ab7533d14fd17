"""The demo's last screen: what a person reads in 30 seconds, from the run folders.

Every number comes from the report's own sources (``metrics.jsonl``,
``variance.json``, fine-tuning JSONs) and every verdict from the report's rule
(:mod:`femlm.report.stats`), so the screen and ``report.md`` cannot disagree.
"""

from __future__ import annotations

from pathlib import Path

from femlm.finetune.results import FinetuneResult
from femlm.report.pairs import Roles, roles
from femlm.report.runs import Run, load_runs, pick_baseline, read_config, variant_spec
from femlm.report.stats import finals, mean_std, t_test
from femlm.report.variance import step_variance
from femlm.runs import ExperimentDir

WORDS = {"lower": "better", "higher": "worse", "tie": "no difference beyond noise"}


def _verdict(variants: dict[str, list[Run]], a: str, b: str) -> str:
    if a not in variants or b not in variants:
        return ""
    v = t_test(finals(variants[a]), finals(variants[b]))
    return f"{a} vs {b}: {WORDS[v.outcome]} ({v.text()})"


def _variance_lines(variants: dict[str, list[Run]], cfg: dict, who: Roles) -> list[str]:
    probed = next((r for r in variants.get(who.fe or "", []) if r.variance), None)
    if probed is None:
        return []
    result = probed.variance
    lines = []
    fe = result.terms(variant_spec(cfg, who.fe).strategy)
    if fe is not None:
        lines.append(
            f"mask variance, {who.fe} / independent views (seed {probed.seed}): "
            f"{fe.ratio.show()}: disjoint masks {'cut' if fe.ratio.high < 1 else 'did not surely cut'} the mask noise"
        )
    implied = {
        name: e.value
        for name in variants
        if name in (cfg.get("runs") or {})
        and (e := step_variance(result, variant_spec(cfg, name))) is not None
    }
    if len(implied) >= 2:
        predicted = sorted(implied, key=implied.get)
        measured = sorted(implied, key=lambda n: mean_std([r.final for r in variants[n]])[0])
        same = "the same order" if predicted == measured else "a different order"
        lines.append(
            f"equal-compute prediction, lowest step variance first: {', '.join(predicted)}; "
            f"measured, lowest loss first: {', '.join(measured)} ({same})"
        )
    return lines


def _downstream(folder: Path, reference: Path | None) -> list[str]:
    tuned = [
        (variant, run, path)
        for variant, run in ExperimentDir(folder).runs()
        for path in run.finetune_results().values()
    ]
    if not tuned or reference is None or not reference.is_file():
        return []
    variant, run, path = tuned[0]
    a, b = FinetuneResult.load(path), FinetuneResult.load(reference)
    metric = a.metric
    who = f"{variant} seed {run.seed}"
    return [
        f"downstream ({a.task}, test {metric}, {len(a.runs)} fine-tuning seed(s)): "
        f"pre-trained ({who}) {a.test(metric).mean:.3f} vs random initialisation "
        f"{b.test(metric).mean:.3f}, same recipe"
    ]


def final_screen(folder: str | Path, reference: Path | None, report: Path) -> str:
    """A short table of final losses, the verdicts in plain words, and the report's path."""
    folder = Path(folder)
    variants = load_runs(folder)
    unigram = next((r.unigram for rs in variants.values() for r in rs if r.unigram), None)
    seeds = max(len(rs) for rs in variants.values())
    lines = [
        "",
        f"femlm demo: final hidden-token loss, mean over {seeds} seeds"
        + (f" (unigram baseline {unigram:.3f})" if unigram else ""),
    ]
    for name, runs in sorted(
        variants.items(), key=lambda kv: mean_std([r.final for r in kv[1]])[0]
    ):
        m, s = mean_std([r.final for r in runs])
        lines.append(f"  {name:<16} {m:.4f} ± {s:.4f}")
    if unigram and "standard" in variants:
        gap = unigram - mean_std([r.final for r in variants["standard"]])[0]
        lines.append(
            f"  standard masking ends {gap:.2f} nats below the unigram baseline: "
            + (
                "the models use context"
                if gap >= 0.3
                else "still near the plateau, so the verdicts say little"
            )
        )
    cfg = read_config(folder)
    who = roles(cfg, variants, pick_baseline(cfg, variants))
    lines += ["", "verdicts (paired t-test over seeds; few seeds settle little):"]
    for a, b in ((who.fe, pick_baseline(cfg, variants)), (who.fe, who.random_k)):
        if a and b and (text := _verdict(variants, a, b)):
            lines.append(f"  {text}")
    lines += [
        f"  {x}" for x in _variance_lines(variants, cfg, who) + _downstream(folder, reference)
    ]
    lines += ["", f"report with plots: {report}", "5-seed verdicts: docs/results.md"]
    return "\n".join(lines)
