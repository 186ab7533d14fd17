"""Copy an experiment's small per-run files beside its report, so every number traces.

    python scripts/publish_results.py runs/rotary-scratch docs/results/rotary-scratch

copies ``experiment.json`` and, for every ``<variant>/seed-<s>/`` run, its
``femlm_config.json``, ``metrics.jsonl``, ``timing.json``, ``variance.json`` and
``finetune-*.json`` and ``probe-*.json`` (never weights), and the experiment's
references (``femlm.experiments.carry.REFERENCES``), then writes ``report.md`` and its plots with
``femlm report``. With ``--presets`` it also writes ``table.md`` and
``table.json``: per preset, the steps to 0.3 and 1.0 nats below the unigram
baseline and the training throughput, over seeds.

A grid that outlives a machine publishes each run as it finishes with
``femlm experiment CONFIG --carry docs/results/NAME`` (femlm.experiments.carry),
which also restores them on the next machine; this script then writes the report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from femlm.experiments.carry import publish_runs  # noqa: E402
from femlm.report.runs import load_runs  # noqa: E402
from femlm.report.stats import steps_to_reach  # noqa: E402
from femlm.report.writer import write_report  # noqa: E402
from femlm.runs import ExperimentDir, read_metrics  # noqa: E402


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "not reached"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.0f} ± {sd:.0f}"


def preset_table(src: Path, dest: Path) -> None:
    rows, numbers = [], {}
    for name, runs in load_runs(src).items():
        per_seed = []
        for r in runs:
            metrics, _ = read_metrics(ExperimentDir(src).run(name, r.seed).metrics)
            speed = statistics.median(m["tokens_per_s"] for m in metrics if "tokens_per_s" in m)
            at = {step: loss for step, loss, _ in r.evals}
            per_seed.append({
                "seed": r.seed, "unigram": r.unigram, "tokens_per_s": speed,
                "steps_to_0.3": steps_to_reach(r.evals, r.unigram - 0.3),
                "steps_to_1.0": steps_to_reach(r.evals, r.unigram - 1.0),
                **{f"loss_at_{s}": at.get(s) for s in (250, 500, 750, 1000)},
            })  # fmt: skip
        numbers[name] = per_seed

        def col(key: str, seeds: list[dict] = per_seed) -> list[float]:
            return [s[key] for s in seeds if s[key] is not None]

        reached = {k: f"{len(col(k))}/{len(per_seed)}" for k in ("steps_to_0.3", "steps_to_1.0")}
        losses = " | ".join(f"{statistics.fmean(col(f'loss_at_{s}')):.3f}" if col(f"loss_at_{s}") else "—" for s in (250, 500, 750, 1000))  # fmt: skip
        rows.append(
            f"| {name} | {statistics.fmean(col('unigram')):.3f} | {losses} | "
            f"{_mean_sd(col('steps_to_0.3'))} ({reached['steps_to_0.3']}) | "
            f"{_mean_sd(col('steps_to_1.0'))} ({reached['steps_to_1.0']}) | "
            f"{statistics.fmean(col('tokens_per_s')) / 1000:.1f}k |"
        )
    head = [
        "| preset | unigram baseline | loss at step 250 | 500 | 750 | 1000 | steps to 0.3 below (seeds reaching) | steps to 1.0 below | tokens/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    (dest / "table.md").write_text("\n".join(head + rows) + "\n")
    (dest / "table.json").write_text(json.dumps(numbers, indent=2) + "\n")


def pair_by_evaluation(dest: Path, a: str, b: str) -> Path:
    """``pair-A-vs-B.md``: the paired difference of A and B at every evaluation step both
    ran, with the report's rule, to show when a difference appears."""
    from femlm.report.stats import t_test

    variants = load_runs(dest)
    at = {
        name: {r.seed: {step: loss for step, loss, _ in r.evals} for r in variants[name]}
        for name in (a, b)
    }
    steps = sorted(set.intersection(*(set(e) for runs in at.values() for e in runs.values())))
    lines = [f"# {a} minus {b}, by evaluation step", "",
             "| step | difference ± 95% interval (test), seeds lower |", "|---|---|"]  # fmt: skip
    for step in steps:
        diff = t_test(
            {s: e[step] for s, e in at[a].items()}, {s: e[step] for s, e in at[b].items()}
        )
        lines.append(f"| {step} | {diff.text()} |")
    out = dest / f"pair-{a}-vs-{b}.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--presets", action="store_true", help="also write the preset table")
    parser.add_argument(
        "--pair", nargs=2, action="append", default=[], metavar=("A", "B"),
        help="also write A minus B at every evaluation step (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    print(f"copied {publish_runs(args.runs_dir, args.dest)} files")
    print(f"report: {write_report(args.dest)}")
    if args.presets:
        preset_table(args.runs_dir, args.dest)
        print(f"table: {args.dest / 'table.md'}")
    for a, b in args.pair:
        print(f"pair: {pair_by_evaluation(args.dest, a, b)}")


if __name__ == "__main__":
    main()
