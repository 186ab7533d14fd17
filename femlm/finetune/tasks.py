"""Classification tasks: reading CSV/JSONL files, splits and label checks.

A built-in task (``bbc``, ``movies``, ``debian``) is a folder made by
``femlm data fetch``; a user task is one file (split here, stratified, with a
fixed seed) or a folder of train/dev/test files (splits used as given).
"""

from __future__ import annotations

import csv
import io
import logging
import random
import re
from pathlib import Path
from typing import Any

from femlm.corpora.fetch import TASKS, task_dir
from femlm.corpora.hygiene import SPLIT_SEED, stratified_split
from femlm.data.readers import json_record
from femlm.errors import FemlmError

log = logging.getLogger("femlm")

SPLITS = ("train", "dev", "test")
SUFFIXES = (".jsonl", ".csv", ".tsv")

Row = tuple[str, str]  # (text, label name)
# A sentence pair travels as one text "A<PAIR_SEP>B", so that splitting and subsampling,
# which hash and sort texts, treat it as one example; encoding splits it again.
PAIR_SEP = "\x1f"


def read_task_file(
    path: Path, text_field: str = "text", label_field: str = "label", pair_field: str | None = None
) -> list[Row]:
    """(text, label) rows of a CSV, TSV or JSONL file; labels become strings. With
    ``pair_field`` each text is the pair ``text + PAIR_SEP + pair``."""
    if not path.is_file():
        raise FemlmError(f"task file not found: {path}")
    if path.suffix not in SUFFIXES:
        raise FemlmError(f"{path}: unsupported task file type; use .jsonl, .csv or .tsv")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: spreadsheets write a BOM
    except UnicodeDecodeError as err:
        raise FemlmError(f"{path} is not UTF-8 text (byte {err.start})") from None
    if path.suffix == ".jsonl":
        records = _jsonl_records(path, text)
    else:
        records = _csv_records(path, text, (text_field, label_field, pair_field))
    rows, empty = [], 0
    for line, record in records:
        for name in (text_field, label_field, pair_field):
            if name and record.get(name) is None:
                raise FemlmError(f"{path} line {line} has no {name!r} field")
        label = _label(record[label_field], path, line)
        text = str(record[text_field]).replace(PAIR_SEP, " ")
        if not text.strip():
            empty += 1  # nothing to classify: an empty text would score as a guess
            continue
        if pair_field:
            text += PAIR_SEP + str(record[pair_field]).replace(PAIR_SEP, " ")
        rows.append((text, label))
    if empty:
        log.warning("%s: skipped %d example(s) with empty text", path, empty)
    if not rows:
        raise FemlmError(f"{path} has no examples with text")
    return rows


def _label(value: Any, path: Path, line: int) -> str:
    """A class name: a string, or an integer (2.0 from a spreadsheet counts as 2)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool | float | dict | list) or str(value).strip() == "":
        raise FemlmError(f"{path} line {line}: label {value!r} is not a class name or integer")
    return str(value).strip()


def _jsonl_records(path: Path, text: str) -> list[tuple[int, dict]]:
    records = []
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        records.append((line, json_record(raw, path, line)))
    return records


def _csv_records(path: Path, text: str, needed: tuple) -> list[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix == ".tsv" else ",")
    columns = reader.fieldnames or []
    flags = ("--text-field", "--label-field", "--text-pair-field")
    for name, flag in zip(needed, flags, strict=True):
        if name and columns and name not in columns:
            raise FemlmError(
                f"{path} has no column {name!r} (columns: {', '.join(columns)}); set {flag}"
            )
    return [(reader.line_num, record) for record in reader]


def label_order(names: set[str]) -> list[str]:
    """Sorted label names; numerically when all are integers, so "10" follows "9"."""
    if all(re.fullmatch(r"-?\d+", n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


def split_rows(rows: list[Row]) -> dict[str, list[Row]]:
    """Deterministic stratified 80/10/10 split, the one the built-in tasks use."""
    parts = stratified_split([{"text": t, "label": y} for t, y in rows], seed=SPLIT_SEED)
    return {name: [(r["text"], r["label"]) for r in part] for name, part in parts.items()}


def load_task(cfg: Any) -> tuple[dict[str, list[Row]], str]:
    """The train/dev/test rows of ``cfg.task`` and how they were split.

    ``cfg`` needs ``task``, ``cache_dir``, ``text_field`` and ``label_field``.
    """
    if not cfg.task:
        raise FemlmError("no task given; name a built-in task or a CSV/JSONL file")
    path = Path(cfg.task).expanduser()
    pair = getattr(cfg, "text_pair_field", None)
    if cfg.task in TASKS and not path.exists():
        path = task_dir(cfg.task, cfg.cache_dir)
        if not path.is_dir():
            raise FemlmError(f"task {cfg.task!r} is not in {path}; run `femlm data fetch --tasks`")
    if path.is_dir():
        splits = {
            s: read_task_file(_split_file(path, s), cfg.text_field, cfg.label_field, pair)
            for s in SPLITS
        }
        how = "given"
    elif path.exists():
        splits = split_rows(read_task_file(path, cfg.text_field, cfg.label_field, pair))
        how = f"stratified 80/10/10, seed {SPLIT_SEED}"
    else:
        raise FemlmError(f"task file not found: {cfg.task} (built-in tasks: {', '.join(TASKS)})")
    _check_labels(splits, cfg.task)
    return splits, how


def _split_file(folder: Path, split: str) -> Path:
    for suffix in SUFFIXES:
        if (folder / f"{split}{suffix}").is_file():
            return folder / f"{split}{suffix}"
    raise FemlmError(f"{folder} has no {split}.jsonl or {split}.csv")


def _check_labels(splits: dict[str, list[Row]], task: str) -> None:
    train = {y for _, y in splits["train"]}
    if len(train) < 2:
        raise FemlmError(f"task {task} has only one class ({', '.join(train)}) in train")
    for split in ("dev", "test"):
        if not splits[split]:
            raise FemlmError(f"task {task}: the {split} split is empty; give more examples")
        unseen = sorted({y for _, y in splits[split]} - train)
        if unseen:
            raise FemlmError(f"task {task}: {split} label(s) never seen in train: {unseen}")


def subsample(rows: list[Row], limit: int | None, seed: int = SPLIT_SEED) -> list[Row]:
    """At most ``limit`` rows, each class keeping its share (at least one row)."""
    if limit is None or limit >= len(rows):
        return rows
    groups: dict[str, list[Row]] = {}
    for row in sorted(rows):
        groups.setdefault(row[1], []).append(row)
    quota = {y: max(1, len(g) * limit // len(rows)) for y, g in groups.items()}
    # Largest remainders get the rows that flooring left over.
    by_rest = sorted(groups, key=lambda y: (-(len(groups[y]) * limit % len(rows)), y))
    for y in by_rest[: max(0, limit - sum(quota.values()))]:
        quota[y] += 1
    kept = []
    for y, group in groups.items():
        random.Random(f"{seed}:{y}").shuffle(group)
        kept += group[: quota[y]]
    return kept
