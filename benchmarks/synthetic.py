"""Made-up words for the benchmarks: a BERT tokenizer over ``w0 .. wN`` and random text in it.

Imported by the benchmark scripts beside it (``python benchmarks/X.py`` puts
this folder on the path); nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from femlm.data.tokenizer import (
    SPECIAL_TOKENS,
    load_tokenizer,
    save_tokenizer,
    wordpiece_from_vocab,
)


def made_up_tokenizer(folder: Path, vocab: int) -> Any:
    """Save and return a BERT-style WordPiece tokenizer with ``vocab`` entries: the
    specials, then the words ``w0``, ``w1``, ...

    Built with ``tokenizers`` and saved by femlm, not from a ``Bert*`` class, so
    it works with every transformers version pyproject.toml admits.
    """
    words = [f"w{i}" for i in range(vocab - len(SPECIAL_TOKENS))]
    save_tokenizer(wordpiece_from_vocab(words), folder)
    return load_tokenizer(folder)


def made_up_corpus(path: Path, docs: int, vocab: int, seed: int = 0) -> None:
    """``docs`` lines of 200 uniformly random words of :func:`made_up_tokenizer`'s vocabulary."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab - len(SPECIAL_TOKENS), (docs, 200), generator=g).tolist()
    path.write_text("\n".join(" ".join(f"w{i}" for i in row) for row in ids) + "\n")
