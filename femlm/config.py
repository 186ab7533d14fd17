"""Typed configuration: dataclasses with help text, files, and CLI overrides.

Precedence: field defaults < YAML/JSON file < command-line flags. Unknown
keys are an error, and the resolved config is written beside every
checkpoint, so a run can always be re-created from its folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from femlm.errors import FemlmError
from femlm.masking.strategies import resolve_views_rate


def _f(default: Any, help: str) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


# The validation split's seed: not --seed, so every run on a corpus, and every
# probe of those runs, holds out the same documents.
VALIDATION_SPLIT_SEED = 0


@dataclass
class TrainConfig:
    """Everything ``femlm pretrain`` needs; one field per flag."""

    data: list[str] = _f([], "training corpus: text, JSONL, Parquet files or saved datasets")
    text_field: str = _f("text", "field/column holding the text in JSONL and Parquet")
    tokenizer: str | None = _f(None, "tokenizer folder (default: the model folder's own)")
    model: str = _f("tiny", "preset (tiny, mini, small, base) or a local masked-LM folder")
    max_length: int = _f(128, "tokens per packed block, [CLS] and [SEP] included")
    validation_fraction: float = _f(0.02, "share of documents held out for validation")
    cache_dir: str | None = _f(None, "where tokenised blocks are cached (default $FEMLM_CACHE)")
    strategy: str = _f("fully-explored", "masking strategy (see docs/masking.md)")
    views: int | None = _f(None, "masked views per sequence (fully-explored: round(1/rate))")
    rate: float | None = _f(None, "mask rate (default 0.15; fully-explored: 1/views)")
    mask_prob: float = _f(0.8, "share of masked positions replaced by [MASK]")
    random_prob: float = _f(0.1, "share of masked positions replaced by a random token")
    batch_size: int = _f(8, "sequences per optimizer step (each with all its views)")
    grad_accum: int = _f(1, "micro-batches per step; all views of a sequence stay together")
    lr: float = _f(5e-4, "peak learning rate")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    warmup_steps: int = _f(100, "linear warm-up steps")
    schedule: str = _f("linear", "decay after warm-up: linear, cosine or constant")
    max_steps: int = _f(1000, "optimizer steps")
    clip_grad: float = _f(1.0, "max gradient norm (0 = no clipping)")
    dropout: float | None = _f(None, "override the model's dropout (e.g. 0 for exact tests)")
    eval_every: int = _f(100, "evaluate every N steps (0 = only at the end)")
    eval_sequences: int = _f(256, "validation sequences in the fixed evaluation set")
    eval_rate: float = _f(0.15, "mask rate of the fixed evaluation masks (random)")
    eval_seed: int = _f(1234, "seed of the fixed evaluation masks, the same for every strategy")
    eval_mask_prob: float = _f(
        1.0,
        "share of eval positions shown as [MASK]: 1.0 scores predicting hidden tokens; 0.8 "
        "(with eval_random_prob 0.1) is 80/10/10, where a model can copy the kept 10%",
    )
    eval_random_prob: float = _f(0.0, "share of eval positions shown as a random token")
    variance_every: int = _f(0, "log gradient-variance terms every N steps (0 = never)")
    variance_sequences: int = _f(16, "validation sequences probed by --variance-every")
    save_every: int = _f(200, "checkpoint every N steps (0 = only at the end)")
    keep_last: int = _f(2, "checkpoints kept")
    log_every: int = _f(10, "log training loss every N steps")
    out_dir: str = _f("runs/pretrain", "run folder: config, metrics, checkpoints, final model")
    seed: int = _f(0, "seed of data order, masks and initialisation")
    device: str = _f("auto", "auto, cpu, cuda, cuda:1, ...")
    bf16: bool = _f(False, "bf16 autocast for forward passes")
    compile: bool = _f(False, "torch.compile the model")
    threads: int | None = _f(None, "torch CPU threads (default: torch's choice)")
    progress: bool = _f(True, "show a progress bar")


def _base_type(tp: Any) -> Any:
    """``int | None`` -> int; ``list[str]`` -> list."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    return typing.get_origin(tp) or tp


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


DEFAULT_STRATEGIES = ["random", "fully-explored", "fully-explored-span", "span"]


@dataclass
class VarianceConfig:
    """Everything ``femlm variance`` needs; one field per flag."""

    model: str = _f("tiny", "preset (at initialisation) or a local masked-LM folder")
    tokenizer: str | None = _f(None, "tokenizer folder (default: the model folder's own)")
    data: list[str] = _f([], "corpus the probe sequences come from (as for pretrain)")
    text_field: str = _f("text", "field/column holding the text in JSONL and Parquet")
    max_length: int = _f(128, "tokens per probe sequence, [CLS] and [SEP] included")
    cache_dir: str | None = _f(None, "where tokenised blocks are cached")
    validation_fraction: float | None = _f(
        None, "share of documents held out (default: the run's, from femlm_config.json; else 0.02)"
    )
    split: str = _f("validation", "which split the probe sequences come from")
    sequences: int = _f(32, "probe sequences S (the bootstrap resamples these)")
    draws: int = _f(8, "independent draws R of the K masks per sequence (>= 2)")
    views: int | None = _f(
        None, "views K per sequence for every strategy (default: the run's K, else 7)"
    )
    rate: float | None = _f(None, "mask rate of the non-fully-explored strategies (default 1/K)")
    strategies: list[str] = _f(DEFAULT_STRATEGIES, "strategies compared (random is always added)")
    mask_prob: float = _f(0.8, "share of masked positions replaced by [MASK]")
    random_prob: float = _f(0.1, "share of masked positions replaced by a random token")
    params: list[str] = _f([], "regexes; analyse only parameters whose name matches one")
    hamming_points: int = _f(5, "Hamming distances on the covariance curve (0 to 2m)")
    hamming_pairs: int = _f(4, "mask pairs per distance and sequence")
    hamming_size: int | None = _f(None, "mask size m on the curve (default: n/K rounded)")
    batch_size: int = _f(8, "sequences per step B for the implied step variance")
    bootstrap: int = _f(1000, "bootstrap resamples over sequences for the intervals")
    confidence: float = _f(0.95, "confidence level of the intervals")
    grad_mode: str = _f("auto", "per-view gradients: vmap, loop, or auto (time both)")
    chunk_draws: int = _f(2, "draws whose K views go through one gradient call")
    out_dir: str = _f("runs/variance", "folder for variance.json and the PNG plots")
    seed: int = _f(
        0, "seed of the masks, the probe choice and a preset's initialisation (not the split)"
    )
    device: str = _f("auto", "auto, cpu, cuda, ...")
    threads: int | None = _f(None, "torch CPU threads (default: torch's choice)")
    progress: bool = _f(True, "show the estimate and a progress bar")


@dataclass
class FinetuneConfig:
    """Everything ``femlm finetune`` needs; one field per flag."""

    model: str | None = _f(
        None,
        "masked-LM folder (e.g. runs/x/final), any local HF encoder, or a preset (tiny, mini, "
        "small, base): random initialisation, the no-pre-training baseline",
    )
    tokenizer: str | None = _f(None, "tokenizer folder (default: the model folder)")
    task: str | None = _f(None, "bbc, movies, debian, a CSV/JSONL file or a train/dev/test folder")
    text_field: str = _f("text", "column holding the text")
    label_field: str = _f("label", "column holding the label (strings or integers)")
    cache_dir: str | None = _f(None, "where built-in tasks live (default $FEMLM_CACHE)")
    seeds: list[int] = _f([0, 1, 2], "one fine-tuning run per seed")
    max_length: int = _f(128, "tokens per example, [CLS] and [SEP] included; longer is cut")
    batch_size: int = _f(32, "examples per optimizer step")
    lr: float = _f(1e-3, "peak learning rate (tiny models need ~1e-3; see docs/finetune.md)")
    lrs: list[float] | None = _f(
        None,
        "learning rates to try on the first seed; the best by dev accuracy is then used for "
        "every seed (replaces lr)",
    )
    epochs: int = _f(10, "maximum epochs (tiny models were still improving at 3-10)")
    patience: int = _f(3, "stop after this many epochs without better dev accuracy (0: never)")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    dropout: float | None = _f(None, "override the model's dropout rates (default: its own)")
    warmup_ratio: float = _f(0.1, "share of the maximum steps spent warming up")
    max_train_examples: int | None = _f(None, "stratified subsample of train, for quick runs")
    out: str | None = _f(None, "JSON result path (default <model>/finetune-<task>.json)")
    device: str = _f("auto", "auto, cpu, cuda, cuda:1, ...")
    threads: int | None = _f(None, "torch CPU threads (default: torch's choice)")
    progress: bool = _f(True, "show a progress bar")

    def __post_init__(self) -> None:
        self.seeds = _as_list(self.seeds, int, "seeds must be integers")
        if not self.seeds:
            raise FemlmError("give at least one seed")
        if self.lrs is not None:
            self.lrs = _as_list(self.lrs, float, "lrs must be numbers") or None


def _as_list(value: Any, cast: type, message: str) -> list:
    """A list from a config list or the command line's strings ("0 1 2" or "0,1,2")."""
    items = [value] if isinstance(value, int | float | str) else list(value)
    parts = [p for v in items for p in (v.split(",") if isinstance(v, str) else [v])]
    try:
        return [cast(p) for p in parts if p != ""]
    except (TypeError, ValueError):
        raise FemlmError(f"{message}, got {value!r}") from None


def check_config(cfg: TrainConfig, world: int = 1) -> None:
    """Reject impossible settings before any work is done (one-line errors)."""
    resolve_views_rate(cfg.strategy, cfg.views, cfg.rate)
    if not cfg.data:
        raise FemlmError("no training data: give --data FILE [FILE ...]")
    if cfg.batch_size < 1 or cfg.grad_accum < 1 or cfg.max_steps < 1:
        raise FemlmError("batch_size, grad_accum and max_steps must be positive")
    if cfg.batch_size % (cfg.grad_accum * world):
        raise FemlmError(
            f"batch_size {cfg.batch_size} must be divisible by grad_accum x processes "
            f"({cfg.grad_accum} x {world})"
        )
    if cfg.schedule not in ("linear", "cosine", "constant"):
        raise FemlmError(f"schedule must be linear, cosine or constant, got {cfg.schedule!r}")
    if cfg.variance_every and cfg.variance_sequences < 3:
        raise FemlmError("--variance-sequences must be at least 3 (the estimator needs them)")
    if not 0 < cfg.eval_rate < 1:
        raise FemlmError(f"eval_rate must be in (0, 1), got {cfg.eval_rate}")
    m, r = cfg.eval_mask_prob, cfg.eval_random_prob
    if min(m, r) < 0 or m + r > 1:
        raise FemlmError(
            f"eval_mask_prob and eval_random_prob must be >= 0 with a sum <= 1, got {m} and {r}"
        )


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--flag`` per dataclass field, with its help; defaults stay unset
    (None) so that only flags the user typed override the file."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = _base_type(hints[f.name])
        # argparse %-formats help strings, so a literal % in help text must be doubled
        help_text = f"{f.metadata.get('help', '')} (default: {_default(f)})".replace("%", "%%")
        if kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif kind is list:
            parser.add_argument(flag, nargs="+", default=None, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=None, help=help_text)


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def load_config(cls: type, path: str | None = None, overrides: dict[str, Any] | None = None) -> Any:
    """Defaults, then the YAML/JSON file at ``path``, then non-None ``overrides``."""
    values: dict[str, Any] = {}
    if path:
        values.update(read_config_file(path))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(cls, values)


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise FemlmError(f"unknown config key(s): {', '.join(unknown)}")
    hints = _hints(cls)
    checked = {k: _check_type(k, v, _base_type(hints[k])) for k, v in values.items()}
    return cls(**checked)


def _check_type(key: str, value: Any, kind: Any) -> Any:
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is list and isinstance(value, str):
        return [value]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FemlmError(f"config key {key!r} should be {kind.__name__}, got {value!r}")
    return value


def read_config_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FemlmError(f"config file not found: {path}")
    try:
        text = p.read_text(encoding="utf-8")
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as err:
        raise FemlmError(f"cannot parse config {path}: {str(err).splitlines()[0]}") from None
    except Exception as err:  # yaml.YAMLError has no common base with ValueError
        raise FemlmError(f"cannot parse config {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise FemlmError(f"config {path} must hold a mapping of keys to values")
    return data


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(config), indent=2) + "\n", encoding="utf-8")
