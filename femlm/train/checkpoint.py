"""Checkpoints that are written atomically and verified before use.

A checkpoint is a folder ``step-NNNNNNN`` holding ``model.safetensors``,
``training.pt`` (optimizer, scheduler, RNG states, step), ``femlm_config.json``,
the model's ``config.json`` (so ``from_pretrained`` opens the folder) and
``manifest.json`` with the sha256 of every other file. It is written under a
temporary name and renamed when complete, so a crash leaves either the whole
checkpoint or a ``.tmp`` folder that is never read. Nothing is unpickled:
weights are safetensors and ``training.pt`` is read with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from femlm.errors import FemlmError
from femlm.files import sha256_file
from femlm.runs import CONFIG_FILE
from femlm.train.export import HF_CONFIG, save_tokenizer_for, write_hf_config

_NAME = re.compile(r"^step-(\d+)$")
MODEL_FILE = "model.safetensors"
STATE_FILE = "training.pt"
MANIFEST = "manifest.json"


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict with tied weights stored once (safetensors refuses shared memory)."""
    dropped = {name for name, _ in _tied_names(model)}
    return {
        name: tensor.detach().contiguous().cpu()
        for name, tensor in model.state_dict().items()
        if name not in dropped
    }


def save_checkpoint(
    folder: Path,
    step: int,
    model: nn.Module,
    state: dict[str, Any],
    config: dict[str, Any],
    tokenizer: Any = None,
) -> Path:
    """Write ``folder/step-NNNNNNN`` atomically; return its path. With ``tokenizer``
    the folder opens as a Trainer checkpoint does: ``AutoTokenizer`` and
    ``AutoModelForMaskedLM.from_pretrained`` both read it."""
    final = folder / f"step-{step:07d}"
    tmp = folder / f".step-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # "format": "pt" and config.json let from_pretrained open the folder (transformers 4
    # refuses safetensors without the format), for evaluating intermediate checkpoints.
    save_file(model_tensors(model), str(tmp / MODEL_FILE), metadata={"format": "pt"})
    torch.save(state, tmp / STATE_FILE)
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    names = [MODEL_FILE, STATE_FILE, CONFIG_FILE]
    if write_hf_config(model, tmp):
        names.append(HF_CONFIG)
    if tokenizer is not None:
        save_tokenizer_for(tokenizer, model, tmp)
    files = {name: sha256_file(tmp / name) for name in names}
    (tmp / MANIFEST).write_text(json.dumps({"step": step, "sha256": files}, indent=2) + "\n")
    _fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first (``.tmp`` leftovers are ignored)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def verify(path: Path) -> dict[str, Any]:
    """The manifest, after checking every file's sha256; FemlmError if anything is off."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise FemlmError(f"checkpoint {path} is incomplete (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text())
        expected = manifest["sha256"]
        if not isinstance(expected, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and "/" not in k for k, v in expected.items()
        ):
            raise ValueError("sha256 must map file names to digests")
    except (ValueError, KeyError, TypeError):
        raise FemlmError(f"checkpoint {path} has a corrupt {MANIFEST}") from None
    for name, digest in expected.items():
        file = path / name
        if not file.is_file():
            raise FemlmError(f"checkpoint {path} is missing {name}")
        if sha256_file(file) != digest:
            raise FemlmError(f"checkpoint {path} is corrupt ({name} fails its sha256)")
    return manifest


def load_checkpoint(path: Path, model: nn.Module) -> dict[str, Any]:
    """Verify, load the weights into ``model`` and return the training state."""
    verify(path)
    if not (path / MODEL_FILE).is_file():
        found = ", ".join(sorted(p.name for p in path.iterdir())) or "nothing"
        raise FemlmError(
            f"checkpoint {path} has no {MODEL_FILE} (it holds {found}); femlm reads "
            "safetensors weights only and never unpickles a pytorch_model.bin"
        )
    tensors = load_file(str(path / MODEL_FILE))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    tied = {n for n, _ in _tied_names(model)}
    if unexpected or set(missing) - tied:
        raise FemlmError(
            f"checkpoint {path} does not fit this model "
            f"(missing {sorted(set(missing) - tied)[:3]}, unexpected {unexpected[:3]})"
        )
    try:
        return torch.load(path / STATE_FILE, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise FemlmError(
            f"checkpoint {path}: {STATE_FILE} is not a weights-only tensor file (nothing was "
            f"unpickled): {first[:160]}"
        ) from None


def _tied_names(model: nn.Module) -> list[tuple[str, str]]:
    """(dropped, kept) names of parameters that share memory with an earlier one."""
    seen: dict[int, str] = {}
    pairs = []
    for name, tensor in model.state_dict().items():
        key = tensor.data_ptr()
        if key in seen and tensor.numel() > 0:
            pairs.append((name, seen[key]))
        else:
            seen[key] = name
    return pairs


def prune(folder: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` checkpoints."""
    for old in list_checkpoints(folder)[: -max(keep_last, 1)]:
        shutil.rmtree(old, ignore_errors=True)


def restore(
    start: Path, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any
) -> tuple[int, float]:
    """Load checkpoint ``start`` into the model, optimizer, scheduler, scaler and RNG;
    (step, elapsed)."""
    state = load_checkpoint(start, model)
    missing = {"step", "optimizer", "scheduler", "rng"} - set(
        state if isinstance(state, dict) else ()
    )
    if missing:
        raise FemlmError(f"checkpoint {start}: {STATE_FILE} lacks {', '.join(sorted(missing))}")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"])
    if torch.cuda.is_available() and "cuda_rng" in state:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"]), float(state.get("elapsed", 0.0))


def training_state(step: int, optimizer: Any, scheduler: Any, elapsed: float) -> dict[str, Any]:
    state = {
        "step": step,
        "elapsed": elapsed,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state
