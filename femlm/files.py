"""File helpers shared across modules: one sha256 (checkpoints, the block cache,
downloads) and one atomic JSON writer (results, timings, re-evaluations).
The run folder's layout is :mod:`femlm.runs`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def cache_root() -> Path:
    """The default cache folder, ``$FEMLM_CACHE`` if set, else ``~/.cache/femlm``:
    corpora and tasks live in it, tokenised blocks under ``blocks/``."""
    env = os.environ.get("FEMLM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "femlm"
