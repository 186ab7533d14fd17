"""Runs as the report reads them: one :class:`Run` per finished run folder of an
experiment, its variant's settings, and which variant is the baseline."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from femlm.config import TrainConfig
from femlm.errors import FemlmError
from femlm.finetune.results import FinetuneResult, ProbeResult
from femlm.masking.strategies import MaskingSpec
from femlm.runs import ExperimentDir, RunDir, read_metrics
from femlm.schema import from_dict
from femlm.variance.results import ProbeTerms, VarianceResult


@dataclass
class Run:
    seed: int
    evals: list[tuple[int, float, float]]  # (step, eval_loss, elapsed seconds)
    unigram: float | None
    finetune: dict[str, FinetuneResult] = field(default_factory=dict)
    variance: VarianceResult | None = None
    variance_steps: list[tuple[int, ProbeTerms]] = field(default_factory=list)  # --variance-every
    reevals: dict[str, dict] = field(default_factory=dict)  # `femlm evaluate` results
    tests: list[tuple[int, float, list[float]]] = field(default_factory=list)  # (step, mean, draws)
    train_blocks: int | None = None  # recorded at step 0 (None in older runs)
    probes: dict[str, ProbeResult] = field(default_factory=dict)  # task -> linear probe
    seconds: float | None = None  # the runner's pre-training wall clock (timing.json)
    start_weights: str | None = None  # fingerprint of the weights at step 0 (None in older runs)

    @property
    def final(self) -> float:
        """The last dev loss (the validation split's, or the held-out corpus's dev blocks)."""
        return self.evals[-1][1]

    @property
    def test(self) -> float | None:
        """The last test loss (the mean over its draws of positions), when the run has a
        test set: what verdicts are judged on."""
        return self.tests[-1][1] if self.tests else None


def start_weights_by_seed(runs: Iterable[Run]) -> dict[int, set[str]]:
    """``{seed: {fingerprint, ...}}`` over runs that recorded their weights at step 0: more
    than one fingerprint for a seed means its runs began from starts pre-trained again
    (in another session, on another CPU), so their pairs carry that difference too."""
    seen: dict[int, set[str]] = {}
    for r in runs:
        if r.start_weights is not None:
            seen.setdefault(r.seed, set()).add(r.start_weights)
    return seen


def unfinished(run: RunDir) -> bool:
    """A run femlm started (it saved its config) that has not written ``final/``."""
    return run.started and not run.finished


def load_runs(folder: Path) -> dict[str, list[Run]]:
    """``{variant: [Run per seed]}`` for every finished run under ``folder``: a run
    still training (or interrupted) would enter comparisons with a loss it has
    not finished lowering."""
    variants: dict[str, list[Run]] = {}
    for variant, run_dir in ExperimentDir(folder).runs():
        if unfinished(run_dir) or not run_dir.metrics.is_file():
            continue
        run = _load_run(run_dir)
        if run is not None:
            variants.setdefault(variant, []).append(run)
    if not variants:
        raise FemlmError(f"no finished runs with evaluations under {folder}")
    return variants


def _load_run(run_dir: RunDir) -> Run | None:
    rows, _ = read_metrics(run_dir.metrics)  # a torn last line is a run still being written
    evals = [
        (r["step"], r["eval_loss"], r.get("elapsed", math.nan)) for r in rows if "eval_loss" in r
    ]
    if not evals:
        return None
    unigram = next((r["unigram_loss"] for r in rows if "unigram_loss" in r), None)
    run = Run(run_dir.seed, evals, unigram)
    run.tests = [
        (r["step"], r["test_loss"], r.get("test_losses", [])) for r in rows if "test_loss" in r
    ]
    probes = [(r["step"], ProbeTerms.from_row(r)) for r in rows]
    run.variance_steps = [(step, t) for step, t in probes if t is not None]
    run.train_blocks = next((r["train_blocks"] for r in rows if "train_blocks" in r), None)
    run.start_weights = next((r["start_weights"] for r in rows if "start_weights" in r), None)
    run.finetune = {task: FinetuneResult.load(p) for task, p in run_dir.finetune_results().items()}
    run.probes = {task: ProbeResult.load(p) for task, p in run_dir.probe_results().items()}
    run.reevals = {tag: json.loads(p.read_text()) for tag, p in run_dir.reevaluations().items()}
    if run_dir.timing.is_file():
        run.seconds = json.loads(run_dir.timing.read_text()).get("pretrain_seconds")
    if run_dir.variance.is_file():
        run.variance = VarianceResult.from_json(json.loads(run_dir.variance.read_text()))
    return run


def unfinished_note(folder: Path) -> list[str]:
    left = [
        f"`{variant}` seed {run.seed}"
        for variant, run in ExperimentDir(folder).runs()
        if unfinished(run)
    ]
    if not left:
        return []
    return [f"Left out, not finished (still training or interrupted): {', '.join(left)}.", ""]


def first_saved_config(folder: Path) -> dict[str, Any]:
    """The saved ``femlm_config.json`` of the experiment's first started run ({} if none):
    what the runs share (evaluation, threads) without a run's own settings."""
    saved = next((run.config for _, run in ExperimentDir(folder).runs() if run.started), None)
    return json.loads(saved.read_text()) if saved else {}


def compute_note(folder: Path, variants: dict[str, list[Run]]) -> list[str]:
    """The CPU time the grid's pre-training took, from each run's ``timing.json``."""
    timed = [r.seconds for runs in variants.values() for r in runs if r.seconds is not None]
    if not timed:
        return []
    threads = first_saved_config(folder).get("threads")
    each = f"{threads} torch thread{'s' if threads != 1 else ''} a run" if threads else "per run"
    hours = sum(timed) / 3600
    line = (
        f"Compute: {len(timed)} runs timed, {hours:.1f} hours of pre-training wall clock in "
        f"all ({each}; {sum(timed) / len(timed) / 60:.1f} minutes a run on average); "
        "fine-tuning and probes not included."
    )
    if threads:
        line += f" CPU time: about {hours * threads:.1f} core-hours."
    return [line, "", *_downstream_compute(folder)]


def precision_note(folder: Path) -> list[str]:
    """The precision the runs trained in, said only where any used autocast (``auto_bf16``
    picks by machine, so a grid spanning machines can mix): a comparison across
    precisions measures rounding as well as masking."""
    kinds: dict[str, int] = {}
    for _, run in ExperimentDir(folder).runs():
        if run.config.is_file():
            saved = json.loads(run.config.read_text())
            kind = "bf16" if saved.get("bf16") else "fp16" if saved.get("fp16") else "fp32"
            kinds[kind] = kinds.get(kind, 0) + 1
    if set(kinds) <= {"fp32"}:
        return []
    if len(kinds) == 1:
        return [f"Precision: every run trained with {next(iter(kinds))} autocast.", ""]
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    return [
        f"Precision: **mixed** ({counts} runs); a comparison across precisions measures "
        "rounding as well as masking.",
        "",
    ]


def _downstream_compute(folder: Path) -> list[str]:
    """The fine-tuning and probe runs' own ``seconds``, variants' and references' alike."""
    kinds = {"fine-tuning": "*finetune-*.json", "probe": "*probe-*.json"}
    parts, searched = [], False
    for kind, pattern in kinds.items():
        records = [json.loads(f.read_text()) for f in sorted(folder.rglob(pattern))]
        searched = searched or any(len(r.get("lr_search") or []) > 1 for r in records)
        seconds = [
            run["seconds"]
            for r in records
            for run in r.get("runs", [])
            if isinstance(run, dict) and run.get("seconds") is not None
        ]
        if seconds:
            parts.append(f"{len(seconds)} {kind} runs, {_duration(sum(seconds))}")
    if not parts:
        return []
    line = f"Downstream compute (the runs' own timings): {'; '.join(parts)}"
    if searched:
        line += "; the learning-rate search's runs at the rates not chosen are not timed"
    return [line + ".", ""]


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} hours" if seconds >= 3600 else f"{seconds / 60:.1f} minutes"


def read_config(folder: Path) -> dict[str, Any]:
    """The experiment's ``experiment.json`` (``base``, ``runs``), or {} when absent."""
    spec = ExperimentDir(folder).spec
    return json.loads(spec.read_text()) if spec.is_file() else {}


def variant_config(config: dict[str, Any], name: str) -> TrainConfig:
    """A variant's settings as the runner builds them (its own over ``base``), loaded
    through :class:`TrainConfig`, so every default has one home."""
    values = {**(config.get("base") or {}), **((config.get("runs") or {}).get(name) or {})}
    values.pop("seeds", None)  # the runner's, not a training setting
    return from_dict(TrainConfig, values)


def variant_spec(config: dict[str, Any], name: str) -> MaskingSpec:
    return variant_config(config, name).masking


def pick_baseline(config: dict[str, Any], variants: dict[str, list[Run]]) -> str:
    """The first standard-masking variant of the config (its own settings over
    ``base``), else 'standard', else the config's first variant that ran."""
    runs = config.get("runs", {}) or {}
    for name in runs:
        if variant_spec(config, name).is_standard and name in variants:
            return name
    if "standard" in variants:
        return "standard"
    return next((name for name in runs if name in variants), next(iter(variants)))
