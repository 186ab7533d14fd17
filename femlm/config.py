"""Typed configuration: one dataclass per subcommand, fields with help text.

``femlm pretrain``, ``variance`` and ``finetune`` read config files too;
:mod:`femlm.schema` turns these classes into flags and checks files against
them. Pre-training settings come in groups (inputs, masking, optimisation,
evaluation, run) that ``femlm variance`` shares where it means the same thing.
The resolved config is written beside every checkpoint, so a run can always
be re-created from its folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from femlm.errors import FemlmError
from femlm.masking.strategies import STRATEGIES, resolve_views_rate
from femlm.schema import (
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    Bounds,
    Checked,
    check_bounds,
    check_type,
)
from femlm.schema import setting as _f

CACHE_HELP = "where tokenised blocks are cached (default $FEMLM_CACHE/blocks; $FEMLM_CACHE is ~/.cache/femlm when unset)"
METRICS = ("accuracy", "macro_f1")  # the dev scores fine-tuning can select on
DEFAULT_STRATEGIES = ["random", "fully-explored", "fully-explored-span", "span"]


@dataclass
class InputSettings(Checked):
    """What a run reads: the corpus, its tokenizer, the model to start from."""

    GROUP: ClassVar[str] = "inputs"
    data: list[str] = _f([], "training corpus: text, JSONL, Parquet files or saved datasets")
    text_field: str = _f("text", "field/column holding the text in JSONL and Parquet")
    tokenizer: str | None = _f(None, "tokenizer folder (default: the model folder's own)")
    model: str = _f("tiny", "preset (tiny, mini, small, base) or a local masked-LM folder")
    max_length: int = _f(
        128, "tokens per packed block, [CLS] and [SEP] included", bounds=Bounds(low=4)
    )
    validation_fraction: float = _f(
        0.02,
        "share of documents held out for validation (0: train on all of --data; needs --eval-data)",
        bounds=Bounds(0, 1, high_open=True),
    )
    cache_dir: str | None = _f(None, CACHE_HELP)
    eval_data: list[str] = _f(
        [],
        "held-out corpus to evaluate on instead of the validation split of --data (its dev "
        "blocks first, then its test blocks)",
    )


@dataclass
class MaskingSettings(Checked):
    """Which positions are predicted."""

    GROUP: ClassVar[str] = "masking"
    strategy: str = _f(
        "fully-explored", "masking strategy (see docs/masking.md)", choices=STRATEGIES
    )
    views: int | None = _f(
        None, "masked views per sequence (fully-explored: round(1/rate))", bounds=POSITIVE
    )
    rate: float | None = _f(
        None, "mask rate (default 0.15; fully-explored: 1/views)", bounds=FRACTION
    )


@dataclass
class ReplacementSettings(Checked):
    """What the model sees at predicted positions (BERT's 80/10/10)."""

    GROUP: ClassVar[str] = "masking"
    mask_prob: float = _f(0.8, "share of masked positions replaced by [MASK]", bounds=PROBABILITY)
    random_prob: float = _f(
        0.1, "share of masked positions replaced by a random token", bounds=PROBABILITY
    )


@dataclass
class OptimisationSettings(Checked):
    """The optimizer, its schedule and the length of the run."""

    GROUP: ClassVar[str] = "optimisation"
    batch_size: int = _f(
        8, "sequences per optimizer step (each with all its views)", bounds=POSITIVE
    )
    grad_accum: int = _f(
        1, "micro-batches per step; all views of a sequence stay together", bounds=POSITIVE
    )
    lr: float = _f(5e-4, "peak learning rate", bounds=Bounds(low=0, low_open=True))
    weight_decay: float = _f(0.01, "AdamW weight decay", bounds=NON_NEGATIVE)
    warmup_steps: int = _f(100, "linear warm-up steps", bounds=NON_NEGATIVE)
    schedule: str = _f("linear", "decay after warm-up", choices=("linear", "cosine", "constant"))
    max_steps: int = _f(1000, "optimizer steps", bounds=POSITIVE)
    epochs: float | None = _f(
        None,
        "passes over the training blocks instead of --max-steps (sets max_steps; evaluates "
        "and checkpoints at the end of every epoch too)",
        bounds=Bounds(low=0, low_open=True),
    )
    epoch_tail: str = _f(
        "drop",
        "the last (blocks mod batch) blocks of an epoch's order: drop them (every step inside "
        "one epoch) or wrap them into the next epoch's first step (every block seen once "
        "per epoch)",
        choices=("drop", "wrap"),
    )
    clip_grad: float = _f(1.0, "max gradient norm (0 = no clipping)", bounds=NON_NEGATIVE)
    dropout: float | None = _f(
        None,
        "override the model's dropout (e.g. 0 for exact tests)",
        bounds=Bounds(0, 1, high_open=True),
    )


@dataclass
class EvaluationSettings(Checked):
    """The fixed validation masks and the in-training variance probe."""

    GROUP: ClassVar[str] = "evaluation"
    eval_every: int = _f(100, "evaluate every N steps (0 = only at the end)", bounds=NON_NEGATIVE)
    eval_sequences: int = _f(
        256, "validation sequences in the fixed evaluation set", bounds=POSITIVE
    )
    eval_rate: float = _f(0.15, "mask rate of the fixed evaluation masks (random)", bounds=FRACTION)
    eval_seed: int = _f(1234, "seed of the fixed evaluation masks, the same for every strategy")
    eval_mask_prob: float = _f(
        1.0,
        "share of eval positions shown as [MASK]: 1.0 scores predicting hidden tokens; 0.8 "
        "(with eval_random_prob 0.1) is 80/10/10, where a model can copy the kept 10%",
        bounds=PROBABILITY,
    )
    eval_random_prob: float = _f(
        0.0, "share of eval positions shown as a random token", bounds=PROBABILITY
    )
    test_sequences: int = _f(
        0,
        "evaluation blocks after the first eval_sequences (the dev blocks, for choices) scored "
        "as the test set, for verdicts (0: none)",
        bounds=NON_NEGATIVE,
    )
    test_draws: int = _f(
        2, "independent draws of the test set's evaluated positions", bounds=POSITIVE
    )
    variance_every: int = _f(
        0, "log gradient-variance terms every N steps (0 = never)", bounds=NON_NEGATIVE
    )
    variance_sequences: int = _f(
        16, "validation sequences probed by --variance-every", bounds=POSITIVE
    )


@dataclass
class RunSettings(Checked):
    """Where the run goes, how often it saves and logs, and what it runs on."""

    GROUP: ClassVar[str] = "run"
    save_every: int = _f(200, "checkpoint every N steps (0 = only at the end)", bounds=NON_NEGATIVE)
    keep_last: int = _f(2, "checkpoints kept", bounds=POSITIVE)
    log_every: int = _f(10, "log training loss every N steps", bounds=POSITIVE)
    out_dir: str = _f("runs/pretrain", "run folder: config, metrics, checkpoints, final model")
    seed: int = _f(0, "seed of data order, masks and initialisation")
    device: str = _f("auto", "auto, cpu, cuda, cuda:1, ...")
    bf16: bool = _f(False, "bf16 autocast for forward passes")
    fp16: bool = _f(False, "fp16 autocast with a gradient scaler, for GPUs without bf16 (T4, V100)")
    gradient_checkpointing: bool = _f(
        False, "recompute activations in backward: less memory for long sequences, more time"
    )
    compile: bool = _f(False, "torch.compile the model")
    threads: int | None = _f(None, "torch CPU threads (default: torch's choice)", bounds=POSITIVE)
    progress: bool = _f(True, "show a progress bar")
    report_to: str = _f(
        "none",
        "also log metrics to tensorboard or wandb (offline unless WANDB_MODE is set); "
        "metrics.jsonl is always written",
        choices=("none", "tensorboard", "wandb"),
    )


# Bases in reverse order: a dataclass lists inherited fields from the last base
# first, so the saved femlm_config.json keeps the key order it always had.
@dataclass
class TrainConfig(
    RunSettings,
    EvaluationSettings,
    OptimisationSettings,
    ReplacementSettings,
    MaskingSettings,
    InputSettings,
):
    """Everything ``femlm pretrain`` needs; one field per flag, in setting groups.

    A config file may give the keys flat or inside their group's section
    (``masking: {strategy: random}``).
    """


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
        bounds=FRACTION,
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
        DEFAULT_STRATEGIES, "strategies compared (random is always added)", choices=STRATEGIES
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


@dataclass
class FinetuneConfig(Checked):
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
    text_pair_field: str | None = _f(
        None, "column holding the second text of a sentence-pair task (entailment, paraphrase)"
    )
    cache_dir: str | None = _f(
        None, "where built-in tasks live (default $FEMLM_CACHE, ~/.cache/femlm when unset)"
    )
    seeds: list[int] = _f([0, 1, 2], "one fine-tuning run per seed")
    max_length: int = _f(
        128, "tokens per example, [CLS] and [SEP] included; longer is cut", bounds=Bounds(low=4)
    )
    batch_size: int = _f(32, "examples per optimizer step", bounds=POSITIVE)
    lr: float = _f(
        1e-3,
        "peak learning rate (tiny models need ~1e-3; see docs/finetune.md)",
        bounds=Bounds(low=0, low_open=True),
    )
    lrs: list[float] | None = _f(
        None,
        "learning rates to try on the first seed; the best by the dev metric is then used for "
        "every seed (replaces lr)",
        bounds=Bounds(low=0, low_open=True),
    )
    metric: str = _f(
        "accuracy",
        "dev score that chooses the learning rate and the early-stopping epoch: accuracy or "
        "macro_f1 (the paper's tasks report macro-F1)",
        choices=METRICS,
    )
    epochs: int = _f(
        10, "maximum epochs (tiny models were still improving at 3-10)", bounds=POSITIVE
    )
    patience: int = _f(
        3, "stop after this many epochs without a better dev score (0: never)", bounds=NON_NEGATIVE
    )
    weight_decay: float = _f(0.01, "AdamW weight decay", bounds=NON_NEGATIVE)
    dropout: float | None = _f(
        None,
        "override the model's dropout rates (default: its own)",
        bounds=Bounds(0, 1, high_open=True),
    )
    warmup_ratio: float = _f(
        0.1, "share of the maximum steps spent warming up", bounds=Bounds(0, 1, high_open=True)
    )
    max_train_examples: int | None = _f(
        None, "stratified subsample of train, for quick runs", bounds=POSITIVE
    )
    out: str | None = _f(None, "JSON result path (default <model>/finetune-<task>.json)")
    save_model: str | None = _f(
        None, "keep each seed's best classifier in HF layout in <save_model>/seed-<s>/"
    )
    checkpoints: str | None = _f(
        None,
        "'all': --model is a pre-training run folder; fine-tune every saved checkpoint "
        "(accuracy vs pre-training steps, in <run>/finetune-checkpoints/)",
        choices=("all",),
    )
    device: str = _f("auto", "auto, cpu, cuda, cuda:1, ...")
    threads: int | None = _f(None, "torch CPU threads (default: torch's choice)", bounds=POSITIVE)
    progress: bool = _f(True, "show a progress bar")

    def __post_init__(self) -> None:
        # Built from Python as well as from files: accept "0,1,2" here too.
        self.seeds = check_type("seeds", self.seeds, list[int])
        if not self.seeds:
            raise FemlmError("give at least one seed")
        self.lrs = check_type("lrs", self.lrs, list[float]) or None
        check_bounds(self)


def check_config(cfg: TrainConfig, world: int = 1) -> None:
    """Reject impossible combinations before any work is done (one-line errors); each
    number's own range is its field's bounds, checked when the config is built. The
    eval inputs are checked here too, since ``femlm evaluate`` sets them on a loaded
    config."""
    resolve_views_rate(cfg.strategy, cfg.views, cfg.rate)
    if not cfg.data:
        raise FemlmError("no training data: give --data FILE [FILE ...]")
    if cfg.validation_fraction == 0 and not cfg.eval_data:
        raise FemlmError(
            "validation_fraction 0 holds nothing out: give --eval-data FILE to evaluate on, "
            "or a fraction in (0, 1)"
        )
    if cfg.batch_size % (cfg.grad_accum * world):
        raise FemlmError(
            f"batch_size {cfg.batch_size} must be divisible by grad_accum x processes "
            f"({cfg.grad_accum} x {world})"
        )
    if cfg.variance_every and cfg.variance_sequences < 3:
        raise FemlmError("--variance-sequences must be at least 3 (the estimator needs them)")
    if cfg.mask_prob + cfg.random_prob > 1:
        raise FemlmError(
            f"mask_prob + random_prob must be <= 1, got {cfg.mask_prob} + {cfg.random_prob}"
        )
    m, r = cfg.eval_mask_prob, cfg.eval_random_prob
    if min(m, r) < 0 or m + r > 1:
        raise FemlmError(
            f"eval_mask_prob and eval_random_prob must be >= 0 with a sum <= 1, got {m} and {r}"
        )
