"""The demo's second act: a small task corpus seen for many epochs, from the demo's
own pre-trained model: standard masking against ``fully-explored-epochs`` at the
same rate, 5 paired seeds, judged on held-out test blocks.

Across epochs is where femlm found fully-explored masking to win: standard
masking redraws each block's mask every epoch, so after K epochs some tokens have
been predicted twice and others never; ``fully-explored-epochs`` predicts every
maskable token once per K epochs (docs/masking.md). Both arms are 28 rows a
step (equal compute), hidden tokens are scored (positions shown as ``[MASK]``),
and nothing is chosen on the test blocks. The settings were fixed before any act-2
run: standard masking's best cell on dev blocks among the tuned grid's stage-A
cells finished then (docs/protocol.md; rate 0.25, linear decay, lr 1e-3, ahead of
every rate-1/7 cell; the rates 1/3 and 1/2 were not yet run), and
``fully-explored-epochs`` at the same rate (K = 4) and recipe, so the baseline
gets its tuned settings and the new method borrows them. The
downstream line is a linear probe (a frozen encoder: no fine-tuning noise, no
collapse to hide), over the same 5 seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

from femlm.experiments.grid import Experiment
from femlm.runs import ExperimentDir

ACT = "across-epochs"
VIEWS = 4  # rate 1/K = 0.25
# Movie-review training snippets (text only): the first TRAIN_SNIPPETS are the
# task corpus (~240 blocks of 64 tokens), the last HELD_OUT ones the held-out
# blocks, split into dev (the curves) and test (the verdict) by the loop.
TRAIN_SNIPPETS, HELD_OUT = 500, 1500
ADAPT = {
    "base": {
        "max_length": 64,
        "batch_size": 28,
        "max_steps": 200,  # ~24 epochs of the task corpus: 6 cycles of K = 4
        "warmup_steps": 10,
        "schedule": "linear",
        "lr": 1e-3,
        "weight_decay": 0.01,
        "epoch_tail": "wrap",
        "validation_fraction": 0.0,
        "eval_every": 100,
        "eval_sequences": 256,
        "eval_rate": 0.15,
        "eval_mask_prob": 1.0,
        "eval_random_prob": 0.0,
        "test_sequences": 512,
        "test_draws": 2,
        "save_every": 100,
        "log_every": 50,
        "threads": 1,
        "progress": False,  # the processes write logs; the demo reports runs done
    },
    # The same rate (1/K) and the same compute: only how masks repeat differs.
    "runs": {
        "standard": {"strategy": "random", "views": 1, "rate": round(1 / VIEWS, 6)},
        "fully-explored-epochs": {"strategy": "fully-explored-epochs", "views": VIEWS},
    },
    "seeds": [0, 1, 2, 3, 4],
    "probe": {
        "tasks": ["movies"],
        "metric": "macro_f1",
        "max_train_examples": 1000,
        "max_length": 64,
        "seeds": [0, 1, 2],  # initialisation seeds of the untrained reference
        "threads": 1,
        "progress": False,
    },
}
START = ("standard", 0)  # the act-1 run every adaptation starts from


def task_corpus(task_train: Path, folder: Path) -> tuple[Path, Path]:
    """Write the task corpus and its held-out snippets (text only, deterministic) from
    the task's training split; return their paths. Raises if the split is too small."""
    from femlm.errors import FemlmError

    lines = [line for line in task_train.read_text(encoding="utf-8").splitlines() if line]
    if len(lines) < TRAIN_SNIPPETS + HELD_OUT:
        raise FemlmError(
            f"{task_train} has {len(lines)} examples; the demo's second act needs "
            f"{TRAIN_SNIPPETS + HELD_OUT}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "train.jsonl", folder / "held-out.jsonl"
    chunks = lines[:TRAIN_SNIPPETS], lines[-HELD_OUT:]
    for path, chunk in zip(paths, chunks, strict=True):
        text = "".join(json.dumps({"text": json.loads(r)["text"]}) + "\n" for r in chunk)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return paths


def act_folder(demo_dir: Path) -> Path:
    return Path(demo_dir) / ACT


def adaptation_experiment(
    demo_dir: Path, task_train: Path, cache_dir: str | None, steps: int | None = None
) -> Experiment:
    """The second act as an experiment of its own (resumable like any grid)."""
    out = act_folder(demo_dir)
    train, held_out = task_corpus(task_train, out / "data")
    start = ExperimentDir(demo_dir).run(*START).final
    base = {**ADAPT["base"], "model": str(start), "data": [str(train)]}
    base["eval_data"] = [str(held_out)]
    if steps is not None:
        base["max_steps"] = steps
    if cache_dir:
        base["cache_dir"] = str(Path(cache_dir) / "blocks")
    probe = dict(ADAPT["probe"])  # seeds: the untrained reference's; a trained model has one
    if cache_dir:
        probe["cache_dir"] = cache_dir
    return Experiment(
        name=ACT,
        out_dir=out,
        seeds=list(ADAPT["seeds"]),
        base=base,
        runs=ADAPT["runs"],
        probe=probe,
        source={"name": ACT, **ADAPT, "base": base, "probe": probe},
    )


def reference_probes(exp: Experiment, tokenizer: Path, preset: str) -> dict[str, Path]:
    """Linear probes of the act's start and of the untrained preset (one per
    initialisation seed): what the adapted models' probes are read against."""
    from femlm.finetune.config import FinetuneConfig
    from femlm.finetune.probe import linear_probe
    from femlm.schema import from_dict

    spec = {k: v for k, v in exp.probe.items() if k != "tasks"}
    spec["threads"] = None  # nothing else runs now: torch's own thread count
    task = exp.probe["tasks"][0]
    out = {
        "start": exp.out_dir / f"probe-start-{task}.json",
        "random initialisation": exp.out_dir / f"probe-random-init-{task}.json",
    }
    models = {"start": (exp.base["model"], None), "random initialisation": (preset, tokenizer)}
    for name, (model, tok) in models.items():
        if out[name].is_file():
            continue
        values = {**spec, "task": task, "model": model, "out": str(out[name])}
        if tok is not None:
            values["tokenizer"] = str(tok)
        linear_probe(from_dict(FinetuneConfig, {**values, "method": "linear-probe"}))
    return out
