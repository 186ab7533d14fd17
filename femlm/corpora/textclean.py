"""Pure cleaners for text markup: reStructuredText, man pages, Debian descriptions.

Like :mod:`femlm.corpora.parsers`, each function takes text already read from an
unpacked package and returns clean strings; ``looks_like_prose`` is the filter
every reader applies last. Nothing here touches the network or the cache.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from femlm.corpora.parsers import squash


def looks_like_prose(text: str, min_words: int = 5, min_alpha: float = 0.6) -> bool:
    """Keep paragraphs of enough mostly-alphabetic words; drops code, tables, art."""
    words = text.split()
    if len(words) < min_words:
        return False
    alpha = sum(
        1 for w in words if re.fullmatch(r"[(\"'“‘]*[A-Za-z][A-Za-z'’-]*[.,;:!?)\"'”’]*", w)
    )
    return alpha >= min_alpha * len(words)


# --- reStructuredText ------------------------------------------------------------

# Directives whose body is code, markup or navigation rather than prose; the body
# of any other directive (note, function, class, ...) is documentation and stays.
_CODE_DIRECTIVES = frozenset(
    [
        "code-block",
        "code",
        "sourcecode",
        "literalinclude",
        "doctest",
        "testsetup",
        "testcode",
        "testoutput",
        "testcleanup",
        "productionlist",
        "toctree",
        "highlight",
        "image",
        "figure",
        "csv-table",
        "list-table",
        "flat-table",
        "table",
        "math",
        "raw",
        "include",
        "kernel-doc",
        "kernel-include",
        "kernel-abi",
        "kernel-feat",
        "graphviz",
        "index",
        "tabularcolumns",
        "autosummary",
        "cssclass",
        "parsed-literal",
        "opcode",
    ]
)
_DIRECTIVE = re.compile(r"^\.\.\s+([\w:.-]+)::")
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+<>:._])\1{2,}$")
_TABLE = re.compile(r"^(?:[+|].*[+|]|=+(?:\s+=+)+|-+(?:\s+-+)+)$")
_BULLET = re.compile(r"^(?:[-*+•]|#\.|\(?\d+[.)]|\(?[a-z][.)])\s+")
_FIELD = re.compile(r"^:[^:`\s][^:`]*:(?:\s+|$)")
_INLINE = [
    (re.compile(r"``([^`]+)``"), r"\1"),
    (re.compile(r"(?::[\w:.+-]+:)?`([^`<]*?)\s*(?:<[^`>]*>)?`(?:__?)?"), r"\1"),
    (re.compile(r"\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*"), r"\1\2"),
    (re.compile(r"\s?\[(?:#\w*|\d+|\*)\]_"), ""),
    (re.compile(r"\|([\w -]+)\|"), r"\1"),
    (re.compile(r"(?<=[A-Za-z0-9])_(?=[\s.,;:)]|$)"), ""),
]


def rst_inline(text: str) -> str:
    """Unwrap roles, links, literals and emphasis to the words a reader sees."""
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return text.replace("`", "").replace("~", "")


def rst_paragraphs(text: str) -> list[str]:
    """Prose paragraphs of a reStructuredText file, markup removed.

    Drops headings, tables, comments, code directives, doctests and the literal
    blocks introduced by ``::``; keeps the bodies of prose directives.
    """
    out: list[str] = []
    para: list[str] = []
    skip_deeper: int | None = None  # drop lines indented more than this
    skip_to_blank = False

    def flush() -> None:
        if para:
            out.append(squash(rst_inline(" ".join(para))))
            para.clear()

    for raw in text.expandtabs(8).splitlines():
        line = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        if skip_deeper is not None:
            if not line or indent > skip_deeper:
                continue
            skip_deeper = None
        if skip_to_blank:
            skip_to_blank = bool(line)
            continue
        if not line:
            flush()
        elif line.startswith(".."):
            flush()
            match = _DIRECTIVE.match(line)
            if not match or match.group(1).split(":")[-1] in _CODE_DIRECTIVES:
                skip_deeper = indent
        elif _UNDERLINE.match(line):
            para.clear()  # the line above was a heading, not prose
        elif _TABLE.match(line) or line.startswith(">>>"):
            flush()
            skip_to_blank = True
        elif _FIELD.match(line) and not para:
            continue  # directive options and field-list names
        else:
            if line.endswith("::"):
                body = line[:-2].rstrip()
                para.append(body + ":" if body and not line[-3].isspace() else body)
                flush()
                skip_deeper = indent
                continue
            para.append(_BULLET.sub("", line))
    flush()
    return [p for p in out if p]


# --- man pages ---------------------------------------------------------------------

MAN_DROP_SECTIONS = frozenset(
    {"SYNOPSIS", "SEE ALSO", "EXAMPLES", "EXAMPLE", "LIBRARY", "COLOPHON", "COPYRIGHT"}
)


_MAN_TABLE = re.compile(r"\S {3,}\S|[\u2500-\u257f]")  # column gaps or box drawing


def is_man_stub(source: str) -> bool:
    """A page that only includes another (``.so man3/other.3``) adds no text."""
    lines = [ln for ln in source.splitlines() if ln.strip() and not ln.startswith('.\\"')]
    return bool(lines) and lines[0].startswith(".so ") and len(lines) <= 2


def man_paragraphs(rendered: str) -> list[str]:
    """Paragraphs of a man page rendered as plain text (``man ... | col -bx``).

    Unindented lines are section headings (and the page header/footer); whole
    sections listed in ``MAN_DROP_SECTIONS`` go, as do subsection headings and
    table-like lines (columns separated by runs of spaces).
    """
    out: list[str] = []
    para: list[str] = []
    section = ""
    for raw in rendered.expandtabs(8).splitlines():
        line = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        if not line or indent < 5 or _MAN_TABLE.search(line):
            if para:
                out.append(squash(" ".join(para)))
                para = []
            if line and indent == 0:
                section = line
            continue
        if section not in MAN_DROP_SECTIONS:
            para.append(line)
    if para:
        out.append(squash(" ".join(para)))
    return out


# --- Debian package index -----------------------------------------------------------

DEBIAN_SECTIONS = [
    "admin",
    "database",
    "devel",
    "editors",
    "electronics",
    "games",
    "graphics",
    "hamradio",
    "mail",
    "math",
    "net",
    "science",
    "sound",
    "text",
    "utils",
    "video",
    "web",
]


def deb822_records(text: str) -> Iterator[dict[str, str]]:
    """Stanzas of a Packages or Translation file; continuation lines kept with ``\\n``."""
    for stanza in re.split(r"\n\s*\n", text):
        record: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key:
                record[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                record[key] = value.strip()
        if record:
            yield record


def debian_description(description: str) -> str:
    """Summary line, then each long-description paragraph on its own line."""
    summary, _, body = description.partition("\n")
    paragraphs = [squash(p) for p in re.split(r"^\s\.\s*$", body, flags=re.M)]
    return "\n".join(p for p in [squash(summary), *paragraphs] if p)


def debian_section_examples(packages: list[str], translations: list[str]) -> list[tuple]:
    """(text, section) per package, joining Packages to Translation-en on Description-md5.

    Only the topical sections count; ``contrib/net`` is ``net``. A package seen
    in several suites is kept once.
    """
    descriptions = {}
    for text in translations:
        for rec in deb822_records(text):
            if "Description-md5" in rec and "Description-en" in rec:
                descriptions[rec["Description-md5"]] = rec["Description-en"]
    seen: set[str] = set()
    examples = []
    for text in packages:
        for rec in deb822_records(text):
            section = rec.get("Section", "").rsplit("/", 1)[-1]
            name, md5 = rec.get("Package"), rec.get("Description-md5")
            if section not in DEBIAN_SECTIONS or name in seen or md5 not in descriptions:
                continue
            seen.add(name)
            examples.append((debian_description(descriptions[md5]), section))
    return examples
