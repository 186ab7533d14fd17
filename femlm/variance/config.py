"""``femlm variance``'s settings: pre-training's inputs and replacement groups, where
they mean the same thing, and the probe's own."""

from __future__ import annotations

from dataclasses import dataclass

from femlm.config import InputSettings, ReplacementSettings
from femlm.masking.strategies import DEFAULT_PROBED, STRATEGIES
from femlm.schema import FRACTION, POSITIVE, Bounds
from femlm.schema import setting as _f


@dataclass
class VarianceConfig(ReplacementSettings, InputSettings):
    """Everything ``femlm variance`` needs; the inputs and replacement groups are
    pre-training's, the rest is the probe's own."""

    model: str = _f("tiny", "preset (at initialisation) or a local masked-LM folder")
    data: list[str] = _f([], "corpus the probe sequences come from (as for pretrain)")
    max_length: int = _f(
        128, "tokens per probe sequence, [CLS] and [SEP] included", bounds=Bounds(low=4)
    )
    validation_fraction: float | None = _f(
        None,
        "share of documents held out (default: the run's, from femlm_config.json; else 0.02)",
        bounds=Bounds(0, 1, high_open=True),
    )
    split: str = _f(
        "validation", "which split the probe sequences come from", choices=("train", "validation")
    )
    sequences: int = _f(
        32, "probe sequences S (the bootstrap resamples these)", bounds=Bounds(low=3)
    )
    draws: int = _f(
        8, "independent draws R of the K masks per sequence (>= 2)", bounds=Bounds(low=2)
    )
    views: int | None = _f(
        None,
        "views K per sequence for every strategy (default: the run's K, else 7)",
        bounds=POSITIVE,
    )
    rate: float | None = _f(
        None, "mask rate of the non-fully-explored strategies (default 1/K)", bounds=FRACTION
    )
    strategies: list[str] = _f(
        DEFAULT_PROBED, "strategies compared (random is always added)", choices=STRATEGIES
    )
    params: list[str] = _f([], "regexes; analyse only parameters whose name matches one")
    hamming_points: int = _f(
        5, "Hamming distances on the covariance curve (0 to 2m)", bounds=Bounds(low=2)
    )
    hamming_pairs: int = _f(4, "mask pairs per distance and sequence", bounds=POSITIVE)
    hamming_size: int | None = _f(
        None, "mask size m on the curve (default: n/K rounded)", bounds=POSITIVE
    )
    batch_size: int = _f(8, "sequences per step B for the implied step variance", bounds=POSITIVE)
    bootstrap: int = _f(
        1000, "bootstrap resamples over sequences for the intervals", bounds=Bounds(low=2)
    )
    confidence: float = _f(0.95, "confidence level of the intervals", bounds=FRACTION)
    grad_mode: str = _f(
        "auto", "per-view gradients (auto times both)", choices=("vmap", "loop", "auto")
    )
    chunk_draws: int = _f(2, "draws whose K views go through one gradient call", bounds=POSITIVE)
    out_dir: str = _f("runs/variance", "folder for variance.json and the PNG plots")
    seed: int = _f(
        0, "seed of the masks, the probe choice and a preset's initialisation (not the split)"
    )
    device: str = _f("auto", "auto, cpu, cuda, ...")
    threads: int | None = _f(None, "torch CPU threads (default: torch's choice)", bounds=POSITIVE)
    progress: bool = _f(True, "show the estimate and a progress bar")
