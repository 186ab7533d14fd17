"""The downstream parts of ``femlm report``: fine-tuning accuracy per variant
and the claims about it."""

from __future__ import annotations

import statistics

from femlm.report.runs import Run
from femlm.report.stats import CLAIM_VERDICTS, compare, fmt


def _seed_accuracies(runs: list[Run], task: str) -> dict[int, float]:
    """Test accuracy per pre-training seed, the mean over its fine-tuning seeds."""
    found = {r.seed: r.finetune[task].get("runs", []) for r in runs if task in r.finetune}
    return {s: statistics.fmean(x["test_accuracy"] for x in xs) for s, xs in found.items() if xs}


def _chosen_lrs(runs: list[Run], task: str) -> str:
    lrs = sorted({r.finetune[task]["lr"] for r in runs if r.finetune.get(task, {}).get("lr")})
    return ", ".join(f"{lr:.0e}" for lr in lrs) or "—"


def downstream_table(variants: dict[str, list[Run]]) -> list[str]:
    tasks = sorted({t for runs in variants.values() for r in runs for t in r.finetune})
    if not tasks:
        return ["No fine-tuning results."]
    lines = [
        "| variant | task | test accuracy | test macro-F1 | lr (chosen on dev) |",
        "|---|---|---|---|---|",
    ]
    for name, runs in variants.items():
        for task in tasks:
            acc, f1 = [], []
            for r in runs:
                for seed in r.finetune.get(task, {}).get("runs", []):
                    acc.append(seed["test_accuracy"])
                    f1.append(seed["test_macro_f1"])
            if acc:
                lines.append(
                    f"| {name} | {task} | {fmt(acc)} | {fmt(f1)} | {_chosen_lrs(runs, task)} |"
                )
    lines += ["", "Spread is over all (pre-training seed, fine-tuning seed) pairs."]
    return lines


def downstream_claims(variants: dict[str, list[Run]], fe: str, baseline: str) -> list[str]:
    """FE vs baseline test accuracy per task, one value per pre-training seed.

    Fine-tuning seeds of one pre-trained model are averaged first: they share
    that model, so counting them as independent would understate the noise.
    """
    lines = []
    tasks = sorted({t for runs in variants.values() for r in runs for t in r.finetune})
    for task in tasks:
        a, b = _seed_accuracies(variants[fe], task), _seed_accuracies(variants[baseline], task)
        # Higher accuracy is better: baseline lower than FE is FE's win.
        verdict = CLAIM_VERDICTS[compare(b, a)]
        lines.append(
            f"| FE pre-training helps downstream ({task}) | test accuracy per pre-training seed "
            f"(mean over fine-tuning seeds) {fe} {fmt(list(a.values()))} vs {baseline} "
            f"{fmt(list(b.values()))} | {verdict} |"
        )
    return lines
