"""Pre-training's typed configuration: setting groups whose fields carry their help
text and whether they change the trained run (``affects_training``).

:mod:`femlm.schema` turns these classes into flags and checks files against
them. The groups (inputs, masking, optimisation, evaluation, run) are shared by
``femlm variance`` where they mean the same thing (its own settings are
:mod:`femlm.variance.config`, fine-tuning's :mod:`femlm.finetune.config`). The
resolved config is written beside every checkpoint, so a run can always be
re-created from its folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from femlm.errors import FemlmError
from femlm.masking.strategies import STRATEGIES, MaskingSpec, check_replacement
from femlm.schema import (
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    Bounds,
    Checked,
)
from femlm.schema import setting as _f

CACHE_HELP = "where tokenised blocks are cached (default $FEMLM_CACHE/blocks; $FEMLM_CACHE is ~/.cache/femlm when unset)"


@dataclass
class InputSettings(Checked):
    """What a run reads: the corpus, its tokenizer, the model to start from."""

    GROUP: ClassVar[str] = "inputs"
    data: list[str] = _f(
        [], "training corpus: text, JSONL, Parquet files or saved datasets", affects_training=True
    )
    text_field: str = _f(
        "text", "field/column holding the text in JSONL and Parquet", affects_training=True
    )
    tokenizer: str | None = _f(
        None, "tokenizer folder (default: the model folder's own)", affects_training=True
    )
    model: str = _f(
        "tiny",
        "preset (tiny, mini, small, base) or a local masked-LM folder",
        affects_training=True,
    )
    max_length: int = _f(
        128,
        "tokens per packed block, [CLS] and [SEP] included",
        bounds=Bounds(low=4),
        affects_training=True,
    )
    validation_fraction: float = _f(
        0.02,
        "share of documents held out for validation (0: train on all of --data; needs --eval-data)",
        bounds=Bounds(0, 1, high_open=True),
        affects_training=True,
    )
    cache_dir: str | None = _f(None, CACHE_HELP, affects_training=False)
    eval_data: list[str] = _f(
        [],
        "held-out corpus to evaluate on instead of the validation split of --data (its dev "
        "blocks first, then its test blocks)",
        affects_training=True,
    )


@dataclass
class MaskingSettings(Checked):
    """Which positions are predicted."""

    GROUP: ClassVar[str] = "masking"
    strategy: str = _f(
        "fully-explored",
        "masking strategy (see docs/masking.md)",
        choices=STRATEGIES,
        affects_training=True,
    )
    views: int | None = _f(
        None,
        "masked views per sequence (fully-explored: round(1/rate))",
        bounds=POSITIVE,
        affects_training=True,
    )
    rate: float | None = _f(
        None,
        "mask rate (default 0.15; fully-explored: 1/views)",
        bounds=FRACTION,
        affects_training=True,
    )


@dataclass
class ReplacementSettings(Checked):
    """What the model sees at predicted positions (BERT's 80/10/10)."""

    GROUP: ClassVar[str] = "masking"
    mask_prob: float = _f(
        0.8,
        "share of masked positions replaced by [MASK]",
        bounds=PROBABILITY,
        affects_training=True,
    )
    random_prob: float = _f(
        0.1,
        "share of masked positions replaced by a random token",
        bounds=PROBABILITY,
        affects_training=True,
    )


@dataclass
class OptimisationSettings(Checked):
    """The optimizer, its schedule and the length of the run."""

    GROUP: ClassVar[str] = "optimisation"
    batch_size: int = _f(
        8,
        "sequences per optimizer step (each with all its views)",
        bounds=POSITIVE,
        affects_training=True,
    )
    grad_accum: int = _f(
        1,
        "micro-batches per step; all views of a sequence stay together",
        bounds=POSITIVE,
        affects_training=False,
    )
    lr: float = _f(
        5e-4, "peak learning rate", bounds=Bounds(low=0, low_open=True), affects_training=True
    )
    weight_decay: float = _f(0.01, "AdamW weight decay", bounds=NON_NEGATIVE, affects_training=True)
    warmup_steps: int = _f(100, "linear warm-up steps", bounds=NON_NEGATIVE, affects_training=True)
    schedule: str = _f(
        "linear",
        "decay after warm-up",
        choices=("linear", "cosine", "constant"),
        affects_training=True,
    )
    max_steps: int = _f(1000, "optimizer steps", bounds=POSITIVE, affects_training=True)
    epochs: float | None = _f(
        None,
        "passes over the training blocks instead of --max-steps (sets max_steps; evaluates "
        "and checkpoints at the end of every epoch too)",
        bounds=Bounds(low=0, low_open=True),
        affects_training=True,
    )
    epoch_tail: str = _f(
        "drop",
        "the last (blocks mod batch) blocks of an epoch's order: drop them (every step inside "
        "one epoch) or wrap them into the next epoch's first step (every block seen once "
        "per epoch)",
        choices=("drop", "wrap"),
        affects_training=True,
    )
    clip_grad: float = _f(
        1.0, "max gradient norm (0 = no clipping)", bounds=NON_NEGATIVE, affects_training=True
    )
    dropout: float | None = _f(
        None,
        "override the model's dropout (e.g. 0 for exact tests)",
        bounds=Bounds(0, 1, high_open=True),
        affects_training=True,
    )


@dataclass
class EvaluationSettings(Checked):
    """The fixed validation masks and the in-training variance probe."""

    GROUP: ClassVar[str] = "evaluation"
    eval_every: int = _f(
        100,
        "evaluate every N steps (0 = only at the end)",
        bounds=NON_NEGATIVE,
        affects_training=True,
    )
    eval_sequences: int = _f(
        256,
        "validation sequences in the fixed evaluation set",
        bounds=POSITIVE,
        affects_training=True,
    )
    eval_rate: float = _f(
        0.15,
        "mask rate of the fixed evaluation masks (random)",
        bounds=FRACTION,
        affects_training=True,
    )
    eval_seed: int = _f(
        1234,
        "seed of the fixed evaluation masks, the same for every strategy",
        affects_training=True,
    )
    eval_mask_prob: float = _f(
        1.0,
        "share of eval positions shown as [MASK]: 1.0 scores predicting hidden tokens; 0.8 "
        "(with eval_random_prob 0.1) is 80/10/10, where a model can copy the kept 10%",
        bounds=PROBABILITY,
        affects_training=True,
    )
    eval_random_prob: float = _f(
        0.0,
        "share of eval positions shown as a random token",
        bounds=PROBABILITY,
        affects_training=True,
    )
    test_sequences: int = _f(
        0,
        "evaluation blocks after the first eval_sequences (the dev blocks, for choices) scored "
        "as the test set, for verdicts (0: none)",
        bounds=NON_NEGATIVE,
        affects_training=True,
    )
    test_draws: int = _f(
        2,
        "independent draws of the test set's evaluated positions",
        bounds=POSITIVE,
        affects_training=True,
    )
    variance_every: int = _f(
        0,
        "log gradient-variance terms every N steps (0 = never)",
        bounds=NON_NEGATIVE,
        affects_training=False,
    )
    variance_sequences: int = _f(
        16,
        "validation sequences probed by --variance-every",
        bounds=POSITIVE,
        affects_training=False,
    )


@dataclass
class RunSettings(Checked):
    """Where the run goes, how often it saves and logs, and what it runs on."""

    GROUP: ClassVar[str] = "run"
    save_every: int = _f(
        200,
        "checkpoint every N steps (0 = only at the end)",
        bounds=NON_NEGATIVE,
        affects_training=False,
    )
    keep_last: int = _f(2, "checkpoints kept", bounds=POSITIVE, affects_training=False)
    log_every: int = _f(
        10, "log training loss every N steps", bounds=POSITIVE, affects_training=False
    )
    out_dir: str = _f(
        "runs/pretrain",
        "run folder: config, metrics, checkpoints, final model",
        affects_training=False,
    )
    seed: int = _f(0, "seed of data order, masks and initialisation", affects_training=True)
    device: str = _f("auto", "auto, cpu, cuda, cuda:1, ...", affects_training=False)
    bf16: bool = _f(False, "bf16 autocast for forward passes", affects_training=True)
    fp16: bool = _f(
        False,
        "fp16 autocast with a gradient scaler, for GPUs without bf16 (T4, V100)",
        affects_training=True,
    )
    auto_bf16: bool = _f(
        False,
        "bf16 autocast only where the device runs it natively (a CUDA GPU with bf16, a CPU "
        "with AVX512-BF16 or AMX), fp32 elsewhere; picked once at the run's start, logged and "
        "saved as bf16 (a resumed run keeps the pick)",
        affects_training=True,
    )
    gradient_checkpointing: bool = _f(
        False,
        "recompute activations in backward: less memory for long sequences, more time",
        affects_training=False,
    )
    fused_attention: bool = _f(
        False,
        "rotary (RoFormer) models: attention through PyTorch's fused "
        "scaled_dot_product_attention instead of transformers' eager path; the same "
        "weights, another float order and other dropout draws; for GPUs (no faster on "
        "the CPU of docs/benchmarks.md)",
        affects_training=True,
    )
    compile: bool = _f(False, "torch.compile the model", affects_training=False)
    threads: int | None = _f(
        None, "torch CPU threads (default: torch's choice)", bounds=POSITIVE, affects_training=False
    )
    progress: bool = _f(True, "show a progress bar", affects_training=False)
    report_to: str = _f(
        "none",
        "also log metrics to tensorboard or wandb (offline unless WANDB_MODE is set); "
        "metrics.jsonl is always written",
        choices=("none", "tensorboard", "wandb"),
        affects_training=False,
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

    @property
    def masking(self) -> MaskingSpec:
        """The run's masking, resolved and validated (a FemlmError when impossible)."""
        return MaskingSpec.resolve(
            self.strategy, self.views, self.rate, self.mask_prob, self.random_prob
        )


def check_config(cfg: TrainConfig, world: int = 1) -> None:
    """Reject impossible combinations before any work is done (one-line errors); each
    number's own range is its field's bounds, checked when the config is built. The
    eval inputs are checked here too, since ``femlm evaluate`` sets them on a loaded
    config."""
    cfg.masking  # noqa: B018  (resolving the masking checks it)
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
    check_replacement(
        cfg.eval_mask_prob, cfg.eval_random_prob, ("eval_mask_prob", "eval_random_prob")
    )
