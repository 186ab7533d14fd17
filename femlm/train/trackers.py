"""Experiment trackers (``--report-to``): TensorBoard or Weights & Biases, besides the
``metrics.jsonl`` that every run writes. Each is an optional extra
(``pip install femlm[tensorboard]`` / ``femlm[wandb]``); asking for one that is not
installed is a one-line error, never a silent skip."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from femlm.errors import FemlmError
from femlm.runs import RunDir

REPORT_TO = ("none", "tensorboard", "wandb")


class Tracker:
    """Receives every row written to ``metrics.jsonl``."""

    def log(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _TensorBoard(Tracker):
    def __init__(self, run: RunDir) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise FemlmError(
                "--report-to tensorboard needs the tensorboard package: "
                "pip install 'femlm[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(str(run.tensorboard))

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _Wandb(Tracker):
    def __init__(self, run: RunDir, config: dict[str, Any]) -> None:
        try:
            import wandb
        except ImportError:
            raise FemlmError(
                "--report-to wandb needs the wandb package: pip install 'femlm[wandb]'"
            ) from None
        root = os.path.abspath(run.root)
        # Offline unless WANDB_MODE says otherwise: a run must never wait on a network;
        # `wandb sync <run>/wandb/offline-run-*` uploads it later.
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "femlm"),
            name=os.path.basename(root),
            id="femlm-" + hashlib.sha1(root.encode()).hexdigest()[:12],  # one run per folder
            resume="allow",
            dir=root,
            mode=os.environ.get("WANDB_MODE", "offline"),
            config=config,
        )

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(dict(values), step=step)

    def close(self) -> None:
        self.run.finish()


def open_tracker(report_to: str, run: RunDir, config: dict[str, Any]) -> Tracker | None:
    """The tracker ``report_to`` names (None for ``none``)."""
    if report_to not in REPORT_TO:
        raise FemlmError(f"report_to must be one of {', '.join(REPORT_TO)}, got {report_to!r}")
    run.root.mkdir(parents=True, exist_ok=True)
    if report_to == "tensorboard":
        return _TensorBoard(run)
    if report_to == "wandb":
        return _Wandb(run, config)
    return None
