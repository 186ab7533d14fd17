"""Fine-tune every saved checkpoint of a pre-training run: downstream accuracy against
pre-training steps (the paper's efficiency curves).

``femlm finetune --model RUN --checkpoints all`` runs the usual fine-tuning (same
seeds, dev-chosen learning rate) on each ``RUN/checkpoints/step-*`` and writes
``RUN/finetune-checkpoints/<task>/step-NNNNNNN.json`` per checkpoint and
``RUN/finetune-checkpoints/<task>.json``, the curve, with a PNG beside it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from femlm.config import TrainConfig
from femlm.errors import FemlmError
from femlm.files import write_json
from femlm.finetune.config import FinetuneConfig
from femlm.finetune.results import Summary
from femlm.model import tokenizer_source
from femlm.runs import RunDir
from femlm.schema import load_config

log = logging.getLogger("femlm")


def checkpoint_steps(run: RunDir) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every checkpoint ``from_pretrained`` can open, oldest first."""
    from femlm.train.checkpoint import list_checkpoints

    found = list_checkpoints(run.checkpoints)
    usable = [
        (int(p.name.removeprefix("step-")), p) for p in found if (p / "config.json").is_file()
    ]
    if found and not usable:
        raise FemlmError(
            f"the checkpoints in {run.checkpoints} have no config.json (written by an older "
            "femlm); fine-tune final/ instead"
        )
    if not usable:
        raise FemlmError(
            f"{run.root} holds no checkpoints; pre-train with --keep-last N to keep them"
        )
    return usable


def _tokenizer_of(cfg: FinetuneConfig, run: RunDir) -> str:
    """Checkpoints hold no tokenizer: take --tokenizer, else final/'s, else the run's own."""
    if cfg.tokenizer:
        return cfg.tokenizer
    if run.final.is_dir():
        return str(run.final)
    saved = load_config(TrainConfig, str(run.config))
    return tokenizer_source(saved.tokenizer, saved.model)


def finetune_checkpoints(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune each checkpoint of the run ``cfg.model``; write and return the curve."""
    from femlm.finetune.run import finetune, task_name

    if cfg.checkpoints != "all":
        raise FemlmError(f"--checkpoints takes 'all', got {cfg.checkpoints!r}")
    run = RunDir(Path(cfg.model or "").expanduser())
    if not run.started:
        raise FemlmError(
            f"--checkpoints all needs --model to be a pre-training run folder "
            f"(holding {run.config.name}), got {cfg.model!r}"
        )
    task, steps = task_name(cfg), checkpoint_steps(run)
    folder = run.finetune_sweep
    tokenizer = _tokenizer_of(cfg, run)
    points = []
    for step, path in steps:
        log.info("checkpoint step %d (%d of %d)", step, len(points) + 1, len(steps))
        out = folder / task / f"{path.name}.json"
        keep = str(Path(cfg.save_model) / path.name) if cfg.save_model else None
        one = replace(cfg, model=str(path), tokenizer=tokenizer, checkpoints=None)
        result = finetune(replace(one, out=str(out), save_model=keep))
        points.append({
            "step": step, "lr": result.lr, "test_accuracy": asdict(result.test_accuracy),
            "test_macro_f1": asdict(result.test_macro_f1), "result": str(out.relative_to(folder)),
        })  # fmt: skip
    curve = {"task": cfg.task, "run": str(run.root), "metric": cfg.metric, "points": points}
    write_json(curve, folder / f"{task}.json")
    curve["out"] = str(folder / f"{task}.json")
    curve["plot"] = str(plot_curve(curve, folder / f"{task}.png") or "")
    return curve


def plot_curve(curve: dict[str, Any], path: Path) -> Path | None:
    """Test accuracy (mean +- std over seeds) against pre-training steps; None without
    matplotlib (an optional extra)."""
    from femlm.report.plots import pyplot, save_figure

    try:
        plt = pyplot()
    except ImportError:
        return None
    steps = [p["step"] for p in curve["points"]]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, label in (("test_accuracy", "accuracy"), ("test_macro_f1", "macro-F1")):
        means = [p[key]["mean"] for p in curve["points"]]
        stds = [p[key]["std"] or 0.0 for p in curve["points"]]
        ax.errorbar(steps, means, yerr=stds, marker="o", capsize=3, label=label)
    ax.set_xlabel("pre-training step")
    ax.set_ylabel(f"test score on {curve['task']}")
    ax.legend()
    return save_figure(fig, path)


def format_curve(curve: dict[str, Any]) -> str:
    """One line per checkpoint: step, learning rate, test accuracy and macro-F1."""

    lines = [f"{curve['task']} after each checkpoint of {curve['run']}"]
    lines.append(f"{'step':>8} {'lr':>7}  test accuracy          macro-F1")
    for p in curve["points"]:
        lines.append(
            f"{p['step']:>8} {p['lr']:>7.0e}  {Summary(**p['test_accuracy']).show():22s} {Summary(**p['test_macro_f1']).show()}"
        )
    lines.append(f"saved to {curve['out']}" + (f" and {curve['plot']}" if curve["plot"] else ""))
    return "\n".join(lines)
