"""The training run's metrics log: JSON lines, and the tracker ``--report-to`` names."""

from __future__ import annotations

import json
import logging
from typing import Any

from femlm.runs import RunDir, read_metrics
from femlm.train.trackers import open_tracker

log = logging.getLogger("femlm")


class MetricsLog:
    """JSON lines in ``out/metrics.jsonl`` (and a tracker's copy), rank 0 only."""

    def __init__(
        self,
        run: RunDir,
        enabled: bool,
        truncate_after: int,
        report_to: str = "none",
        config: dict[str, Any] | None = None,
    ) -> None:
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
        self.tb = open_tracker(report_to, run, config or {})

    def write(self, step: int, **values: float) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.tb is not None:
            self.tb.log(step, values)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
