"""The demo's last screen: what a person reads in 30 seconds, from the run folders.

One block per act and one for downstream, then the reports' paths. Every number
comes from the reports' own sources (``metrics.jsonl``, ``variance.json``, the
probes' JSONs) and every verdict from the report's rule
(:mod:`femlm.report.stats`), so the screen and ``report.md`` cannot disagree.
"""

from __future__ import annotations

from pathlib import Path

from femlm.finetune.results import ProbeResult, collapse_note
from femlm.report.pairs import roles
from femlm.report.runs import Run, load_runs, pick_baseline, read_config, variant_spec
from femlm.report.stats import Verdict, finals, mean_std, t_test
from femlm.report.tuning import arms, test_by_seed

# t_test(a, b).outcome is a's side of b; for a loss lower is better, for a score higher.
LOSS_WORDS = {"lower": "better", "higher": "worse", "tie": "no difference beyond noise"}
SCORE_WORDS = {"higher": "better", "lower": "worse", "tie": "no difference beyond noise"}


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _mean(runs: list[Run], value=lambda r: r.final) -> float:
    return mean_std([value(r) for r in runs])[0]


def act1_lines(folder: Path) -> list[str]:
    """Within a step: final dev losses, FE against the baseline, the variance ratio."""
    variants = load_runs(folder)
    cfg = read_config(folder)
    baseline = pick_baseline(cfg, variants)
    who = roles(cfg, variants, baseline)
    seeds = max(len(rs) for rs in variants.values())
    unigram = next((r.unigram for rs in variants.values() for r in rs if r.unigram), None)
    order = sorted(variants, key=lambda n: _mean(variants[n]))
    losses = ", ".join(f"{n} {_mean(variants[n]):.3f}" for n in order)
    head = f"act 1, within a step (the paper): BBC News, {_count(seeds, 'seed')}, equal compute"
    lines = [head, f"  hidden-token loss {losses}"]
    if unigram and baseline in variants:
        gap = unigram - _mean(variants[baseline])
        side = f"{gap:.2f} below it" if gap >= 0 else f"{-gap:.2f} above it"
        past = "past the plateau" if gap >= 0.3 else "near the plateau: the verdict says little"
        lines[-1] += f"; unigram {unigram:.3f}, {baseline} {side} ({past})"
    if who.fe and who.fe in variants and baseline in variants:
        v = t_test(finals(variants[who.fe]), finals(variants[baseline]))
        if v.n < 2 or v.df == 0:
            lines.append(
                f"  {who.fe} minus {baseline}: {v.diff:+.3f} (one seed: no verdict here; "
                "the 5-seed verdicts are in docs/results.md)"
            )
        else:
            lines.append(f"  {who.fe} vs {baseline}: {LOSS_WORDS[v.outcome]} ({v.text()})")
    probed = next((r for r in variants.get(who.fe or "", []) if r.variance), None)
    if probed is not None and (fe := probed.variance.terms(variant_spec(cfg, who.fe).strategy)):
        cut = "cut" if fe.ratio.high < 1 else "did not surely cut"
        lines.append(
            f"  disjoint masks {cut} the mask variance: {fe.ratio.show()} of independent "
            "views' (one seed)"
        )
    return lines


def _arms(variants: dict[str, list[Run]], cfg: dict) -> tuple[str, str] | None:
    """(the fully-explored-epochs variant, the standard one) of act 2, by their settings."""
    found = arms(cfg, variants)
    if "fully-explored-epochs" in found and "standard" in found:
        return found["fully-explored-epochs"][0], found["standard"][0]
    return None


def act2_lines(folder: Path) -> list[str]:
    """Across epochs: fully-explored-epochs against standard on the test blocks."""
    variants = load_runs(folder)
    cfg = read_config(folder)
    pair = _arms(variants, cfg)
    if pair is None:
        return []
    fe, std = pair
    runs = variants[std]
    blocks, steps = runs[0].train_blocks, runs[0].evals[-1][0]
    rows = int(cfg["base"].get("batch_size", 0))
    seen = f", seen {steps * rows / blocks:.0f} times" if blocks and rows else ""
    rate = variant_spec(cfg, std).rate
    lines = [
        f"act 2, across epochs (femlm's finding): {blocks or '?'} movie-review blocks{seen}, "
        f"{_count(len(runs), 'seed')}, rate {rate:.3g} both, equal compute"
    ]
    a, b = test_by_seed(variants[fe]), test_by_seed(runs)
    if a and b:
        v = t_test(a, b)
        means = f"{sum(a.values()) / len(a):.3f} vs {sum(b.values()) / len(b):.3f}"
        lines.append(
            f"  {fe} vs {std}, test-block loss {means}: {LOSS_WORDS[v.outcome]} ({v.text()})"
        )
    return lines


def _probe_scores(runs: list[Run], task: str, metric: str) -> dict[int, float]:
    return {r.seed: r.probes[task].test(metric).mean for r in runs if task in r.probes}


def _higher(v: Verdict) -> str:
    """The verdict's text with its seed count said for a score, where higher is better."""
    text = v.text()
    if v.lower is not None:
        text = text.replace(f"lower in {v.lower} of {v.n}", f"higher in {v.n - v.lower} of {v.n}")
    return text


def downstream_lines(folder: Path, references: dict[str, Path]) -> list[str]:
    """The act-2 models' linear probes, paired by seed, read against the start's and
    random initialisation's (with how many initialisations collapsed to one class)."""
    variants = load_runs(folder)
    pair = _arms(variants, read_config(folder))
    probes = [p for rs in variants.values() for r in rs for p in r.probes.values()]
    if pair is None or not probes:
        return []
    task, metric = probes[0].task, probes[0].metric
    fe, std = pair
    a, b = (_probe_scores(variants[n], task, metric) for n in pair)
    if not a or not b:
        return []
    v: Verdict = t_test(a, b)
    name = metric.replace("_", "-").replace("f1", "F1")
    lines = [
        f"downstream, linear probe of the frozen encoders ({task}, test {name}):",
        f"  {fe} {sum(a.values()) / len(a):.3f} vs {std} {sum(b.values()) / len(b):.3f}: "
        f"{SCORE_WORDS[v.outcome]} ({_higher(v)})",
    ]
    refs = []
    for label, path in references.items():
        if not Path(path).is_file():
            continue
        ref = ProbeResult.load(path)
        s = ref.test(metric)
        spread = f" ± {s.std:.3f} over {len(ref.runs)} initialisations" if len(ref.runs) > 1 else ""
        note = collapse_note(ref.runs) or "none collapsed to one class"
        refs.append(f"{label} {s.mean:.3f}{spread} ({note})")
    if refs:
        lines.append("  for reference: " + "; ".join(refs))
    return lines


def final_screen(
    act1: str | Path,
    act2: str | Path,
    references: dict[str, Path],
    reports: list[Path],
    minutes: float | None = None,
) -> str:
    """Both acts' verdicts in plain words, the downstream line, the reports' paths."""
    lines = ["", *act1_lines(Path(act1)), *act2_lines(Path(act2))]
    lines += downstream_lines(Path(act2), references)
    took = f" (the demo took {minutes:.1f} minutes)" if minutes is not None else ""
    lines += ["", f"reports: {', '.join(map(str, reports))}{took}", "more: docs/results.md"]
    return "\n".join(lines)
