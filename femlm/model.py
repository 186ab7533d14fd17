"""Models: presets built from scratch, local checkpoints for continual training,
and the MLM loss computed only where something is predicted."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from femlm.errors import FemlmError
from femlm.files import check_config_json

log = logging.getLogger("femlm")


@dataclass(frozen=True)
class Preset:
    layers: int
    hidden: int
    heads: int
    arch: str = "roformer"  # roformer, bert or modernbert

    @property
    def intermediate(self) -> int:
        return 4 * self.hidden


_SIZES = {"tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (6, 384, 6), "base": (12, 768, 12)}
# The plain names are rotary-position encoders (RoFormer): learned absolute
# positions kept BERT of the same size on the unigram plateau for ~2,500 steps,
# where RoFormer left it by step ~400 (docs/results.md, presets). The BERT presets
# keep their results reproducible under bert-<size>; ModernBERT (rotary,
# pre-norm, GeGLU, no dropout) is there too (docs/results/presets/table.md).
PRESETS = {
    **{name: Preset(*size) for name, size in _SIZES.items()},
    **{f"bert-{name}": Preset(*size, arch="bert") for name, size in _SIZES.items()},
    **{f"modernbert-{name}": Preset(*size, arch="modernbert") for name, size in _SIZES.items()},
}


def build_model(
    name_or_path: str,
    tokenizer: Any,
    max_length: int = 512,
    dropout: float | None = None,
) -> nn.Module:
    """A masked-LM: a fresh encoder from a preset name, or a local checkpoint folder.

    A checkpoint without an MLM head (e.g. a sentence-embedding encoder) gets a
    freshly initialised head whose decoder is tied to the word embeddings; this
    is logged, since its loss starts near ``log(vocab)``.
    """
    if name_or_path in PRESETS:
        return _from_preset(name_or_path, tokenizer, max_length, dropout)
    check_model_source(name_or_path)
    return _from_checkpoint(name_or_path, tokenizer, max_length, dropout)


def check_model_source(name: str | None) -> None:
    """FemlmError (one line) unless ``name`` is a preset or a local folder; what looks
    like a Hub id gets a hint, since femlm never downloads."""
    if name in PRESETS or (name and os.path.isdir(os.path.expanduser(name))):
        return
    raise FemlmError(
        f"model {name!r} is neither a preset ({', '.join(PRESETS)}) nor an existing folder"
        + hub_hint(name)
    )


def hub_hint(name: str | None) -> str:
    """For a missing ``name`` shaped like a Hub id: how to get it, since femlm never downloads."""
    if not name or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name):
        return ""
    return (
        f"; femlm reads local folders only: download a Hub model where there is network "
        f"(`hf download {name} --local-dir DIR`, or save_pretrained) and pass --model DIR"
    )


def tokenizer_source(tokenizer: str | None, model: str) -> str:
    """The folder to load the tokenizer from: ``tokenizer``, else the model's own folder
    (a preset has none)."""
    if tokenizer:
        return tokenizer
    if model in PRESETS:
        raise FemlmError(
            f"the preset {model!r} has no tokenizer: give --tokenizer DIR "
            "(train one with `femlm tokenizer train`)"
        )
    check_model_source(model)
    return model


def preset_config(name: str, tokenizer: Any, max_length: int, dropout: float | None = None) -> Any:
    """The transformers config of preset ``name`` sized for ``tokenizer``; no weights."""
    from transformers import BertConfig, RoFormerConfig

    p = PRESETS[name]
    sizes = dict(
        vocab_size=len(tokenizer), hidden_size=p.hidden, num_hidden_layers=p.layers,
        num_attention_heads=p.heads, intermediate_size=p.intermediate,
        max_position_embeddings=max(512, max_length), pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    if p.arch == "bert":
        config = BertConfig(**sizes)
    elif p.arch == "roformer":
        config = RoFormerConfig(**sizes, embedding_size=p.hidden)
    else:
        try:
            from transformers import ModernBertConfig
        except ImportError:  # added in transformers 4.48; pyproject admits 4.44
            raise FemlmError(f"the {name} preset needs transformers >= 4.48") from None
        ids = {k: getattr(tokenizer, f"{k}_token_id") for k in ("cls", "sep")}
        config = ModernBertConfig(
            **sizes, cls_token_id=ids["cls"], sep_token_id=ids["sep"],
            bos_token_id=ids["cls"], eos_token_id=ids["sep"],
        )  # fmt: skip
    set_dropout(config, dropout)
    return config


# The dropout rates of the encoders femlm loads: BERT, RoBERTa, ELECTRA and DeBERTa
# use the first two, DistilBERT "dropout" and "attention_dropout", ModernBERT the
# last three with "attention_dropout". A classifier's own rate is left alone.
_DROPOUT_KEYS = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "dropout",
    "attention_dropout",
    "embedding_dropout",
    "mlp_dropout",
)


def set_dropout(config: Any, dropout: float | None) -> None:
    """Override every dropout rate of ``config`` that :data:`_DROPOUT_KEYS` names
    (None: keep them)."""
    if dropout is None:
        return
    for key in _DROPOUT_KEYS:
        if hasattr(config, key):
            setattr(config, key, dropout)


def _from_preset(name: str, tokenizer: Any, max_length: int, dropout: float | None) -> nn.Module:
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_config(preset_config(name, tokenizer, max_length, dropout))


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' warnings and progress bars: loading prints a table of
    every fresh and unused weight, saving a shard-writing bar; femlm says in its own
    lines what matters (which weights start fresh, where the model went)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _from_checkpoint(
    path: str, tokenizer: Any, max_length: int, dropout: float | None
) -> nn.Module:
    from transformers import AutoModelForMaskedLM

    config = local_config(path, "a masked-LM")
    set_dropout(config, dropout)
    model, info = local_weights(AutoModelForMaskedLM, path, config, "a masked-LM")
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise FemlmError(
            f"the tokenizer has {len(tokenizer)} tokens but {path!r} embeds only "
            f"{model.get_input_embeddings().num_embeddings}; use the checkpoint's own tokenizer"
        )
    check_positions(model, max_length, path)
    missing = [k for k in info.get("missing_keys", []) if "embeddings.position_ids" not in k]
    if missing:
        log.warning(
            "%d weights were not in %s and start fresh (%s%s); the MLM head's decoder is "
            "tied to the word embeddings",
            len(missing),
            path,
            ", ".join(missing[:4]),
            ", ..." if len(missing) > 4 else "",
        )
    model.tie_weights()
    return model


def local_config(path: str, what: str) -> Any:
    """The ``config.json`` of a local model folder, or a one-line FemlmError."""
    from transformers import AutoConfig

    check_config_json(path)
    try:
        with quiet_transformers():
            return AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise FemlmError(f"cannot load {what} from {path!r}: {_first_line(err)}") from None


def local_weights(auto_cls: Any, path: str, config: Any, what: str) -> tuple[nn.Module, dict]:
    """``auto_cls.from_pretrained`` on a local folder: weights from safetensors only
    (a pickled ``pytorch_model.bin`` is never loaded), any unreadable file a FemlmError."""
    from safetensors import SafetensorError

    try:
        with quiet_transformers():
            return auto_cls.from_pretrained(
                path, config=config, local_files_only=True, output_loading_info=True,
                use_safetensors=True,
            )  # fmt: skip
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        raise FemlmError(f"cannot load {what} from {path!r}: {_first_line(err)}") from None
    except RuntimeError as err:  # shapes in config.json that the weights do not have
        if not any(w in str(err) for w in ("size mismatch", "mismatched", "shape")):
            raise
        raise FemlmError(
            f"cannot load {what} from {path!r}: its config.json does not match its weights "
            f"({_first_line(err)[:200]})"
        ) from None


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def max_positions(model: nn.Module) -> int | None:
    """The longest sequence ``model`` can embed, or None when it has no such limit.

    RoBERTa-style encoders (RoBERTa, XLM-R, CamemBERT, Longformer, ...) number
    positions from ``padding_idx + 1``, so ``max_position_embeddings`` 514 holds
    512 tokens; their position table says so by carrying a ``padding_idx``.
    """
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is None:
        return None
    embeddings = getattr(getattr(model, "base_model", model), "embeddings", None)
    table = getattr(embeddings, "position_embeddings", None)
    pad = getattr(table, "padding_idx", None)
    return limit - (pad + 1) if pad is not None else limit


def uses_token_types(model: nn.Module) -> bool:
    """Whether the model embeds segment ids (BERT's ``type_vocab_size`` 2; RoBERTa's 1)."""
    return getattr(model.config, "type_vocab_size", 0) >= 2


def check_positions(model: nn.Module, max_length: int, where: str) -> None:
    """FemlmError (one line) when ``max_length`` tokens do not fit ``model``'s positions."""
    limit = max_positions(model)
    if limit is None or max_length <= limit:
        return
    total = model.config.max_position_embeddings
    why = (
        ""
        if limit == total
        else f" (max_position_embeddings {total}; positions start after the padding id)"
    )
    raise FemlmError(
        f"max_length {max_length} exceeds the {limit} positions of {where!r}{why}; "
        f"lower --max-length to {limit}"
    )


def encoder_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """The encoder and the head that maps hidden states ``[..., H]`` to logits."""
    encoder = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if encoder is None:
        return None
    for head_name in ("cls", "lm_head"):  # BERT-style and RoFormer, RoBERTa-style
        head = getattr(model, head_name, None)
        if head is not None:
            return encoder, head
    if isinstance(getattr(model, "head", None), nn.Module) and hasattr(model, "decoder"):
        return encoder, nn.Sequential(model.head, model.decoder)  # ModernBERT
    return None


def mlm_loss_sum(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
    """Summed cross-entropy over predicted tokens, and how many there were.

    The prediction head (a ``[tokens, vocab]`` matmul, the costliest part of a
    small model's step) runs only at positions with a label, not at all
    ``batch * length`` positions. Callers divide by the step's total count so
    the loss is a mean over every predicted token of the step.
    """
    labels = batch["labels"]
    where = labels != -100
    count = int(where.sum())
    inputs = {
        k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")
    }
    parts = encoder_and_head(model)
    if parts is None:  # unknown architecture: full logits, then select
        logits = model(**inputs).logits[where]
    else:
        encoder, head = parts
        hidden = encoder(**inputs)[0]
        logits = head(hidden[where])
    loss = F.cross_entropy(logits.float(), labels[where], reduction="sum")
    return loss, count


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weights_fingerprint(model: nn.Module) -> str:
    """16 hex digits of the sha256 of every tensor of the state dict, names included.

    Two runs with the same fingerprint at step 0 started from the same weights to the
    bit: a start pre-trained again on another CPU differs in its last bits, which a
    paired comparison must know about.
    """
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().reshape(-1).cpu().contiguous().view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` means CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise FemlmError(f"unknown device {name!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FemlmError("device 'cuda' requested but CUDA is not available")
    return device
