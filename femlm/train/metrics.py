"""The training run's metrics log: JSON lines (and TensorBoard when installed)."""

from __future__ import annotations

import json
import logging

from femlm.runs import RunDir, read_metrics

log = logging.getLogger("femlm")


class MetricsLog:
    """JSON lines in ``out/metrics.jsonl`` (and TensorBoard when installed), rank 0 only."""

    def __init__(self, run: RunDir, enabled: bool, truncate_after: int) -> None:
        self.enabled = enabled
        self.path = run.metrics
        self.tb = None
        if not enabled:
            return
        run.root.mkdir(parents=True, exist_ok=True)
        if self.path.exists():  # drop lines from after the checkpoint we resume from
            rows, torn = read_metrics(self.path)
            if torn:
                log.warning("%s: dropped a torn last line (a write cut short)", self.path)
            keep = [json.dumps(r) for r in rows if r["step"] <= truncate_after]
            self.path.write_text("".join(line + "\n" for line in keep))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run.tensorboard))
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
