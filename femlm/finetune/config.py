"""``femlm finetune``'s settings: one field per flag."""

from __future__ import annotations

from dataclasses import dataclass

from femlm.errors import FemlmError
from femlm.schema import NON_NEGATIVE, POSITIVE, Bounds, Checked, check_bounds, check_type
from femlm.schema import setting as _f

METRICS = ("accuracy", "macro_f1")  # the dev scores fine-tuning can select on


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
    method: str = _f(
        "finetune",
        "finetune (every weight, seeded runs) or linear-probe (frozen mean-pooled features, "
        "logistic regression; deterministic; docs/finetune.md)",
        choices=("finetune", "linear-probe"),
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
