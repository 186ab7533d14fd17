"""What leaves a run in Hugging Face layout: the final folder and each checkpoint's
``config.json``, loadable with ``from_pretrained`` on transformers 4 and 5."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from femlm.config import TrainConfig
from femlm.data.tokenizer import save_portable
from femlm.model import max_positions, quiet_transformers, uses_token_types
from femlm.runs import CONFIG_FILE
from femlm.schema import save_config

HF_CONFIG = "config.json"


def save_tokenizer_for(tokenizer: Any, model: nn.Module, folder: str | Path) -> None:
    """Save ``tokenizer`` beside ``model``: portable, with the model's position limit and
    input names, so ``pipeline`` truncates long texts and pairs get ``token_type_ids``."""
    save_portable(tokenizer, folder, max_positions(model), uses_token_types(model))


def save_final(model: nn.Module, tokenizer: Any, cfg: TrainConfig, folder: Path) -> None:
    """``final/``: model, tokenizer and femlm config, moved into place by one rename."""
    tmp = folder.with_name(folder.name + ".tmp")
    with quiet_transformers():  # its shard-writing bar would ignore --no-progress
        model.save_pretrained(tmp, safe_serialization=True)
    save_tokenizer_for(tokenizer, model, tmp)
    save_config(cfg, tmp / CONFIG_FILE)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


def write_hf_config(model: nn.Module, folder: Path) -> Path | None:
    """``folder/config.json`` as ``save_pretrained`` writes it (None for a non-HF model)."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_json_file"):
        return None
    config = copy.deepcopy(config)
    config.architectures = [type(model).__name__]
    config.to_json_file(str(folder / HF_CONFIG))
    return folder / HF_CONFIG
