"""fp32 vs bf16 autocast vs bf16 + torch.compile: speed, memory and loss, one device, one run.

    python benchmarks/precision.py --device cuda --model small [--steps 300]
    python benchmarks/precision.py --data corpus.jsonl --tokenizer tok/ --device cuda

Trains the same model from the same seed three times with femlm's own loop
(fully-explored masking, B sequences x K views a step) and prints, per setting,
the median input tokens per second over the logged intervals after the first
(torch.compile's compilation falls in the first), the peak accelerator memory,
and the final training and validation losses; then the speed ratio of each
setting against fp32 measured in the same run. Without --data it trains on
made-up words (the loss then only shows that the three settings agree). bf16 on
a CPU is emulated and slow: the benchmark is meant for GPUs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch
from synthetic import made_up_corpus, made_up_tokenizer

from femlm.config import TrainConfig
from femlm.model import pick_device
from femlm.train.loop import pretrain

SETTINGS = {"fp32": (False, False), "bf16": (True, False), "bf16+compile": (True, True)}


def _made_up(tmp: Path, vocab: int = 8192, docs: int = 4000) -> tuple[str, str]:
    """A made-up-word tokenizer and a corpus of random such words (benchmarks/synthetic.py)."""
    made_up_tokenizer(tmp / "tok", vocab)
    made_up_corpus(tmp / "corpus.txt", docs, vocab)
    return str(tmp / "corpus.txt"), str(tmp / "tok")


def _one(args, tmp: Path, name: str, data: str, tok: str) -> dict:
    bf16, compiled = SETTINGS[name]
    out = tmp / name
    cfg = TrainConfig(
        data=[data], tokenizer=tok, model=args.model, max_length=args.length,
        batch_size=args.batch, strategy="fully-explored", rate=1 / args.views, lr=args.lr,
        max_steps=args.steps, warmup_steps=min(100, args.steps // 10), eval_every=args.steps,
        eval_sequences=64, save_every=0, log_every=max(1, args.steps // 10), out_dir=str(out),
        cache_dir=str(tmp / "cache"), device=args.device, bf16=bf16, compile=compiled,
        seed=0, progress=False,
    )  # fmt: skip
    cuda = pick_device(args.device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    pretrain(cfg)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in rows if r.get("tokens_per_s")]
    return {
        "tokens_per_s": statistics.median(rates[1:] or rates),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "train_loss": [r["loss"] for r in rows if "loss" in r][-1],
        "eval_loss": [r["eval_loss"] for r in rows if "eval_loss" in r][-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="small", help="preset: tiny, mini, small, base")
    parser.add_argument("--data", help="training corpus (default: made-up words)")
    parser.add_argument("--tokenizer", help="tokenizer folder, needed with --data")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32, help="sequences per step")
    parser.add_argument("--views", type=int, default=7)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    if bool(args.data) != bool(args.tokenizer):
        parser.error("--data and --tokenizer go together")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data, tok = (args.data, args.tokenizer) if args.data else _made_up(tmp)
        results = {name: _one(args, tmp, name, data, tok) for name in args.settings}
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"# {args.model}, {args.batch} x {args.views} rows x {args.length} tokens a step, "
          f"{args.steps} steps, {where}, torch {torch.__version__}")  # fmt: skip
    print(
        f"{'setting':14s} {'tokens/s':>12s} {'peak GiB':>9s} {'train loss':>11s} {'val loss':>9s}"
    )
    for name, r in results.items():
        peak = f"{r['peak_gib']:9.2f}" if r["peak_gib"] is not None else f"{'-':>9s}"
        print(f"{name:14s} {r['tokens_per_s']:12,.0f} {peak} {r['train_loss']:11.4f} "
              f"{r['eval_loss']:9.4f}")  # fmt: skip
    if "fp32" in results:
        print()
        for name, r in results.items():
            if name != "fp32":
                ratio = r["tokens_per_s"] / results["fp32"]["tokens_per_s"]
                print(f"{name} / fp32 tokens per second: {ratio:.2f}x")


if __name__ == "__main__":
    main()
