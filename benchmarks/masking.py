"""Collator and sampler throughput: femlm vs transformers, measured in one run.

    python benchmarks/masking.py [--repeats 20] [--threads 1]

Counts *output* tokens per second: a fully-explored batch of B sequences has
B * views rows, a standard collator's has B. Prints one table, then the
ratios the targets refer to, last.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch

from femlm.masking import sample_masks
from femlm.masking.collator import MaskingCollator
from femlm.masking.show import _WORDS, builtin_tokenizer

BATCH = 64
LENGTHS = (128, 512)


def _encodings(tokenizer, length: int, seed: int = 0) -> list:
    """``BATCH`` real encodings of exactly ``length`` tokens (random word salad)."""
    g = torch.Generator().manual_seed(seed)
    words = list(_WORDS)
    out = []
    for _ in range(BATCH):
        picks = torch.randint(len(words), (length,), generator=g).tolist()
        text = " ".join(words[i] for i in picks)
        out.append(tokenizer(text, truncation=True, max_length=length, return_offsets_mapping=True))
    return out


def _features(encodings, keys: tuple[str, ...], as_tensors: bool) -> list[dict]:
    """Each collator gets only the fields it understands, as lists or tensors."""
    feats = []
    for enc in encodings:
        f = {}
        for k in keys:
            value = enc.word_ids() if k == "word_ids" else enc[k]
            f[k] = torch.tensor(value) if as_tensors and k == "input_ids" else value
        feats.append(f)
    return feats


def _rate(fn: Callable[[], int], repeats: int) -> float:
    """Median output tokens/s of ``fn`` (which returns its output token count)."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return tokens / times[len(times) // 2]


def _collate(collator, features) -> Callable[[], int]:
    def run() -> int:
        return collator(features)["input_ids"].numel()

    return run


def _sampler(length: int) -> Callable[[], int]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 30000, (BATCH, length))
    maskable = torch.ones(BATCH, length, dtype=torch.bool)
    maskable[:, 0] = maskable[:, -1] = False

    def run() -> int:
        return sample_masks(ids, maskable, "fully-explored", None, 0.15, g).numel()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (targets are per core)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import DataCollatorForLanguageModeling

    tok = builtin_tokenizer()
    hf = DataCollatorForLanguageModeling(tok, mlm_probability=0.15, seed=0)
    hf_wwm = DataCollatorForLanguageModeling(
        tok, mlm_probability=0.15, whole_word_mask=True, seed=0
    )
    ours = {
        s: MaskingCollator(tok, strategy=s)
        for s in ("fully-explored", "random", "whole-word", "span")
    }

    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), batch {BATCH}"
    )
    print(f"{'what':44s} {'input':7s} {'len':>4s} {'Mtok/s':>9s}")
    results = {}
    for length in LENGTHS:
        encodings = _encodings(tok, length)
        for as_tensors in (False, True):
            kind = "tensors" if as_tensors else "lists"
            rows = [
                ("HF DataCollatorForLanguageModeling", hf, ("input_ids",)),
                ("HF ... whole_word_mask=True", hf_wwm, ("input_ids", "offset_mapping")),
            ]
            for s, c in ours.items():
                keys = ("input_ids", "word_ids") if s == "whole-word" else ("input_ids",)
                rows.append((f"femlm MaskingCollator {s}", c, keys))
            for name, collator, keys in rows:
                if "whole_word" in name and as_tensors:
                    continue  # HF's whole-word path reads offsets from lists
                feats = _features(encodings, keys, as_tensors)
                rate = _rate(_collate(collator, feats), args.repeats)
                results[(name, kind, length)] = rate
                print(f"{name:44s} {kind:7s} {length:>4d} {rate / 1e6:9.2f}")
        rate = _rate(_sampler(length), args.repeats * 5)
        results[("sampler", length)] = rate
        print(
            f"{'femlm sample_masks fully-explored (alone)':44s} {'tensors':7s} {length:>4d} {rate / 1e6:9.2f}"
        )

    _summary(results, args.threads)


def _summary(results: dict, threads: int) -> None:
    """The two targets, as ratios against the reference measured in the same run."""
    print()
    for length in LENGTHS:
        ratio = (
            results[("femlm MaskingCollator fully-explored", "lists", length)]
            / results[("HF DataCollatorForLanguageModeling", "lists", length)]
        )
        print(
            f"len {length}: fully-explored collator / HF collator (lists, output tok/s): {ratio:.1f}x (target >= 10x)"
        )
    for length in LENGTHS:
        per_core = results[("sampler", length)] / threads / 1e6
        print(
            f"len {length}: fully-explored sampler alone: {per_core:.0f}M output tok/s per core (target >= 100M)"
        )


if __name__ == "__main__":
    main()
