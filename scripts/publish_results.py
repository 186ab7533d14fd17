"""Copy an experiment's small per-run files beside its report, so every number traces.

    python scripts/publish_results.py runs/rotary-scratch docs/results/rotary-scratch

copies ``experiment.json`` and, for every ``<variant>/seed-<s>/`` run, its
``femlm_config.json``, ``metrics.jsonl``, ``timing.json``, ``variance.json`` and
``finetune-*.json`` and ``probe-*.json`` (never weights), and the experiment's
references (``random-init-finetune-<task>.json``, ``probe-*.json``), then writes ``report.md`` and its plots with
``femlm report``. With ``--presets`` it also writes ``table.md`` and
``table.json``: per preset, the steps to 0.3 and 1.0 nats below the unigram
baseline and the training throughput, over seeds.

Grids that outlive a session (docs/protocol.md) are carried in git this way:
``--finished-only --no-report`` after each run, and ``--restore`` at the start of
the next session, which copies the published finished runs back into the runs
folder (never over a run that is there) so that `femlm experiment` skips them.

    python scripts/publish_results.py runs/tuned-tapt docs/results/tuned-tapt --finished-only --no-report
    python scripts/publish_results.py --restore docs/results/tuned-tapt runs/tuned-tapt
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from femlm.report.runs import load_runs  # noqa: E402
from femlm.report.stats import steps_to_reach  # noqa: E402
from femlm.report.writer import write_report  # noqa: E402
from femlm.runs import ExperimentDir, read_metrics  # noqa: E402

SMALL = ("femlm_config.json", "metrics.jsonl", "timing.json", "variance.json")


def copy_runs(src: Path, dest: Path, finished_only: bool = False) -> int:
    exp = ExperimentDir(src)
    dest.mkdir(parents=True, exist_ok=True)
    if exp.spec.is_file():
        shutil.copyfile(exp.spec, ExperimentDir(dest).spec)
    copied = 0
    references = [*src.glob("random-init-finetune-*.json"), *src.glob("probe-*.json")]
    for reference in sorted(references):
        shutil.copyfile(reference, dest / reference.name)
        copied += 1
    for variant, run in exp.runs():
        if finished_only and not run.finished:
            continue
        target = ExperimentDir(dest).run(variant, run.seed).root
        target.mkdir(parents=True, exist_ok=True)
        small = [*(run.root / n for n in SMALL), *run.finetune_results().values()]
        for f in [*small, *run.probe_results().values()]:
            if f.is_file():
                shutil.copyfile(f, target / f.name)
                copied += 1
        for png in sorted(run.variance_dir.glob("*.png")):
            (target / "variance").mkdir(exist_ok=True)
            shutil.copyfile(png, target / "variance" / png.name)
        if run.finished:
            (target / "final").mkdir(exist_ok=True)  # finished; the weights stay out of git
            (target / "final" / "WEIGHTS-NOT-COMMITTED").write_text("see femlm_config.json\n")
    return copied


def restore_runs(published: Path, runs_dir: Path) -> list[str]:
    """Copy every finished run of ``published`` into ``runs_dir`` where that run is
    absent; return the runs copied. Their ``final/`` holds no weights, so a later
    stage that needs a restored run's model must train it again (remove its folder)."""
    restored = []
    for variant, run in ExperimentDir(published).runs():
        target = ExperimentDir(runs_dir).run(variant, run.seed).root
        if run.finished and not target.exists():
            shutil.copytree(run.root, target)
            restored.append(f"{variant}/seed-{run.seed}")
    return restored


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
        "--finished-only", action="store_true", help="copy only runs that wrote final/"
    )
    parser.add_argument("--no-report", action="store_true", help="copy the files only")
    parser.add_argument(
        "--restore", action="store_true",
        help="the other way: copy RUNS_DIR's finished runs into DEST where absent",
    )  # fmt: skip
    parser.add_argument(
        "--pair", nargs=2, action="append", default=[], metavar=("A", "B"),
        help="also write A minus B at every evaluation step (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.restore:
        restored = restore_runs(args.runs_dir, args.dest)
        print(f"restored {len(restored)} finished runs into {args.dest}")
        return
    print(f"copied {copy_runs(args.runs_dir, args.dest, args.finished_only)} files")
    if not args.no_report:
        print(f"report: {write_report(args.dest)}")
    if args.presets:
        preset_table(args.runs_dir, args.dest)
        print(f"table: {args.dest / 'table.md'}")
    for a, b in args.pair:
        print(f"pair: {pair_by_evaluation(args.dest, a, b)}")


if __name__ == "__main__":
    main()
