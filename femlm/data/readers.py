"""Streaming corpus readers: text, JSON lines, Parquet and saved datasets.

Nothing is read whole: text and JSONL files line by line, Parquet in row
batches, ``save_to_disk`` folders memory-mapped. Any other folder is searched
recursively, in sorted order, for those.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from femlm.errors import FemlmError

log = logging.getLogger("femlm")

_KINDS = {
    ".txt": "text",
    ".text": "text",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
}
_BATCH = 1000  # documents per tokenizer call and rows per Arrow/Parquet read
BAD_UTF8_MODES = ("skip", "error")

Source = tuple[str, pathlib.Path]  # (kind, path), kind in text/jsonl/parquet/dataset


def resolve_inputs(paths: Sequence[str | os.PathLike] | str | os.PathLike) -> list[Source]:
    """The readable sources behind ``paths``, in order; folders expand in sorted order.

    Checked up front so a typo fails at once with one line, not mid-run.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not isinstance(paths, (list, tuple)) or not all(
        isinstance(p, (str, os.PathLike)) for p in paths
    ):
        raise FemlmError(
            f"inputs must be paths to files or saved datasets, not {type(paths).__name__}; "
            "save an in-memory dataset with dataset.save_to_disk(DIR) and pass DIR"
        )
    if not paths:
        raise FemlmError("no input files given")
    sources: list[Source] = []
    for given in paths:
        path = pathlib.Path(given).expanduser()
        if not path.exists():
            raise FemlmError(f"input {str(given)!r} does not exist")
        if path.is_dir() and not _is_saved_dataset(path):
            found = _walk(path)
            if not found:
                raise FemlmError(
                    f"folder {str(given)!r} holds no .txt, .jsonl, .json, .parquet file or saved dataset"
                )
            sources.extend(found)
        elif path.is_dir():
            sources.append(("dataset", path))
        elif path.suffix.lower() in _KINDS:
            sources.append((_KINDS[path.suffix.lower()], path))
        else:
            raise FemlmError(
                f"{str(given)!r}: unsupported file type {path.suffix or '(none)'!r}; use .txt, .jsonl, .json, .parquet or a datasets.save_to_disk folder"
            )
    return sources


def _is_saved_dataset(path: pathlib.Path) -> bool:
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def _walk(folder: pathlib.Path) -> list[Source]:
    """The corpus files under ``folder``, each real file once: a link inside the folder
    is followed to its file (read once, however many links name it), a link leading
    outside it is skipped with a warning, and a link to nothing is a FemlmError."""
    top = folder.resolve()
    found: list[Source] = []
    seen: set[pathlib.Path] = set()
    for entry in _entries(folder):
        real = entry.resolve()
        if entry.is_symlink() and not real.is_relative_to(top):
            log.warning("skipped %s: a link to %s, outside %s", entry, real, folder)
            continue
        if real in seen:
            continue
        seen.add(real)
        found.append(
            (_KINDS[entry.suffix.lower()], entry) if entry.is_file() else ("dataset", entry)
        )
    return found


def _entries(folder: pathlib.Path) -> Iterator[pathlib.Path]:
    """Corpus files and saved datasets below ``folder``, sorted, folders never entered
    twice (a link to a folder is not followed: ``self -> .`` would loop)."""
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink() and not entry.exists():
            raise FemlmError(f"{entry} is a link to {os.readlink(entry)}, which does not exist")
        if entry.is_dir():
            if _is_saved_dataset(entry):
                yield entry
            elif entry.is_symlink():
                log.warning("skipped %s: a link to a folder (not followed)", entry)
            else:
                yield from _entries(entry)
        elif entry.suffix.lower() in _KINDS:
            yield entry


def iter_documents(
    paths: Sequence[str | os.PathLike] | str | os.PathLike,
    text_field: str = "text",
    on_bad_utf8: str = "skip",
    stats: dict | None = None,
) -> Iterator[str]:
    """Stream the documents of ``paths``, one string each, holding one batch at most.

    Inputs are checked now; reading happens lazily as the iterator is consumed.
    ``stats`` (when given) gets ``documents`` and ``bad_utf8`` counts. Lines that
    are not UTF-8 are skipped and counted (``on_bad_utf8="skip"``) or raise
    FemlmError naming file and line (``"error"``). Blank documents are skipped.
    """
    if on_bad_utf8 not in BAD_UTF8_MODES:
        raise FemlmError(f"on_bad_utf8 must be 'skip' or 'error', got {on_bad_utf8!r}")
    sources = resolve_inputs(paths)
    counts = stats if stats is not None else {}
    counts.setdefault("documents", 0)
    counts.setdefault("bad_utf8", 0)
    return documents_of(sources, text_field, on_bad_utf8, counts)


def documents_of(sources: list[Source], field: str, on_bad: str, counts: dict) -> Iterator[str]:
    for kind, path in sources:
        if kind == "text":
            texts = (line.rstrip("\r\n") for _, line in _lines(path, on_bad, counts))
        elif kind == "jsonl":
            texts = _jsonl_texts(path, field, on_bad, counts)
        elif kind == "parquet":
            texts = _parquet_texts(path, field)
        else:
            texts = _dataset_texts(path, field)
        for text in texts:
            if text.strip():
                counts["documents"] += 1
                yield text


# A file is binary, not text with a few bad lines, when a NUL byte or a majority
# of lines that are not UTF-8 shows up among its first lines.
SNIFF_LINES = 1000


def _lines(path: pathlib.Path, on_bad: str, counts: dict) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) pairs; only splits on ``\\n``, like the files' writers."""
    bad = number = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if number == SNIFF_LINES + 1 and 2 * bad > SNIFF_LINES:
                _binary(path, f"{bad} of its first {SNIFF_LINES} lines are not UTF-8")
            if number <= SNIFF_LINES and b"\0" in raw:
                _binary(path, f"line {number} holds a NUL byte")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                if on_bad == "error":
                    raise FemlmError(
                        f"{path}:{number}: not UTF-8 (bad byte at column {err.start + 1}); re-encode the file or skip such lines (on_bad_utf8='skip')"
                    ) from None
                counts["bad_utf8"] += 1
                bad += 1
                continue
            yield number, line.removeprefix("\ufeff") if number == 1 else line
    if number <= SNIFF_LINES and 2 * bad > number:
        _binary(path, f"{bad} of its {number} lines are not UTF-8")


def _binary(path: pathlib.Path, why: str) -> None:
    raise FemlmError(f"{path} does not look like text ({why}); give UTF-8 text, JSONL or Parquet")


def _jsonl_texts(path: pathlib.Path, field: str, on_bad: str, counts: dict) -> Iterator[str]:
    for number, line in _lines(path, on_bad, counts):
        if not line.strip():
            continue
        record = json_record(line, path, number)
        if field not in record:
            keys = ", ".join(map(repr, record))
            raise FemlmError(
                f"{path}:{number}: no field {field!r} (found {keys}); set the text field"
            )
        yield from _as_texts([record[field]], path, field)


def json_record(line: str, path: Any, number: int) -> dict:
    """One line of a JSON-lines file as a dict; the one parser of JSONL for corpora and tasks."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise FemlmError(
            f"{path}:{number}: not valid JSON ({err.msg}); expected one JSON object per line"
        ) from None
    if not isinstance(record, dict):
        raise FemlmError(
            f"{path}:{number}: a JSON {type(record).__name__}, not an object; expected one JSON object per line"
        )
    return record


def _as_texts(values: Iterable[Any], where: Any, field: str) -> Iterator[str]:
    """Strings pass, nulls are skipped, anything else is an error: never silently str()."""
    for value in values:
        if isinstance(value, str):
            yield value
        elif value is not None:
            raise FemlmError(f"{where}: field {field!r} holds {type(value).__name__}, not text")


def _parquet_texts(path: pathlib.Path, field: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    if field not in parquet.schema_arrow.names:
        raise FemlmError(
            f"{path}: no column {field!r} (found {', '.join(parquet.schema_arrow.names)}); set the text field"
        )
    for batch in parquet.iter_batches(batch_size=_BATCH, columns=[field]):
        yield from _as_texts(batch.column(0).to_pylist(), path, field)


def _dataset_texts(path: pathlib.Path, field: str) -> Iterator[str]:
    """Rows of a saved Dataset, or of every split of a saved DatasetDict (sorted by name)."""
    import datasets

    loaded = datasets.load_from_disk(str(path))
    parts = (
        [loaded] if isinstance(loaded, datasets.Dataset) else [loaded[k] for k in sorted(loaded)]
    )
    for part in parts:
        if field not in part.column_names:
            raise FemlmError(
                f"{path}: no column {field!r} (found {', '.join(part.column_names)}); set the text field"
            )
        for batch in part.select_columns([field]).iter(batch_size=_BATCH):
            yield from _as_texts(batch[field], path, field)


def progress_bar(items: Iterable, desc: str, progress: bool, unit: str = "doc") -> Iterable:
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
