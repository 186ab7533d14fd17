"""What ``femlm finetune`` writes and what the report reads back, as types.

Torch-free, so ``femlm report`` reads results without importing torch. Files
written before a field existed still load: ``metric`` then is accuracy (the only
choice then) and ``dev_macro_f1`` is None.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Summary:
    """Mean and sample spread over fine-tuning seeds (std None from one seed)."""

    mean: float
    std: float | None

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) >= 2 else None)

    def show(self) -> str:
        return f"{self.mean:.4f} +- {'n/a' if self.std is None else f'{self.std:.4f}'}"


@dataclass(frozen=True)
class SeedRun:
    """One fine-tuning seed: its early-stopped epoch, dev and test scores."""

    seed: int
    best_epoch: int
    epochs_run: int
    dev_accuracy: float
    dev_macro_f1: float | None
    test_accuracy: float
    test_macro_f1: float
    seconds: float
    collapsed: bool | None = None  # one class predicted for every test example (None: not recorded)

    def dev(self, metric: str) -> float | None:
        return getattr(self, f"dev_{metric}")

    def test(self, metric: str) -> float:
        return getattr(self, f"test_{metric}")


@dataclass
class FinetuneResult:
    """Every seed of one (model, task) fine-tuning and the learning-rate search."""

    task: str
    model: str
    labels: list[str]
    split: str
    splits: dict[str, int]
    metric: str
    lr: float | None
    lr_search: list[dict[str, float]]
    runs: list[SeedRun]
    config: dict[str, Any] = field(default_factory=dict)
    out: str | None = None  # where it was written (not part of the file)

    @property
    def test_accuracy(self) -> Summary:
        return Summary.of([r.test_accuracy for r in self.runs])

    @property
    def test_macro_f1(self) -> Summary:
        return Summary.of([r.test_macro_f1 for r in self.runs])

    def test(self, metric: str) -> Summary:
        return Summary.of([r.test(metric) for r in self.runs])

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task, "model": self.model, "labels": self.labels, "split": self.split,
            "splits": self.splits, "metric": self.metric, "lr": self.lr,
            "lr_search": self.lr_search, "runs": [dataclasses.asdict(r) for r in self.runs],
            "test_accuracy": dataclasses.asdict(self.test_accuracy),
            "test_macro_f1": dataclasses.asdict(self.test_macro_f1), "config": self.config,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FinetuneResult:
        runs = [SeedRun(**{"dev_macro_f1": None, **r}) for r in data["runs"]]
        return cls(
            task=data["task"], model=data["model"], labels=list(data["labels"]),
            split=data["split"], splits=dict(data["splits"]),
            metric=data.get("metric", "accuracy"), lr=data.get("lr"),
            lr_search=list(data.get("lr_search", [])), runs=runs, config=data.get("config", {}),
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike) -> FinetuneResult:
        with open(path, encoding="utf-8") as f:
            return cls.from_json(json.load(f))


def collapse_note(runs: list[Any]) -> str:
    """``collapsed to one class in k of n``, or "" when none did (or none was recorded)."""
    known = [r.collapsed for r in runs if r.collapsed is not None]
    k = sum(known)
    return f"collapsed to one class in {k} of {len(known)}" if k else ""


@dataclass(frozen=True)
class ProbeRun:
    """One linear probe: the chosen L2 penalty, dev and test scores. ``seed`` is the
    initialisation seed of an untrained preset, None for a trained model."""

    seed: int | None
    l2: float
    dev_accuracy: float
    dev_macro_f1: float
    test_accuracy: float
    test_macro_f1: float
    collapsed: bool
    seconds: float
    l2_search: list[dict[str, float]] = field(default_factory=list)

    def test(self, metric: str) -> float:
        return getattr(self, f"test_{metric}")


@dataclass
class ProbeResult:
    """A linear probe of one model on one task (femlm.finetune.probe)."""

    task: str
    model: str
    labels: list[str]
    split: str
    splits: dict[str, int]
    metric: str
    runs: list[ProbeRun]
    out: str | None = None

    def test(self, metric: str) -> Summary:
        return Summary.of([r.test(metric) for r in self.runs])

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in dataclasses.asdict(self).items() if k != "out"}
        return {"kind": "linear-probe", **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProbeResult:
        values = {k: v for k, v in data.items() if k != "kind"}
        values["runs"] = [ProbeRun(**r) for r in data["runs"]]
        return cls(**values)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ProbeResult:
        with open(path, encoding="utf-8") as f:
            return cls.from_json(json.load(f))
