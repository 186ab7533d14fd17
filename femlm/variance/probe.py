"""Which sequences and which K a variance probe uses: one rule for the probe during
training (``--variance-every``) and the probe of a finished run (``femlm variance``).

A probe of a run reads the run's settings from its ``femlm_config.json``: the
validation split (fraction; the split seed is never ``--seed``) and the K the
run trained with, so it measures held-out documents with the run's views.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from femlm.config import TrainConfig
from femlm.errors import FemlmError
from femlm.masking.strategies import MaskingSpec, resolve_views_rate
from femlm.runs import CONFIG_FILE
from femlm.schema import load_config

DEFAULT_VIEWS = 7
DEFAULT_VALIDATION_FRACTION = TrainConfig.validation_fraction


def probe_views(spec: MaskingSpec) -> int:
    """A K-view run's K; for a one-view run (standard masking) the K that its rate
    gives a fully-explored partition, by the same rule as ``--strategy
    fully-explored --rate``."""
    if spec.views >= 2:
        return spec.views
    return resolve_views_rate("fully-explored", None, spec.rate)[0]


def pick_sequences(rows: Any, n: int, seed: int) -> list[Tensor]:
    """``n`` blocks drawn at random (keyed on ``seed``) from a split's rows."""
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    return [torch.tensor(rows[int(i)]["input_ids"], dtype=torch.long) for i in order[:n]]


def run_settings(model: str) -> TrainConfig | None:
    """The training config saved beside a run's model (``final/`` or the run folder)."""
    for folder in (Path(model), Path(model).parent):
        path = folder / CONFIG_FILE
        if path.is_file():
            return load_config(TrainConfig, str(path))
    return None


def probe_config(cfg: Any) -> Any:
    """``cfg`` (a VarianceConfig) with K, the held-out corpus and the validation
    fraction filled in from the run the model comes from; a fraction other than the
    run's is an error, since that split would hold documents the model trained on."""
    run = run_settings(cfg.model) if Path(cfg.model).exists() else None
    fraction, views = cfg.validation_fraction, cfg.views
    if run is not None:
        trained = run.validation_fraction
        if fraction is not None and fraction != trained and cfg.split == "validation":
            raise FemlmError(
                f"--validation-fraction {fraction} differs from the run's {trained}: that "
                "split would probe documents the model trained on; leave it out"
            )
        fraction = trained
        if views is None:
            views = probe_views(run.masking)
    return dataclasses.replace(
        cfg,
        data=cfg.data or (run.data if run else []),
        eval_data=cfg.eval_data or (run.eval_data if run else []),
        validation_fraction=DEFAULT_VALIDATION_FRACTION if fraction is None else fraction,
        views=DEFAULT_VIEWS if views is None else views,
    )
