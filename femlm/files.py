"""File helpers shared across modules: one sha256 (checkpoints, the block cache,
downloads), one atomic JSON writer (results, timings, re-evaluations), the
training run's metrics log and the one test of whether a run has finished."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def finished_run(run: str | os.PathLike) -> bool:
    """A run folder whose final model is written: ``final/`` appears by one rename of a
    complete folder, so its presence is enough, and a copy of a run's results without
    its weights (the usual way to share them) still counts as finished."""
    return (Path(run) / "final").is_dir()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so size does not matter."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Temporary file then rename, so a killed run never leaves a half-written result.

    Numbers that json cannot encode natively (numpy scalars) are written as floats.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class MetricsLog:
    """JSON lines in ``out/metrics.jsonl`` (and TensorBoard when installed), rank 0 only."""

    def __init__(self, out: Path, enabled: bool, truncate_after: int) -> None:
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        if self.path.exists():  # drop lines from after the checkpoint we resume from
            keep = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= truncate_after
            ]
            self.path.write_text("".join(line + "\n" for line in keep))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            pass

    def write(self, step: int, **values: float) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
