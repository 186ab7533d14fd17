"""Corpus reading, tokenizer training and packed, cached blocks for pre-training.

Inputs are streamed, never read whole: ``.txt``/``.text`` (one document per
non-empty line), ``.jsonl``/``.json`` (JSON lines; one document per record,
taken from ``text_field``), ``.parquet`` (the ``text_field`` column, read in
batches) and folders written by ``datasets.save_to_disk`` (memory-mapped
Arrow). Any other folder is searched recursively, in sorted order, for those.

:func:`build_blocks` tokenises the documents, packs them into blocks of exactly
``max_length`` tokens (``[CLS]`` + body + ``[SEP]``, documents joined by
``[SEP]``) and caches the result under a key made from the inputs' content,
the tokenizer and the settings, so a second run starts at once. See
``docs/data.md`` for the exact rules.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from femlm.data.packing import block_ranges, fast_backend, pack_documents, packing_stats
from femlm.data.readers import (
    BAD_UTF8_MODES,
    Source,
    documents_of,
    progress_bar,
    resolve_inputs,
)
from femlm.data.words import WordStarts
from femlm.errors import FemlmError
from femlm.files import cache_root, make_folder, sha256_file

log = logging.getLogger("femlm")

# Bump when packing or the stored layout changes, so old caches are not trusted.
# 2: a word_ids column.
BLOCKS_VERSION = 2
_CHUNK = 1024  # rows per vectorised word-id computation


def build_blocks(
    paths: Sequence[str | os.PathLike] | str | os.PathLike,
    tokenizer: Any,
    max_length: int = 128,
    cache_dir: str | os.PathLike | None = None,
    text_field: str = "text",
    validation_fraction: float = 0.02,
    seed: int = 0,
    on_bad_utf8: str = "skip",
    progress: bool = True,
) -> Any:
    """Tokenised, packed blocks as ``DatasetDict(train=..., validation=...)``, cached.

    Columns: ``input_ids`` (int32, exactly ``max_length``, ``[CLS]`` first and
    ``[SEP]`` last), ``word_ids`` (int32, the word of each token along the
    row, -1 at special tokens; see :mod:`femlm.data.words`) and
    ``example_index`` (0..n-1 per split, the key the collator draws masks from). Documents go to validation when a hash of
    (seed, text) falls below ``validation_fraction``, so no document is in
    both splits and the split does not depend on file order or batch size.
    """
    _check_settings(max_length, validation_fraction, on_bad_utf8)
    sources = resolve_inputs(paths)
    backend, cls_id, sep_id = fast_backend(tokenizer)
    words = WordStarts.of(tokenizer)
    settings = {"max_length": max_length, "text_field": text_field, "seed": seed}
    settings |= {"validation_fraction": validation_fraction, "cls": cls_id, "sep": sep_id}
    key = cache_key(sources, backend.to_str(), settings)
    root = _blocks_root(cache_dir)
    final = root / key[:32]
    cached = _load_cached(final)
    if cached is not None:
        log.info("reusing cached blocks %s", final)
        return cached
    make_folder(root, "block cache")
    work = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        counts = {"documents": 0, "bad_utf8": 0}
        documents = documents_of(sources, text_field, on_bad_utf8, counts)
        packers = pack_documents(
            progress_bar(documents, "tokenising", progress), backend, settings, work
        )
        stats = packing_stats(packers, counts, max_length)
        rows = block_ranges(packers, validation_fraction, max_length)
        stats["words"] = words.scheme
        _write_dataset(rows, max_length, key, work, stats, words)
        _publish(work / "blocks", final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import datasets

    return datasets.load_from_disk(str(final))


def run_blocks(inputs: Any, tokenizer: Any, progress: bool = True) -> tuple[Any, Any]:
    """``(train, evaluation)`` blocks of a run's inputs (any config with the fields of
    :class:`femlm.config.InputSettings`): the training split of ``inputs.data`` and
    either its validation split or, when ``inputs.eval_data`` is given, every block of
    that held-out corpus. The split seed is never the run's seed
    (:data:`VALIDATION_SPLIT_SEED`), so every run and probe on a corpus holds out the
    same documents; this is the one place that builds a run's blocks."""
    from femlm.data.packing import VALIDATION_SPLIT_SEED

    blocks = build_blocks(
        inputs.data, tokenizer, inputs.max_length, inputs.cache_dir, inputs.text_field,
        inputs.validation_fraction, seed=VALIDATION_SPLIT_SEED, progress=progress,
    )  # fmt: skip
    if not getattr(inputs, "eval_data", None):
        return blocks["train"], blocks["validation"]
    held_out = build_blocks(
        inputs.eval_data, tokenizer, inputs.max_length, inputs.cache_dir, inputs.text_field,
        0.0, seed=VALIDATION_SPLIT_SEED, progress=progress,
    )  # fmt: skip
    return blocks["train"], held_out["train"]


def _check_settings(max_length: int, fraction: float, on_bad_utf8: str) -> None:
    if max_length < 3:
        raise FemlmError(
            f"max_length must be at least 3 ([CLS], one token, [SEP]), got {max_length}"
        )
    if not 0 <= fraction < 1:
        raise FemlmError(f"validation_fraction must be in [0, 1), got {fraction}")
    if on_bad_utf8 not in BAD_UTF8_MODES:
        raise FemlmError(f"on_bad_utf8 must be 'skip' or 'error', got {on_bad_utf8!r}")


def cache_key(sources: list[Source], tokenizer_json: str, settings: dict) -> str:
    """sha256 over the inputs' bytes (in order), the serialised tokenizer and the settings.

    Paths are left out on purpose: a moved corpus keeps its cache, an edited
    one gets a new key.
    """
    digest = hashlib.sha256(json.dumps({"v": BLOCKS_VERSION, **settings}, sort_keys=True).encode())
    digest.update(hashlib.sha256(tokenizer_json.encode("utf-8")).digest())
    for kind, path in sources:
        digest.update(kind.encode() + b"\0" + _content_digest(path))
    return digest.hexdigest()


def _content_digest(path: pathlib.Path) -> bytes:
    if path.is_file():
        return bytes.fromhex(sha256_file(path))
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(
            str(file.relative_to(path)).encode() + b"\0" + bytes.fromhex(sha256_file(file))
        )
    return digest.digest()


def _blocks_root(cache_dir: str | os.PathLike | None) -> pathlib.Path:
    if cache_dir is not None:
        return pathlib.Path(cache_dir).expanduser()
    return cache_root() / "blocks"


def _load_cached(final: pathlib.Path) -> Any | None:
    """The cached DatasetDict, or None; an unreadable folder is moved aside and rebuilt."""
    if not final.is_dir():
        return None
    import datasets

    try:
        return datasets.load_from_disk(str(final))
    except Exception as err:  # a damaged cache must never stop a run
        log.warning("cached blocks %s do not load (%s); rebuilding", final, type(err).__name__)
        trash = final.with_name(f".{final.name}.broken-{os.getpid()}")
        final.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        return None


def _rows(path: str, length: int, start: int, stop: int, words: WordStarts) -> Iterator[dict]:
    blocks = np.memmap(path, dtype=np.int32, mode="r", shape=(stop, length))
    for first in range(start, stop, _CHUNK):
        chunk = np.asarray(blocks[first : min(first + _CHUNK, stop)])
        for i, (ids, word_ids) in enumerate(zip(chunk, words.word_ids(chunk), strict=True)):
            yield {
                "input_ids": ids.tolist(),
                "word_ids": word_ids.tolist(),
                "example_index": first + i - start,
            }


def _write_dataset(
    rows: dict[str, tuple],
    max_length: int,
    key: str,
    work: pathlib.Path,
    stats: dict,
    words: WordStarts,
) -> None:
    import datasets

    features = datasets.Features(
        {
            "input_ids": datasets.List(datasets.Value("int32")),
            "word_ids": datasets.List(datasets.Value("int32")),
            "example_index": datasets.Value("int64"),
        }
    )
    splits = {}
    with _quiet_datasets():
        for name, (path, start, stop) in rows.items():
            if stop == start:
                splits[name] = datasets.Dataset.from_dict(
                    {"input_ids": [], "word_ids": [], "example_index": []}, features=features
                )
                continue
            kwargs = {"path": str(path), "length": max_length, "start": start, "stop": stop}
            kwargs["words"] = words
            splits[name] = datasets.Dataset.from_generator(
                _rows,
                features=features,
                gen_kwargs=kwargs,
                cache_dir=str(work / "hf"),
                fingerprint=f"{key[:32]}-{name}",
            )
        # datasets writes no shard for an empty split and then cannot load it: ask for one.
        shards = {name: 1 for name, split in splits.items() if len(split) == 0}
        datasets.DatasetDict(splits).save_to_disk(str(work / "blocks"), num_shards=shards)
    (work / "blocks" / "femlm_blocks.json").write_text(
        json.dumps({"key": key, **stats}, indent=2) + "\n", encoding="utf-8"
    )


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Hide datasets' own bars: our tokenising bar already shows the slow part."""
    import datasets

    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            datasets.enable_progress_bars()


def _publish(built: pathlib.Path, final: pathlib.Path) -> None:
    """Rename into place; if another process (another rank) got there first, keep its copy."""
    try:
        built.rename(final)
    except OSError:
        if not final.is_dir():
            raise
