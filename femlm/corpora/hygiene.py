"""Data hygiene: exact duplicates, deterministic splits, task/corpus overlap.

Pure functions over rows (``{"text": ..., "label": ...}``); writing them into
the cache is :mod:`femlm.corpora.fetch`'s job.
"""

from __future__ import annotations

import hashlib
import re

SPLIT_SEED = 1234
SHINGLE = 13  # words; long enough that a shared run means copied text, not a phrase


def count_words(rows: list[dict]) -> int:
    return sum(len(row["text"].split()) for row in rows)


def dedupe_rows(items: list) -> tuple[list[dict], int]:
    """Rows for exact-unique texts; a text seen with two labels is dropped entirely."""
    labels: dict[str, set] = {}
    for item in items:
        text, label = item if isinstance(item, tuple) else (item, None)
        labels.setdefault(text, set()).add(label)
    rows = []
    for text, seen in labels.items():  # dicts keep first-seen order
        if len(seen) == 1:
            (label,) = seen
            rows.append({"text": text} if label is None else {"text": text, "label": label})
    return rows, len(items) - len(rows)


def stratified_split(rows: list[dict], seed: int = SPLIT_SEED, frac: float = 0.1) -> dict:
    """Deterministic 80/10/10 train/dev/test split with each label in proportion.

    Rows are ordered by a hash of their text before the seeded shuffle, so the
    split does not depend on the order in which files were listed.
    """
    import random

    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for label in sorted({row["label"] for row in rows}):
        group = sorted(
            (row for row in rows if row["label"] == label),
            key=lambda row: hashlib.sha256(row["text"].encode()).hexdigest(),
        )
        random.Random(f"{seed}:{label}").shuffle(group)
        n = round(len(group) * frac)
        splits["test"] += group[:n]
        splits["dev"] += group[n : 2 * n]
        splits["train"] += group[2 * n :]
    return splits


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class OverlapIndex:
    """Task texts as normalised strings and 13-word shingles, to keep them out of corpora."""

    def __init__(self, texts) -> None:
        self.exact: set[str] = set()
        self.shingles: set[int] = set()
        for text in texts:
            for piece in [text, *text.split("\n")]:
                self.exact.add(" ".join(_tokens(piece)))
            words = _tokens(text)
            for i in range(len(words) - SHINGLE + 1):
                self.shingles.add(hash(" ".join(words[i : i + SHINGLE])))
        self.exact.discard("")

    def hits(self, text: str) -> bool:
        """True if ``text`` equals a task text or paragraph, or shares a 13-word run."""
        words = _tokens(text)
        if " ".join(words) in self.exact:
            return True
        return any(
            hash(" ".join(words[i : i + SHINGLE])) in self.shingles
            for i in range(len(words) - SHINGLE + 1)
        )


class AnyIndex:
    """Several overlap indexes as one: a text hits if it hits any of them."""

    def __init__(self, indexes) -> None:
        self.indexes = indexes

    def hits(self, text: str) -> bool:
        return any(index.hits(text) for index in self.indexes)
