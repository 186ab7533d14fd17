"""``femlm evaluate``: re-score finished runs on their fixed validation masks
under another replacement policy.

Training scores every run on the same fixed positions with 80/10/10
replacement. A run trained with 100% ``[MASK]`` never saw a kept or random
token at a predicted position, so that score also charges it for a skill it
was never asked to learn (copying a visible token). Re-scoring every run of an
ablation with all-``[MASK]`` inputs on the same positions compares what each
policy learned about predicting hidden tokens. The positions (rate, seed,
sequences) are exactly the training evaluation's; only the input replacement
changes.
"""

from __future__ import annotations

import os
from typing import Any

from femlm.errors import FemlmError
from femlm.files import write_json
from femlm.runs import CONFIG_FILE, RunDir, RunLock, find_runs


def evaluate_run(
    run_dir: str | os.PathLike,
    mask_prob: float = 1.0,
    random_prob: float = 0.0,
    device: str = "auto",
) -> dict[str, Any]:
    """Loss of ``run_dir/final`` on the run's fixed evaluation positions, inputs
    replaced as given; written to ``run_dir/eval-mask<m>-random<r>.json``."""
    from femlm.config import TrainConfig, check_config
    from femlm.schema import load_config

    run = RunDir(run_dir)
    if not run.started or not run.finished:
        raise FemlmError(f"{run.root} is not a finished run: it needs {CONFIG_FILE} and final/")
    cfg = load_config(TrainConfig, str(run.config))
    cfg.eval_mask_prob, cfg.eval_random_prob = mask_prob, random_prob
    check_config(cfg)  # one place judges eval inputs: here it catches impossible probabilities
    with RunLock(run):
        return _evaluate(run, cfg, mask_prob, random_prob, device)


def _evaluate(run: RunDir, cfg: Any, mask_prob: float, random_prob: float, device: str) -> dict:
    from femlm.data.blocks import run_blocks
    from femlm.data.tokenizer import load_tokenizer
    from femlm.model import build_model, pick_device
    from femlm.train.dist import Dist
    from femlm.train.evaluate import eval_batches_for, evaluate

    tokenizer = load_tokenizer(str(run.final))
    _, held_out = run_blocks(cfg, tokenizer, progress=False)
    batches = eval_batches_for(cfg, tokenizer, held_out)
    dev = pick_device(device)
    model = build_model(str(run.final), tokenizer, cfg.max_length).to(dev)
    result = {
        "eval_loss": evaluate(model, batches, Dist(0, 1, dev)),
        "mask_prob": mask_prob, "random_prob": random_prob,
        "eval_rate": cfg.eval_rate, "eval_seed": cfg.eval_seed,
        "sequences": min(cfg.eval_sequences, len(held_out)),
    }  # fmt: skip
    write_json(result, run.reevaluation(mask_prob, random_prob))
    return result


def evaluate_runs(folders: list[str], mask_prob: float, random_prob: float) -> list[str]:
    """Every finished run in ``folders`` (a run folder, a variant folder holding
    ``seed-<s>/``, or an experiment folder); one printable line per run."""
    runs = [run for folder in folders for run in find_runs(folder)]
    lines = []
    for run in runs:
        loss = evaluate_run(run.root, mask_prob, random_prob)["eval_loss"]
        lines.append(f"{str(run.root):48s} {loss:.4f}")
    return lines
