"""File helpers shared across modules: one sha256 (checkpoints, the block cache,
downloads) and one atomic JSON writer (results, timings, re-evaluations).
The run folder's layout is :mod:`femlm.runs`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from femlm.errors import FemlmError


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so size does not matter."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Temporary file then rename, so a killed run never leaves a half-written result.

    Numbers that json cannot encode natively (numpy scalars) are written as floats.
    """
    path = Path(path)
    make_folder(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def cache_root() -> Path:
    """The default cache folder, ``$FEMLM_CACHE`` if set, else ``~/.cache/femlm``:
    corpora and tasks live in it, tokenised blocks under ``blocks/``."""
    env = os.environ.get("FEMLM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "femlm"


def check_config_json(path: str | os.PathLike) -> None:
    """FemlmError when a folder's ``config.json`` is there but not JSON (a truncated
    copy): said of the config, before a tokenizer or model loader blames itself."""
    config = os.path.join(os.path.expanduser(str(path)), "config.json")
    if not os.path.isfile(config):
        return
    try:
        with open(config, encoding="utf-8") as f:
            json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise FemlmError(
            f"{config} is not valid JSON ({str(err).splitlines()[0]}): the folder's model config is damaged"
        ) from None


def make_folder(path: str | os.PathLike, what: str = "folder") -> Path:
    """``path`` created with its parents (kept if it exists), or a one-line FemlmError:
    a file in the way, no permission, a read-only or virtual file system."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise FemlmError(f"the {what} {path} is a file, not a folder: choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FemlmError(f"cannot create the {what} {path}: {err.strerror or err}") from None
    return path
