"""How often each maskable token is predicted over E epochs, from the runs' own keyed
masks (no training): standard masking against fully-explored-epochs.

    python scripts/prediction_counts.py configs/tuned-tapt.yaml --out docs/results/tuned/prediction-counts-tapt.json

For each rate (K = 7, 4, 3, 2) and each budget of docs/protocol.md it collates every
training block once per epoch with the collator the loop uses (keyed on seed, epoch
and block) and counts, per (block, position), the epochs in which it was predicted.
Under standard masking that count is close to Binomial(E, r), whose spread relative
to its mean is sqrt((1 - r) / (r E)); across epochs it is E/K, +-1 where E is not a
multiple of K. Printed as a table, written as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from femlm.data.blocks import run_blocks  # noqa: E402
from femlm.data.tokenizer import load_tokenizer  # noqa: E402
from femlm.experiments.grid import load_experiment, run_config  # noqa: E402
from femlm.masking.collator import MaskingCollator  # noqa: E402
from femlm.masking.strategies import MaskingSpec  # noqa: E402
from femlm.model import tokenizer_source  # noqa: E402

RATES = {7: 0.142857, 4: 0.25, 3: 0.333333, 2: 0.5}
BUDGETS = (1, 5, 10, 20, 40, 80)


def counts(blocks: list[list[int]], tokenizer, spec: MaskingSpec, seed: int, budgets):
    """``{E: counts [blocks, length]}`` after each budget E, and ``maskable``."""
    collator = MaskingCollator(tokenizer, spec=spec, seed=seed, epoch=0)
    ids = torch.tensor(blocks)
    total = torch.zeros_like(ids)
    feats = [{"input_ids": b, "example_index": i} for i, b in enumerate(blocks)]
    snapshots = {}
    for epoch in range(max(budgets)):
        collator.set_epoch(epoch)
        for start in range(0, len(feats), 512):
            labels = collator(feats[start : start + 512])["labels"]
            total[start : start + 512] += (labels != -100).long()
        if epoch + 1 in budgets:
            snapshots[epoch + 1] = total.clone()
    maskable = ~torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    return snapshots, maskable


def summary(total, maskable, rate: float, epochs: int) -> dict:
    c = total[maskable].double()
    mean, sd = float(c.mean()), float(c.std())
    return {
        "mean": mean, "sd": sd, "relative_spread": sd / mean if mean else math.nan,
        "never_predicted": float((c == 0).double().mean()),
        "binomial_relative_spread": math.sqrt((1 - rate) / (rate * epochs)),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="an experiment file of the protocol (its base: data, tokenizer)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="JSON file to write")
    args = p.parse_args()
    exp = load_experiment(args.config)
    cfg = run_config(exp, next(iter(exp.runs)), args.seed)
    tokenizer = load_tokenizer(tokenizer_source(cfg.tokenizer, cfg.model))
    train, _ = run_blocks(cfg, tokenizer, progress=False)
    blocks = train["input_ids"]
    rows = []
    for k, rate in RATES.items():
        for arm, spec in (
            ("standard", MaskingSpec.resolve("random", 1, rate, cfg.mask_prob, cfg.random_prob)),
            ("fe-epochs", MaskingSpec.resolve("fully-explored-epochs", k, None, cfg.mask_prob, cfg.random_prob)),
        ):  # fmt: skip
            snapshots, maskable = counts(blocks, tokenizer, spec, args.seed, BUDGETS)
            for epochs, total in snapshots.items():
                row = {"arm": arm, "K": k, "rate": spec.rate, "epochs": epochs}
                rows.append(row | summary(total, maskable, spec.rate, epochs))
                r = rows[-1]
                print(
                    f"{arm:10s} K={k} E={epochs:3d}: mean {r['mean']:.3f} sd {r['sd']:.3f} "
                    f"relative {r['relative_spread']:.3f} (binomial {r['binomial_relative_spread']:.3f}) "
                    f"never {r['never_predicted']:.4f}"
                )
    result = {"config": args.config, "seed": args.seed, "blocks": len(blocks), "rows": rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
