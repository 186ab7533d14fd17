"""Made-up words for the benchmarks: a BERT tokenizer over ``w0 .. wN`` and random text in it.

Imported by the benchmark scripts beside it (``python benchmarks/X.py`` puts
this folder on the path); nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def made_up_tokenizer(folder: Path, vocab: int):
    """Save and return a BERT tokenizer with ``vocab`` entries: the specials, then words."""
    from transformers import BertTokenizerFast

    words = [f"w{i}" for i in range(vocab - len(SPECIALS))]
    tok = BertTokenizerFast(
        vocab={t: i for i, t in enumerate(SPECIALS + words)}, do_lower_case=True
    )
    tok.save_pretrained(folder)
    return tok


def made_up_corpus(path: Path, docs: int, vocab: int, seed: int = 0) -> None:
    """``docs`` lines of 200 uniformly random words of :func:`made_up_tokenizer`'s vocabulary."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab - len(SPECIALS), (docs, 200), generator=g).tolist()
    path.write_text("\n".join(" ".join(f"w{i}" for i in row) for row in ids) + "\n")
