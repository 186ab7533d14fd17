"""``femlm experiment CONFIG``: a grid of pre-training runs, resumable.

A config names shared training settings (``base``), the variants to compare
(``runs``: each overrides ``base``), the seeds, and optionally a tokenizer to
train first, fine-tuning tasks and a variance measurement per run. Every
(variant, seed) gets its own folder ``<out_dir>/<variant>/seed-<s>/``; a run
with a final model is skipped, an interrupted one resumes from its last
checkpoint, so re-running the same command finishes the grid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from femlm.config import InputSettings, ReplacementSettings, TrainConfig, check_config
from femlm.errors import FemlmError
from femlm.experiments.carry import NO_WEIGHTS, publish_run, restore_runs
from femlm.experiments.spec import RUNNER_KEYS, check_spec
from femlm.files import cache_root, write_json
from femlm.runs import ExperimentDir, RunBusy, RunDir, RunLock, task_label
from femlm.schema import from_dict, load_config, read_config_file
from femlm.train.checkpoint import list_checkpoints

log = logging.getLogger("femlm")


@dataclass
class Experiment:
    name: str
    out_dir: Path
    seeds: list[int]
    base: dict[str, Any]
    runs: dict[str, dict[str, Any]]
    run_seeds: dict[str, list[int]] = field(default_factory=dict)
    tokenizer: dict[str, Any] | None = None
    finetune: dict[str, Any] | None = None
    variance: dict[str, Any] | None = None
    probe: dict[str, Any] | None = None
    budget: str = ""
    starts: list[str] = field(default_factory=list)
    tuning: dict[str, list[int]] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    def start_of(self, variant: str, seed: int) -> str | None:
        """The model run ``seed`` of ``variant`` starts from: with ``starts`` given, seed
        ``s`` takes ``starts[s mod len(starts)]`` (unless the variant names its own
        model), so that seeds cross independently pre-trained starts; else None."""
        if not self.starts or "model" in self.runs[variant]:
            return None
        return self.starts[seed % len(self.starts)]

    def to_json(self) -> dict[str, Any]:
        """The experiment as a file would give it: :meth:`from_json` reads it back."""
        runs = {
            name: {
                **settings,
                **({"seeds": self.run_seeds[name]} if name in self.run_seeds else {}),
            }
            for name, settings in self.runs.items()
        }
        data: dict[str, Any] = {
            "name": self.name, "out_dir": str(self.out_dir), "seeds": self.seeds,
            "base": self.base, "runs": runs, "tokenizer": self.tokenizer,
            "finetune": self.finetune, "variance": self.variance,
        }  # fmt: skip
        optional = {"budget": self.budget, "starts": self.starts, "tuning": self.tuning}
        optional["probe"] = self.probe
        return data | {k: v for k, v in optional.items() if v}

    @classmethod
    def from_json(cls, raw: dict[str, Any], default_name: str = "experiment") -> Experiment:
        """An experiment file's mapping (checked by :func:`check_spec` first), with
        ``~`` and ``$VARS`` expanded; ``source`` keeps it as given."""
        data = expand(raw)
        runs = {str(k): dict(v or {}) for k, v in data["runs"].items()}
        # A variant may name its own seeds (e.g. fewer for an added comparison).
        run_seeds = {k: [int(s) for s in v.pop("seeds")] for k, v in runs.items() if "seeds" in v}
        return cls(
            name=str(data.get("name", default_name)),
            out_dir=Path(data.get("out_dir", f"runs/{default_name}")),
            seeds=[int(s) for s in data.get("seeds", [0])],
            base=dict(data.get("base") or {}),
            runs=runs,
            run_seeds=run_seeds,
            tokenizer=data.get("tokenizer"),
            finetune=data.get("finetune"),
            variance=data.get("variance"),
            probe=data.get("probe"),
            budget=str(data.get("budget", "")),
            starts=[str(p) for p in data.get("starts", [])],
            tuning=dict(data.get("tuning") or {}),
            source=raw,
        )


_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def _variable(match: re.Match) -> str:
    """An environment variable's value; ``$FEMLM_CACHE`` is the cache folder even when
    unset, so a config naming it works on a machine that never set it."""
    name = match.group(1) or match.group(2)
    if name == "FEMLM_CACHE":
        return str(cache_root())
    return os.environ.get(name, match.group(0))


def expand(value: Any) -> Any:
    """``~`` and ``$VARS`` in strings (recursively), so configs stay portable."""
    if isinstance(value, str):
        return os.path.expanduser(_VAR.sub(_variable, value))
    if isinstance(value, list):
        return [expand(v) for v in value]
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    return value


def load_experiment(path: str | os.PathLike, out_dir: str | None = None) -> Experiment:
    """Parse and validate an experiment YAML/JSON file (every run config is checked up front)."""
    raw = read_config_file(str(path))
    check_spec(raw, str(path))
    exp = Experiment.from_json(raw, default_name=Path(path).stem)
    if out_dir:
        exp.out_dir = Path(out_dir)
    for variant in exp.runs:  # unknown keys or bad types stop here, naming file and run
        try:
            run_config(exp, variant, seeds_of(exp, variant)[0])
        except FemlmError as err:
            raise FemlmError(f"{path}: run {variant!r}: {err}") from None
    return exp


def run_config(exp: Experiment, variant: str, seed: int) -> TrainConfig:
    values = {**exp.base, **exp.runs[variant], "seed": seed}
    if start := exp.start_of(variant, seed):
        values["model"] = start
    values["out_dir"] = str(run_dir(exp, variant, seed).root)
    if exp.tokenizer and "tokenizer" not in values:
        values["tokenizer"] = exp.tokenizer["output"]
    cfg = from_dict(TrainConfig, values)
    check_config(cfg)
    return cfg


def seeds_of(exp: Experiment, variant: str) -> list[int]:
    return exp.run_seeds.get(variant, exp.seeds)


def run_dir(exp: Experiment, variant: str, seed: int) -> RunDir:
    return ExperimentDir(exp.out_dir).run(variant, seed)


def run_experiment(
    exp: Experiment,
    variants: list[str] | None = None,
    seeds: list[int] | None = None,
    share: bool = False,
    carry: str | Path | None = None,
) -> Path:
    """Run every (variant, seed) not yet finished; return the experiment folder.

    ``variants`` and ``seeds`` restrict the grid. With ``share``, a run another
    process holds is skipped rather than refused, so that processes (or machines
    sharing the folder) started with the same grid split it between them. With
    ``carry``, the finished runs published there are restored first and every run
    is published there when it is done (small files only: femlm.experiments.carry),
    so that a grid longer than a machine's life goes on on the next one.
    """
    unknown = sorted(set(variants or []) - set(exp.runs))
    if unknown:
        raise FemlmError(
            f"no variant {', '.join(unknown)} in this experiment; it has {', '.join(exp.runs)}"
        )
    prepare_experiment(exp, carry)
    every = sorted({s for v in exp.runs for s in seeds_of(exp, v)})
    missing = sorted(set(seeds or []) - set(every))
    if missing:
        raise FemlmError(f"no seed {missing} in this experiment; it has {every}")
    grid = [
        (v, s)
        for s in every
        for v in exp.runs
        if s in seeds_of(exp, v) and (not variants or v in variants) and (not seeds or s in seeds)
    ]
    for i, (variant, seed) in enumerate(grid, 1):
        folder = run_dir(exp, variant, seed)
        log.info("[%d/%d] %s seed %d -> %s", i, len(grid), variant, seed, folder.root)
        with contextlib.ExitStack() as held:
            try:  # one writer per run, across pre-training, probe and tasks
                held.enter_context(RunLock(folder))
            except RunBusy:
                if not share:
                    raise
                log.info("  in use by another process, skipped")
                continue
            _run_once(exp, variant, seed, folder)
            if carry is not None:
                publish_run(folder, ExperimentDir(carry).run(variant, seed))
    return exp.out_dir


def _run_once(exp: Experiment, variant: str, seed: int, folder: RunDir) -> None:
    _pretrain_once(exp, variant, seed, folder)
    if _wanted(exp.variance, variant, seed):
        _variance_once(exp, folder)
    if _wanted(exp.finetune, variant, seed):
        _finetune_once(exp, folder)
    if _wanted(exp.probe, variant, seed):
        _probe_once(exp, folder)


def run_in_processes(
    exp: Experiment, processes: int, argv: list[str], carry: str | Path | None = None
) -> None:
    """Split the grid between ``processes`` copies of ``femlm experiment ARGV --share``
    on this machine and wait for all of them; each run keeps its own ``threads``.

    The tokenizer and the experiment folder are prepared here first, once. A process
    that fails makes this a FemlmError after the others have finished, since
    their runs are independent and each finished run is kept.
    """
    import subprocess
    import sys

    prepare_experiment(exp, carry)
    command = [sys.executable, "-m", "femlm", "experiment", *argv, "--share", "--no-report"]
    children = [subprocess.Popen(command) for _ in range(processes)]
    failed = sum(child.wait() != 0 for child in children)
    if failed:
        raise FemlmError(f"{failed} of {processes} grid processes failed (their errors are above)")


def prepare_experiment(exp: Experiment, carry: str | Path | None = None) -> None:
    """The experiment folder, its ``experiment.json``, the grid's tokenizer and the runs
    carried in ``carry``: what every run needs first (and processes sharing the grid
    need only once)."""
    exp.out_dir.mkdir(parents=True, exist_ok=True)
    spec = json.dumps(exp.source, indent=2) + "\n"
    ExperimentDir(exp.out_dir).spec.write_text(spec)
    _prepare_tokenizer(exp)
    if carry is not None:
        Path(carry).mkdir(parents=True, exist_ok=True)
        ExperimentDir(carry).spec.write_text(spec)
        if restored := restore_runs(carry, exp.out_dir):
            log.info("restored %d finished runs from %s", len(restored), carry)


def _prepare_tokenizer(exp: Experiment) -> None:
    spec = exp.tokenizer
    if not spec:
        return
    out = Path(spec["output"])
    if (out / "tokenizer.json").is_file():
        log.info("tokenizer %s exists, reusing it", out)
        return
    from femlm.data.tokenizer import train_tokenizer
    from femlm.options import TokenizerOptions

    opts = from_dict(TokenizerOptions, spec)  # every option of `femlm tokenizer train`
    train_tokenizer(
        opts.data, out, vocab_size=opts.vocab_size, min_frequency=opts.min_frequency,
        lowercase=not opts.cased, text_field=opts.text_field,
    )  # fmt: skip


def _pretrain_once(exp: Experiment, variant: str, seed: int, folder: RunDir) -> None:
    from femlm.train.loop import pretrain

    if folder.finished:
        log.info("  finished earlier, skipped")
        return
    found = list_checkpoints(folder.checkpoints)
    resume = bool(found)
    if resume:
        log.info("  resuming from %s", found[-1].name)
    start = time.time()
    pretrain(run_config(exp, variant, seed), resume=resume)
    _append_json(folder.timing, {"pretrain_seconds": time.time() - start})


def _wanted(spec: dict | None, variant: str, seed: int) -> bool:
    """A variance/fine-tuning spec applies to the runs its optional ``variants``
    and ``pretrain_seeds`` lists name (all runs when absent)."""
    if not spec:
        return False
    return variant in spec.get("variants", [variant]) and seed in spec.get("pretrain_seeds", [seed])


def _variance_once(exp: Experiment, folder: RunDir | Path) -> None:
    folder = RunDir(folder)
    target = folder.variance
    if target.is_file():
        return
    from femlm.variance.analyser import VarianceConfig, run_variance

    spec = {k: v for k, v in exp.variance.items() if k not in RUNNER_KEYS}
    # Probe the run's own held-out blocks with the run's replacement policy (80/10/10
    # or all [MASK]) unless the spec says otherwise; the model's folder holds its
    # tokenizer. A grid split between processes keeps its threads.
    trained = load_config(TrainConfig, str(folder.config))
    keys = {f.name for f in dataclasses.fields(InputSettings)} - {"model", "tokenizer"}
    keys |= {f.name for f in dataclasses.fields(ReplacementSettings)} | {"threads", "progress"}
    shared = {k: getattr(trained, k) for k in sorted(keys)}
    values = {**shared, **spec, "model": _final_model(folder), "out_dir": str(folder.variance_dir)}
    result = run_variance(from_dict(VarianceConfig, values))
    write_json(result.to_json(), target)


def _finetune_once(exp: Experiment, folder: RunDir | Path) -> None:
    folder = RunDir(folder)
    from femlm.finetune.run import FinetuneConfig, finetune

    spec = {k: v for k, v in exp.finetune.items() if k not in RUNNER_KEYS}
    for task in spec.pop("tasks", []):
        target = folder.finetune(task_label(task))
        if target.is_file():
            continue
        values = {**spec, "task": task, "model": _final_model(folder), "out": str(target)}
        finetune(from_dict(FinetuneConfig, values))


def _probe_once(exp: Experiment, folder: RunDir | Path) -> None:
    """The linear probe of the run's final model on each task of the ``probe`` section."""
    folder = RunDir(folder)
    from femlm.finetune.probe import FinetuneConfig, linear_probe

    spec = {k: v for k, v in exp.probe.items() if k not in RUNNER_KEYS}
    for task in spec.pop("tasks", []):
        target = folder.probe(task_label(task))
        if target.is_file():
            continue
        values = {**spec, "task": task, "model": _final_model(folder), "out": str(target)}
        linear_probe(from_dict(FinetuneConfig, {**values, "method": "linear-probe"}))


def _final_model(folder: RunDir) -> str:
    """The run's final model, or a FemlmError for a run carried without its weights."""
    if (folder.final / NO_WEIGHTS).is_file():
        raise FemlmError(
            f"{folder.root} was restored from a carried grid without its weights; "
            "remove that folder to train the run again"
        )
    return str(folder.final)


def _append_json(path: Path, data: dict) -> None:
    old = json.loads(path.read_text()) if path.is_file() else {}
    write_json({**old, **data}, path)
