"""How many tokens per row each run's masking predicts, measured on its own blocks.

    python scripts/mask_counts.py runs/tapt-epochs --variants standard-r7 fe-epochs \
        --out docs/results/tapt-epochs/mask-counts.json

For each variant (seed 0's saved ``femlm_config.json``), builds the run's
training blocks (from the cache when present) and passes every one through the
run's own ``MaskingCollator`` at epochs 0..K-1, counting the predicted tokens
(labels != -100) per row. Rate and views alone do not say this: packed blocks
carry a ``[SEP]`` between documents, so a 64-token block has fewer than 62
maskable tokens and the rounding of ``rate * n`` differs from row to row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from femlm.config import TrainConfig  # noqa: E402
from femlm.data.blocks import build_blocks  # noqa: E402
from femlm.data.packing import VALIDATION_SPLIT_SEED  # noqa: E402
from femlm.data.tokenizer import load_tokenizer  # noqa: E402
from femlm.masking.collator import MaskingCollator  # noqa: E402
from femlm.model import tokenizer_source  # noqa: E402
from femlm.runs import ExperimentDir  # noqa: E402
from femlm.schema import load_config  # noqa: E402


def count(cfg: TrainConfig, epochs: int, batch: int = 256) -> dict:
    tokenizer = load_tokenizer(tokenizer_source(cfg.tokenizer, cfg.model))
    blocks = build_blocks(
        cfg.data, tokenizer, cfg.max_length, cfg.cache_dir, cfg.text_field,
        cfg.validation_fraction, seed=VALIDATION_SPLIT_SEED, progress=False,
    )["train"]  # fmt: skip
    collator = MaskingCollator(
        tokenizer, cfg.strategy, cfg.views, cfg.rate, cfg.mask_prob, cfg.random_prob, cfg.seed
    )
    per_row, maskable = [], []
    special = set(tokenizer.all_special_ids)
    for epoch in range(epochs):
        collator.set_epoch(epoch)
        for start in range(0, len(blocks), batch):
            rows = blocks.select(range(start, min(start + batch, len(blocks))))
            features = [{"input_ids": r["input_ids"], "example_index": r["example_index"]}
                        for r in rows]  # fmt: skip
            labels = collator(features)["labels"]
            per_row += (labels != -100).sum(-1).tolist()
            if epoch == 0:
                maskable += [sum(t not in special for t in f["input_ids"]) for f in features]
    return {
        "strategy": cfg.strategy, "views": collator.views, "rate": collator.rate,
        "blocks": len(blocks), "epochs": epochs,
        "maskable_per_block": round(statistics.fmean(maskable), 3),
        "predicted_per_row": round(statistics.fmean(per_row), 3),
        "predicted_min": min(per_row), "predicted_max": max(per_row),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path)
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--epochs", type=int, default=7, help="epochs of masks to count")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = {}
    for variant in args.variants:
        run = ExperimentDir(args.experiment).run(variant, 0)
        result[variant] = count(load_config(TrainConfig, str(run.config)), args.epochs)
        print(variant, result[variant])
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
