"""The downstream parts of ``femlm report``: fine-tuning scores per variant, the
random-initialisation reference when the experiment folder holds one, and the
claims about them."""

from __future__ import annotations

import statistics
from pathlib import Path

from femlm.finetune.results import FinetuneResult, ProbeResult, SeedRun
from femlm.report.runs import Run
from femlm.report.stats import CLAIM_VERDICTS, Verdict, fmt, mean_std, t_test
from femlm.runs import ExperimentDir

METRIC_NAMES = {"accuracy": "test accuracy", "macro_f1": "test macro-F1"}


def chosen_metric(runs: list[Run], task: str) -> str:
    """The metric that chose the learning rate and epoch (accuracy in files that
    predate the setting)."""
    found = {r.finetune[task].metric for r in runs if task in r.finetune}
    return found.pop() if len(found) == 1 else "accuracy"


def _seed_scores(runs: list[Run], task: str, metric: str) -> dict[int, float]:
    """Test score per pre-training seed, the mean over its fine-tuning seeds."""
    found = {r.seed: r.finetune[task].runs for r in runs if task in r.finetune}
    return {s: statistics.fmean(x.test(metric) for x in xs) for s, xs in found.items() if xs}


def _chosen_lrs(runs: list[Run], task: str) -> str:
    lrs = sorted({r.finetune[task].lr for r in runs if task in r.finetune and r.finetune[task].lr})
    return ", ".join(f"{lr:.0e}" for lr in lrs) or "—"


def _tasks(variants: dict[str, list[Run]]) -> list[str]:
    return sorted({t for runs in variants.values() for r in runs for t in r.finetune})


def _row(name: str, task: str, seeds: list[SeedRun], lrs: str) -> str:
    acc = [x.test_accuracy for x in seeds]
    f1 = [x.test_macro_f1 for x in seeds]
    known = [x.collapsed for x in seeds if x.collapsed is not None]
    collapsed = f"{sum(known)} of {len(known)}" if known else "not recorded"
    return f"| {name} | {task} | {fmt(acc)} | {fmt(f1)} | {lrs} | {collapsed} |"


def _references(folder: Path | None, task: str) -> list[tuple[str, Path]]:
    """``(label, path)`` of the recipe on the untrained model
    (``random-init-finetune-<task>.json``) and on each warm start
    (``start-seed<s>-finetune-<task>.json``), those present."""
    if not folder:
        return []
    found = [("random initialisation", ExperimentDir(folder).random_init_finetune(task))]
    for path in sorted(Path(folder).glob(f"start-seed*-finetune-{task}.json")):
        found.append((path.name.split("-finetune-")[0].replace("-", " "), path))
    return [(label, path) for label, path in found if path.is_file()]


def _reference_tasks(folder: Path | None) -> set[str]:
    """Tasks of the folder's fine-tuning references, shown even before any variant's."""
    names = sorted(Path(folder).glob("*-finetune-*.json")) if folder else []
    return {p.stem.split("-finetune-")[1] for p in names}


def downstream_table(variants: dict[str, list[Run]], folder: Path | None = None) -> list[str]:
    tasks = sorted(set(_tasks(variants)) | _reference_tasks(folder))
    if not tasks:
        return ["No fine-tuning results."]
    lines = [
        "| variant | task | test accuracy | test macro-F1 | lr (chosen on dev) | collapsed |",
        "|---|---|---|---|---|---|",
    ]
    references = []
    for task in tasks:
        for name, runs in variants.items():
            seeds = [x for r in runs if task in r.finetune for x in r.finetune[task].runs]
            if seeds:
                lines.append(_row(name, task, seeds, _chosen_lrs(runs, task)))
        for label, path in _references(folder, task):
            ref = FinetuneResult.load(path)
            lines.append(_row(label, task, ref.runs, f"{ref.lr:.0e}"))
            references.append(path.name)
    lines += ["", "Spread is over all (pre-training seed, fine-tuning seed) pairs."]
    if references:
        kinds = ["the untrained preset (one initialisation per fine-tuning seed)"]
        kinds = kinds if any(r.startswith("random-init") for r in references) else []
        kinds += ["the warm starts"] if any(r.startswith("start-") for r in references) else []
        lines += [
            f"References: the same recipe on {' and '.join(kinds)} ({', '.join(references)})."
        ]
    return lines


def downstream_claims(variants: dict[str, list[Run]], fe: str, baseline: str) -> list[str]:
    """FE vs baseline on the metric that chose the recipe, one value per pre-training seed.

    Fine-tuning seeds of one pre-trained model are averaged first: they share
    that model, so counting them as independent would understate the noise.
    """
    lines = []
    for task in _tasks(variants):
        metric = chosen_metric(variants[fe] + variants[baseline], task)
        a = _seed_scores(variants[fe], task, metric)
        b = _seed_scores(variants[baseline], task, metric)
        if not a or not b:
            continue
        verdict = t_test(b, a)  # higher is better: baseline lower than FE is FE's win
        lines.append(
            f"| FE pre-training helps downstream ({task}) | {METRIC_NAMES[metric]} per "
            f"pre-training seed (mean over fine-tuning seeds) {fe} {fmt(list(a.values()))} vs "
            f"{baseline} {fmt(list(b.values()))}; {baseline} minus {fe} {verdict.text()} "
            f"| {CLAIM_VERDICTS[verdict.outcome]} |"
        )
    return lines


def probe_table(variants: dict[str, list[Run]], folder: Path | None = None) -> list[str]:
    """Linear probes (frozen encoders) per variant, then any reference probe the
    experiment folder holds (``probe-*.json``: an untrained preset, a start)."""
    rows = []
    tasks = sorted({t for runs in variants.values() for r in runs for t in r.probes})
    for task in tasks:
        for name, runs in variants.items():
            found = [x for r in runs if task in r.probes for x in r.probes[task].runs]
            if found:
                rows.append(_probe_row(f"{name} ({len(found)} seeds)", task, found))
    for path in sorted(Path(folder).glob("probe-*.json")) if folder else []:
        ref = ProbeResult.load(path)
        rows.append(_probe_row(f"{path.stem} ({len(ref.runs)} runs)", ref.task, ref.runs))
    if not rows:
        return []
    head = ["| model | task | test accuracy | test macro-F1 | L2 (chosen on dev) | collapsed |"]
    head.append("|---|---|---|---|---|---|")
    return [*head, *rows, "", "Spread is over pre-training seeds (or initialisation seeds)."]


def _probe_row(name: str, task: str, runs: list) -> str:
    acc = [x.test_accuracy for x in runs]
    f1 = [x.test_macro_f1 for x in runs]
    l2 = ", ".join(f"{v:g}" for v in sorted({x.l2 for x in runs}))
    collapsed = sum(bool(x.collapsed) for x in runs)
    return f"| {name} | {task} | {fmt(acc)} | {fmt(f1)} | {l2} | {collapsed} of {len(runs)} |"


# Keyed by a Verdict's outcome for (a - b) where higher scores are better.
HIGHER_BETTER = {"higher": "higher (better)", "lower": "lower (worse)", "tie": "tie within noise"}


def _unit_scores(runs: list[Run], task: str, kind: str) -> dict[int, float]:
    """Test macro-F1 per pre-training unit: its probe, or the mean over its fine-tuning
    seeds (they share one pre-trained model, so they are not independent)."""
    if kind == "probe":
        found = {r.seed: r.probes[task].runs for r in runs if task in r.probes}
    else:
        found = {r.seed: r.finetune[task].runs for r in runs if task in r.finetune}
    return {s: statistics.fmean(x.test_macro_f1 for x in xs) for s, xs in found.items() if xs}


def _reference_scores(
    folder: Path, task: str, kind: str, n_starts: int
) -> tuple[dict[int, float], list[float]]:
    """(``{start: score}`` of the warm starts, the untrained preset's score per
    initialisation seed) from the folder's reference files; empty where one is missing."""
    load = ProbeResult.load if kind == "probe" else FinetuneResult.load
    name = "probe-start-seed{}-{}.json" if kind == "probe" else "start-seed{}-finetune-{}.json"
    starts = {}
    for s in range(n_starts):
        if (path := folder / name.format(s, task)).is_file():
            starts[s] = statistics.fmean(x.test_macro_f1 for x in load(path).runs)
    untrained = (
        folder / f"probe-random-init-{task}.json"
        if kind == "probe"
        else ExperimentDir(folder).random_init_finetune(task)
    )
    init = [x.test_macro_f1 for x in load(untrained).runs] if untrained.is_file() else []
    return starts, init


def best_downstream(
    best: dict[str, str],
    variants: dict[str, list[Run]],
    folder: Path | None,
    n_starts: int,
    planned: dict[str, list[int] | None] | None = None,
) -> list[str]:
    """Stage F's verdicts (docs/protocol.md): the other arm's best minus standard's best in
    test macro-F1, paired over pre-training units; then each best against the start
    each of its units began from (paired by unit) and against the untrained preset
    (Welch over its initialisation seeds). ``planned``: the units each kind (``probe``,
    ``finetune``) is to run on; while some have not, a row is interim, not a verdict."""
    others = [a for a in best if a != "standard"]
    if "standard" not in best or not others:
        return []
    lines = [
        "Downstream, best against best (stage F; test macro-F1, higher is better; a "
        "difference is the paired mean over pre-training units ± its 95% half-width):",
        "",
        "| measure | task | arm's best | standard's best | arm minus standard | verdict |",
        "|---|---|---|---|---|---|",
    ]
    refs = []
    for kind, label in (("probe", "linear probe"), ("finetune", "fine-tuning, mean of its seeds")):
        for task in sorted({t for rs in variants.values() for r in rs for t in _tasks_of(r, kind)}):
            std = _unit_scores(variants[best["standard"]], task, kind)
            for arm in others:
                mine = _unit_scores(variants[best[arm]], task, kind)
                if len(set(mine) & set(std)) < 2:
                    continue
                t = t_test(mine, std)
                units = (planned or {}).get(kind) or []
                done = len(set(mine) & set(std) & set(units))
                verdict = (
                    f"interim ({done} of {len(units)} units): no verdict"
                    if done < len(units)
                    else HIGHER_BETTER[t.outcome]
                )
                lines.append(
                    f"| {label} | {task} | {arm} {fmt(list(mine.values()))} | "
                    f"{fmt(list(std.values()))} | {t.text()} | {verdict} |"
                )
            if folder:
                refs += _against_references(best, variants, Path(folder), task, kind, n_starts)
    if len(lines) == 4:
        return []
    if refs:
        lines += ["", "| measure | task | model | minus its start (paired by unit) | "
                  "minus random initialisation (Welch) |", "|---|---|---|---|---|", *refs]  # fmt: skip
    return lines


def _tasks_of(run: Run, kind: str) -> list[str]:
    return list(run.probes if kind == "probe" else run.finetune)


def _against_references(
    best: dict[str, str], variants: dict, folder: Path, task: str, kind: str, n_starts: int
) -> list[str]:
    starts, init = _reference_scores(folder, task, kind, n_starts)
    rows = []
    for arm, name in best.items():
        mine = _unit_scores(variants[name], task, kind)
        if not mine or not (starts or init):
            continue
        from_start = {
            u: v - starts[u % n_starts] for u, v in mine.items() if u % n_starts in starts
        }
        gain = t_test(from_start, dict.fromkeys(from_start, 0.0)).text() if from_start else "—"
        vs_init = "—"
        if len(init) > 1 and len(mine) > 1:  # different models, nothing to pair by
            vs_init = Verdict.welch(*mean_std(list(mine.values())), len(mine),
                                    *mean_std(init), len(init)).text()  # fmt: skip
        what = "linear probe" if kind == "probe" else "fine-tuning"
        rows.append(f"| {what} | {task} | {arm} `{name}` | {gain} | {vs_init} |")
    return rows
