"""The 80/10/10 replacement of the positions a mask chose: ``[MASK]``, a random
token or the token itself, drawn per position from an explicit generator."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from femlm.masking.keyed import KeyedGenerator, uniform_pair_at
from femlm.masking.strategies import check_replacement

Generator = torch.Generator | KeyedGenerator


def apply_replacement(
    input_ids: Tensor,
    mask: Tensor,
    mask_token_id: int,
    vocab_size: int,
    excluded_ids: Sequence[int] = (),
    mask_prob: float = 0.8,
    random_prob: float = 0.1,
    generator: Generator | None = None,
) -> Tensor:
    """Corrupt the masked positions: ``[MASK]``, a random token, or unchanged.

    Each masked position independently becomes ``mask_token_id`` with
    probability ``mask_prob``, a token drawn uniformly from the vocabulary
    minus ``excluded_ids`` (special tokens) with ``random_prob``, and keeps its
    token otherwise. ``input_ids`` and ``mask`` share any shape (at least 1-D);
    with a :class:`KeyedGenerator` dim 0 must be the batch. Returns a new tensor.
    """
    check_replacement(mask_prob, random_prob)
    if mask.shape != input_ids.shape:
        raise ValueError(f"mask {tuple(mask.shape)} and input_ids {tuple(input_ids.shape)} differ")
    if generator is None:
        raise ValueError("apply_replacement needs an explicit generator")
    # Draw only at masked positions: with K views most of the tensor is unmasked.
    where = mask.nonzero(as_tuple=True)
    u, u_pick = uniform_pair_at(generator, where, batch_dim=0)
    original = input_ids[where]
    new = original.masked_fill(u < mask_prob, mask_token_id)
    if random_prob > 0:
        allowed = _allowed_ids(vocab_size, excluded_ids, input_ids.device)
        pick = (u_pick * len(allowed)).long()
        chosen = (u >= mask_prob) & (u < mask_prob + random_prob)
        new = torch.where(chosen, allowed[pick.clamp(max=len(allowed) - 1)], new)
    out = input_ids.clone()
    out[where] = new
    return out


def _allowed_ids(vocab_size: int, excluded_ids: Sequence[int], device: torch.device) -> Tensor:
    keep = torch.ones(vocab_size, dtype=torch.bool, device=device)
    excluded = [i for i in excluded_ids if 0 <= i < vocab_size]
    keep[torch.tensor(excluded, dtype=torch.long, device=device)] = False
    if not keep.any():
        raise ValueError("every vocabulary id is excluded; nothing to draw random tokens from")
    return keep.nonzero().squeeze(-1)
