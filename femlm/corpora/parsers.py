"""Pure parsers for the binary formats of the packages ``femlm data fetch`` reads.

dictd, SWORD zText, R lazy-load data, fortune files and gzip; the text-markup
cleaners (reStructuredText, man pages, Debian descriptions, prose filter) are
in :mod:`femlm.corpora.textclean`. Each function takes bytes or text already read from
an unpacked package and returns clean strings, so it can be tested on a tiny
made-up fixture with the same binary layout. Nothing here touches the network
or the cache.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import struct
import zlib
from collections.abc import Iterator

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(_B64)}
_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    """Collapse all whitespace to single spaces: one paragraph = one line of JSONL."""
    return _WS.sub(" ", text).strip()


def decode_text(data: bytes) -> str:
    """UTF-8 where valid, else latin-1: old text files are one or the other."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# --- dictd (GCIDE) -----------------------------------------------------------


def dictd_number(digits: str) -> int:
    """Decode dictd's base-64 numbers (most significant digit first)."""
    value = 0
    for c in digits:
        value = value * 64 + _B64_VALUE[c]
    return value


def dictd_index(index_text: str) -> list[tuple[int, int]]:
    """(offset, length) of each entry, deduplicated by offset, in file order.

    Many headwords point at one entry; ``00-`` entries are database metadata.
    """
    seen: set[int] = set()
    spans = []
    for line in index_text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0].startswith("00-"):
            continue
        offset, length = dictd_number(parts[1]), dictd_number(parts[2])
        if offset not in seen:
            seen.add(offset)
            spans.append((offset, length))
    spans.sort()
    return spans


_GCIDE_SOURCE = re.compile(
    r"^\s*\[(?:[^\]\n]*(?:Webster|WordNet|PJC|Century|Suppl)[^\]\n]*|[A-Z]{2,4}\.?)\]\s*$", re.M
)
_GCIDE_PRON = re.compile(r"\\[^\\\n]*\\")


def gcide_entry(entry: str) -> list[str]:
    """Paragraphs of one dictionary entry: no headword, pronunciation or braces.

    The source tags (``[1913 Webster]``) close each sense or quotation, so they
    are the natural paragraph breaks.
    """
    lines = entry.strip("\n").split("\n")
    if not lines:
        return []
    first = lines[0]
    pron = _GCIDE_PRON.search(first)
    lines[0] = first[pron.end() :].lstrip(" ,") if pron else ""
    body = _GCIDE_PRON.sub("", "\n".join(lines)).replace("{", "").replace("}", "")
    paragraphs = (squash(p) for p in _GCIDE_SOURCE.split(body))
    return [p for p in paragraphs if p]


def gcide_paragraphs(index_text: str, dict_data: bytes) -> Iterator[str]:
    """All paragraphs of a dictd dictionary; ``dict_data`` is the *uncompressed* .dict."""
    for offset, length in dictd_index(index_text):
        yield from gcide_entry(decode_text(dict_data[offset : offset + length]))


def gunzip(data: bytes) -> bytes:
    """dictzip and .gz files are plain gzip to a reader."""
    return gzip.decompress(data)


# --- SWORD zText (World English Bible) ---------------------------------------


def sword_verses(bzs: bytes, bzv: bytes, bzz: bytes) -> Iterator[str]:
    """Raw OSIS markup of each verse, in canonical order.

    ``.bzs``: 12-byte entries (offset, compressed size, size) of zlib blocks in
    ``.bzz``; ``.bzv``: 10-byte entries (block, offset, size) into a block.
    """
    blocks: dict[int, bytes] = {}
    for i in range(0, len(bzv) - 9, 10):
        block, offset, size = struct.unpack("<IIH", bzv[i : i + 10])
        if size == 0:
            continue
        if block not in blocks:
            start, csize, _ = struct.unpack("<III", bzs[block * 12 : block * 12 + 12])
            blocks[block] = zlib.decompress(bzz[start : start + csize])
        yield blocks[block][offset : offset + size].decode("utf-8", "replace")


_OSIS_DROP = re.compile(r"<(note|title)\b[^>]*?(?<!/)>.*?</\1>|<(note|title)\b[^>]*/>", re.S)
_OSIS_BREAK = re.compile(
    r'<div\b[^>]*type="(?:x-p|book|chapter|introduction|section)"[^>]*/>|<chapter\b[^>]*/>'
    r'|<lb\b[^>]*type="x-p"[^>]*/>|</?lg\b[^>]*>'
)


def osis_paragraphs(markup: str) -> list[str]:
    """Plain paragraphs from OSIS: notes and titles dropped, all tags stripped."""
    markup = _OSIS_DROP.sub(" ", markup)
    paragraphs = (squash(re.sub(r"<[^>]*>", "", p)) for p in _OSIS_BREAK.split(markup))
    return [p for p in paragraphs if p]


# --- fortune -------------------------------------------------------------------


def fortune_records(text: str) -> list[str]:
    """Records of a fortune file, separated by lines holding only ``%``."""
    records = re.split(r"^%[ \t]*$", text.replace("\r\n", "\n"), flags=re.M)
    return [r.strip("\n") for r in records if r.strip()]


# --- R lazy-load data (.rdx/.rdb) ------------------------------------------------


class _RReader:
    """Just enough of R's XDR serialisation for lists, vectors and strings."""

    def __init__(self, data: bytes) -> None:
        if data[:2] not in (b"X\n", b"B\n"):
            raise ValueError("not an XDR R serialisation")
        self.data, self.pos, self.refs = data, 2, []
        version = self.int()
        self.pos += 8  # writer and minimal reader R versions
        if version == 3:
            skip = self.int()  # length of the native encoding name that follows
            self.pos += skip

    def int(self) -> int:
        (value,) = struct.unpack(">i", self.data[self.pos : self.pos + 4])
        self.pos += 4
        return value

    def length(self) -> int:
        n = self.int()
        return (self.int() << 32) + self.int() if n == -1 else n

    def item(self):  # noqa: C901 - one branch per R type is the clearest form
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind in (254, 253, 252, 251, 247, 242, 241):  # NULL and special environments
            return None
        if kind == 255:  # reference to an earlier symbol
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == 1:  # symbol
            name = self.item()
            self.refs.append(name)
            return name
        if kind == 2:  # pairlist: attributes, tag, car, cdr
            out = {}
            while kind == 2:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else None
                out[tag] = self.item()
                flags = self.int()
                kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
            if kind != 254:
                raise ValueError(f"unsupported pairlist tail type {kind}")
            return out
        if kind == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            raw = self.data[self.pos : self.pos + n]
            self.pos += n
            return raw.decode("latin-1" if flags & (1 << 14) else "utf-8", "replace")
        if kind in (10, 13, 14):
            n, size = self.length(), 8 if kind == 14 else 4
            fmt = f">{n}{'d' if kind == 14 else 'i'}"
            value = list(struct.unpack(fmt, self.data[self.pos : self.pos + n * size]))
            self.pos += n * size
        elif kind in (16, 19):
            value = [self.item() for _ in range(self.length())]
        else:
            raise ValueError(f"unsupported R type {kind}")
        if has_attr:
            names = self.item().get("names")
            if names is not None:
                value = dict(zip(names, value, strict=True))
        return value


def r_unserialize(data: bytes):
    """Python value of an R serialisation: named lists and vectors become dicts."""
    return _RReader(data).item()


def rdx_variables(rdx: bytes) -> dict[str, tuple[int, int]]:
    """Variable name -> (offset, length) in the .rdb, from the gzip'd .rdx index."""
    index = r_unserialize(gzip.decompress(rdx))
    return {name: (int(span[0]), int(span[1])) for name, span in index["variables"].items()}


def rdb_record(rdb: bytes, offset: int, length: int):
    """One lazy-load record: 4-byte length, then zlib (or a typed compressor) payload."""
    record = rdb[offset : offset + length]
    payload = record[4:]
    if payload[:1] == b"x":  # a bare zlib stream (``compress = TRUE``)
        return r_unserialize(zlib.decompress(payload))
    kind, payload = payload[:1], payload[1:]  # R >= 2.10 typed records
    decompress = {b"Z": zlib.decompress, b"2": bz2.decompress, b"X": lzma.decompress}
    if kind == b"0":
        return r_unserialize(payload)
    if kind not in decompress:
        raise ValueError(f"unknown lazy-load compression {kind!r}")
    return r_unserialize(decompress[kind](payload))


def blank_line_paragraphs(lines: list[str]) -> list[str]:
    """Join lines into paragraphs separated by blank lines (novels in R packages)."""
    text = "\n".join(line or "" for line in lines)
    paragraphs = (squash(p) for p in re.split(r"\n\s*\n", text))
    return [p for p in paragraphs if p]
