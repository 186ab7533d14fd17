"""Packing token streams into fixed-size blocks, and the train/validation split.

Packing writes int32 rows to raw files that :mod:`femlm.data.blocks` turns
into Arrow; see ``docs/data.md`` for the rules. Documents are routed to a
split by a seeded hash of their text (:func:`in_validation`), the one home of
the validation split.
"""

from __future__ import annotations

import hashlib
import logging
import pathlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from femlm.errors import FemlmError

log = logging.getLogger("femlm")

# The validation split's seed: not --seed, so every run on a corpus, and every
# probe of those runs, holds out the same documents.
VALIDATION_SPLIT_SEED = 0


_BATCH = 1000  # documents per tokenizer call


def fast_backend(tokenizer: Any) -> tuple[Any, int, int]:
    """A private copy of the fast tokenizer with truncation and padding off.

    Many saved ``tokenizer.json`` files enable truncation (MiniLM's cuts at
    128), which would silently drop most of every document.
    """
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise FemlmError("packing needs a fast tokenizer (a folder with tokenizer.json)")
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None:
        raise FemlmError(
            "the tokenizer has no [CLS]/[SEP] (cls_token/sep_token); packing needs both"
        )
    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy, int(cls_id), int(sep_id)


class Packer:
    """One split's token stream cut into blocks, appended as raw int32 rows to a file.

    Documents are joined with ``[SEP]``; whatever is left at the end (less than
    one block body) is dropped and counted.
    """

    def __init__(self, path: pathlib.Path, max_length: int, cls_id: int, sep_id: int) -> None:
        self.path, self.length, self.cls, self.sep = path, max_length, cls_id, sep_id
        self.file = open(path, "wb")  # noqa: SIM115 - closed in finish()
        self.carry = np.empty(0, dtype=np.int32)
        self.documents = self.tokens = self.blocks = 0

    def add(self, documents: list[list[int]]) -> None:
        pieces = [self.carry]
        for ids in documents:
            if not ids:
                continue
            if self.documents:
                pieces.append(np.array([self.sep], dtype=np.int32))
            pieces.append(np.asarray(ids, dtype=np.int32))
            self.documents += 1
            self.tokens += len(ids)
        stream = np.concatenate(pieces)
        body = self.length - 2
        n = len(stream) // body
        if n:
            rows = np.empty((n, self.length), dtype=np.int32)
            rows[:, 0], rows[:, -1] = self.cls, self.sep
            rows[:, 1:-1] = stream[: n * body].reshape(n, body)
            self.file.write(rows.tobytes())
            self.blocks += n
        self.carry = stream[n * body :].copy()

    def finish(self) -> None:
        self.file.close()


def pack_documents(
    documents: Iterable[str], backend: Any, settings: dict, work: pathlib.Path
) -> dict[str, Packer]:
    """Tokenise in batches and route each document to its split's packer."""
    seed, fraction = settings["seed"], settings["validation_fraction"]
    packers = {
        name: Packer(work / f"{name}.bin", settings["max_length"], settings["cls"], settings["sep"])
        for name in ("train", "validation")
    }
    try:
        for batch in _batches(documents, _BATCH):
            ids = encode(backend, batch)
            routed: dict[str, list[list[int]]] = {"train": [], "validation": []}
            for text, doc_ids in zip(batch, ids, strict=True):
                routed["validation" if in_validation(text, seed, fraction) else "train"].append(
                    doc_ids
                )
            for name, docs in routed.items():
                packers[name].add(docs)
    finally:
        for packer in packers.values():
            packer.finish()
    return packers


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def encode(backend: Any, texts: list[str]) -> list[list[int]]:
    """Token ids without special tokens; one Rust call per batch (parallel, no offsets)."""
    batch_encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return [encoding.ids for encoding in batch_encode(texts, add_special_tokens=False)]


def in_validation(text: str, seed: int, fraction: float) -> bool:
    """Whether a document belongs to validation: a seeded hash of its text below ``fraction``.

    Identical documents land in the same split, so duplicates cannot leak.
    """
    if fraction <= 0:
        return False
    key = int(seed).to_bytes(8, "little", signed=True)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=key).digest()
    return int.from_bytes(digest, "little") < fraction * 2**64


def packing_stats(packers: dict[str, Packer], counts: dict, max_length: int) -> dict:
    """Counts per split (kept beside the cache and logged); FemlmError on an empty corpus."""
    stats = {
        "documents": counts["documents"],
        "bad_utf8": counts["bad_utf8"],
        "max_length": max_length,
    }
    for name, p in packers.items():
        stats[name] = {
            "documents": p.documents,
            "tokens": p.tokens,
            "blocks": p.blocks,
            "dropped_tokens": len(p.carry),
        }
    if counts["bad_utf8"]:
        log.warning("skipped %d lines that are not UTF-8", counts["bad_utf8"])
    if stats["documents"] == 0:
        raise FemlmError("the corpus holds no documents (every file is empty or blank)")
    t, v = stats["train"], stats["validation"]
    log.info(
        "packed %d documents into %d train and %d validation blocks of %d tokens; dropped the last %d train and %d validation tokens (less than a block)",
        stats["documents"],
        t["blocks"],
        v["blocks"],
        max_length,
        t["dropped_tokens"],
        v["dropped_tokens"],
    )
    return stats


def block_ranges(packers: dict[str, Packer], fraction: float, max_length: int) -> dict[str, tuple]:
    """(file, first row, end row) per split, applying the one-block-each fallback.

    When validation is wanted but got no full block, the last train block
    becomes validation (and the other way round when train got none).
    """
    train, val = packers["train"], packers["validation"]
    rows = {"train": (train.path, 0, train.blocks), "validation": (val.path, 0, val.blocks)}
    total = train.blocks + val.blocks
    needed = 2 if fraction > 0 else 1
    if total < needed:
        tokens = train.tokens + val.tokens
        raise FemlmError(
            f"found {tokens} tokens in {train.documents + val.documents} documents, but {needed} block(s) of max_length={max_length} need at least {needed * (max_length - 2)} tokens (plus separators between documents); add text or lower max_length"
        )
    if fraction > 0 and val.blocks == 0:
        log.info("no document's text filled a validation block; using the last train block")
        rows = {
            "train": (train.path, 0, train.blocks - 1),
            "validation": (train.path, train.blocks - 1, train.blocks),
        }
    elif train.blocks == 0:
        log.info("no document's text filled a train block; using all but the last validation block")
        rows = {
            "train": (val.path, 0, val.blocks - 1),
            "validation": (val.path, val.blocks - 1, val.blocks),
        }
    return rows
