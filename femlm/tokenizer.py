"""WordPiece tokenizers (train, save, load) and packing token streams into blocks.

The saved folder is an ordinary ``transformers`` tokenizer folder
(``tokenizer.json`` + ``tokenizer_config.json``), so ``AutoTokenizer`` and any
HF tool load it without femlm. Reading the corpus lives in :mod:`femlm.data`;
this module only sees iterators of strings, so it never imports it. Packing
writes fixed-size int32 rows to raw files that :mod:`femlm.data` turns into
Arrow; see ``docs/data.md`` for the rules.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from femlm.errors import FemlmError

log = logging.getLogger("femlm")

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Written as the tokenizer class so both transformers 4 (where it is the fast
# base class) and 5 (where it aliases the tokenizers backend) load the folder
# as-is; a Bert* class would rebuild the normalizer from ``do_lower_case``.
_PORTABLE_CLASS = "PreTrainedTokenizerFast"
_BATCH = 1000  # documents per tokenizer call


def train_wordpiece(
    documents: Iterable[str],
    vocab_size: int = 8192,
    min_frequency: int = 2,
    lowercase: bool = True,
) -> Any:
    """A ``tokenizers.Tokenizer`` (BERT-style WordPiece) trained on ``documents``.

    The iterator is consumed once, inside the Rust trainer, so the corpus is
    never held in memory. Raises FemlmError when it yields nothing.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    if vocab_size <= len(SPECIAL_TOKENS):
        raise FemlmError(
            f"vocab_size must exceed {len(SPECIAL_TOKENS)} (the special tokens), got {vocab_size}"
        )
    if min_frequency < 1:
        raise FemlmError(f"min_frequency must be at least 1, got {min_frequency}")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    seen = _Counted(documents)
    tok.train_from_iterator(seen, trainer=trainer)
    if seen.count == 0:
        raise FemlmError("the corpus holds no documents: nothing to train a tokenizer on")
    # The trainer breaks ties between equally frequent merges in hash-map order,
    # which changes from process to process, so the same corpus gave different
    # ids. WordPiece encodes by longest match against the vocabulary *set*; ids
    # in sorted order (special tokens first) make them a function of the set.
    learned = sorted(t for t in tok.get_vocab() if t not in SPECIAL_TOKENS)
    tok = wordpiece_from_vocab(learned, lowercase)
    log.info(
        "trained a WordPiece vocabulary of %d on %d documents", tok.get_vocab_size(), seen.count
    )
    return tok


def wordpiece_from_vocab(words: list[str], lowercase: bool = True) -> Any:
    """A BERT-style WordPiece ``tokenizers.Tokenizer`` whose ids are femlm's special
    tokens, then ``words`` in the order given (``##`` marks a word's continuation)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + list(words))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(SPECIAL_TOKENS)  # matched whole, before normalisation
    tok.post_processor = bert_template(tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]"))
    return tok


class _Counted:
    """Iterate ``items`` and count them, so an empty corpus can be reported."""

    def __init__(self, items: Iterable[str]) -> None:
        self.items, self.count = items, 0

    def __iter__(self):
        for item in self.items:
            self.count += 1
            yield item


def bert_template(cls_id: int, sep_id: int) -> Any:
    """``[CLS] A [SEP]`` (and ``[CLS] A [SEP] B [SEP]`` with type ids 1 for B)."""
    from tokenizers import processors

    return processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )


def as_transformers(tok: Any) -> Any:
    """Wrap a ``tokenizers.Tokenizer`` with femlm's special tokens for ``transformers``."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def save_tokenizer(tok: Any, out_dir: str | os.PathLike) -> pathlib.Path:
    """Save a ``tokenizers.Tokenizer`` as a ``transformers`` folder; return the folder.

    Files are written to a temporary folder first and then moved in one by one
    with ``os.replace``, so a crash never leaves a half-written file, and other
    files already in ``out_dir`` (a model, say) are kept.
    """
    out = pathlib.Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise FemlmError(f"cannot save the tokenizer: {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    fast = as_transformers(tok)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=".tokenizer-", dir=out))
    try:
        fast.save_pretrained(tmp)
        _make_portable(tmp / "tokenizer_config.json")
        for path in sorted(tmp.iterdir()):
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("saved the tokenizer to %s", out)
    return out


def _make_portable(config_path: pathlib.Path) -> None:
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = _PORTABLE_CLASS
    config.pop("backend", None)
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def load_tokenizer(path: str | os.PathLike) -> Any:
    """A ``transformers`` tokenizer from a local folder; never downloads.

    Raises FemlmError (one line) when the folder is missing or does not load,
    or when the tokenizer has no mask token, which masked-LM training needs.
    """
    from transformers import AutoTokenizer

    folder = pathlib.Path(path).expanduser()
    if not folder.is_dir():
        raise FemlmError(
            f"cannot load a tokenizer from {str(path)!r}: the folder does not exist; "
            "train one with `femlm tokenizer train`"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # transformers raises many types for a bad folder
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FemlmError(f"cannot load a tokenizer from {str(path)!r}: {first}") from None
    if tokenizer.mask_token_id is None:
        raise FemlmError(
            f"the tokenizer in {str(path)!r} has no mask token; masked-LM training needs one"
        )
    return tokenizer


# --- packing ---------------------------------------------------------------------


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
