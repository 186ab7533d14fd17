"""A grid's small files, carried in a folder that outlives the machine.

A run's record is small (its config, metrics, timing, variance and task results);
its weights are not. Publishing copies the record beside a report (and into git);
restoring copies published finished runs back into a runs folder, so that
``femlm experiment`` skips them on a new machine. A restored run's ``final/`` holds
a marker instead of weights: a later step that needs its model must train it again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from femlm.runs import ExperimentDir, RunDir

SMALL = ("femlm_config.json", "metrics.jsonl", "timing.json", "variance.json")
NO_WEIGHTS = "WEIGHTS-NOT-COMMITTED"
# an experiment's references: the recipe on the untrained preset and on the warm starts
# (with the starts' fingerprints), and reference probes
REFERENCES = ("random-init-finetune-*.json", "start-seed*-finetune-*.json", "probe-*.json")
REFERENCES += ("start-fingerprints.json",)


def publish_run(run: RunDir, target: RunDir) -> int:
    """Copy ``run``'s small files into ``target``; return how many files were copied."""
    target.root.mkdir(parents=True, exist_ok=True)
    copied = 0
    small = [*(run.root / n for n in SMALL), *run.finetune_results().values()]
    for f in [*small, *run.probe_results().values()]:
        if f.is_file():
            shutil.copyfile(f, target.root / f.name)
            copied += 1
    for png in sorted(run.variance_dir.glob("*.png")):
        (target.root / "variance").mkdir(exist_ok=True)
        shutil.copyfile(png, target.root / "variance" / png.name)
    if run.finished:
        target.final.mkdir(exist_ok=True)  # finished; the weights stay out of git
        (target.final / NO_WEIGHTS).write_text("see femlm_config.json\n")
    return copied


def publish_runs(src: str | Path, dest: str | Path, finished_only: bool = False) -> int:
    """Copy an experiment's ``experiment.json``, references and every run's small files
    (only finished runs with ``finished_only``); return how many files were copied."""
    src, dest = Path(src), Path(dest)
    exp = ExperimentDir(src)
    dest.mkdir(parents=True, exist_ok=True)
    if exp.spec.is_file():
        shutil.copyfile(exp.spec, ExperimentDir(dest).spec)
    copied = 0
    for reference in sorted(f for pattern in REFERENCES for f in src.glob(pattern)):
        shutil.copyfile(reference, dest / reference.name)
        copied += 1
    for variant, run in exp.runs():
        if not finished_only or run.finished:
            copied += publish_run(run, ExperimentDir(dest).run(variant, run.seed))
    return copied


def restore_runs(published: str | Path, runs_dir: str | Path) -> list[str]:
    """Copy every finished run of ``published`` into ``runs_dir`` where that run is
    absent (a run already there is never touched); return the runs copied."""
    restored = []
    for variant, run in ExperimentDir(published).runs():
        target = ExperimentDir(runs_dir).run(variant, run.seed).root
        if run.finished and not target.exists():
            shutil.copytree(run.root, target)
            restored.append(f"{variant}/seed-{run.seed}")
    return restored
