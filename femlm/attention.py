"""Fused attention for the rotary (RoFormer) presets.

transformers runs RoFormer's attention eagerly: the (batch, heads, T, T) scores
and probabilities are materialised, soft-maxed and dropped out as separate
tensors. The same arithmetic through PyTorch's ``scaled_dot_product_attention``
is one fused kernel, which on GPUs saves the memory of those tensors at long
blocks; on the 2-core CPU of docs/benchmarks.md it was no faster. The weights, their names and
the saved checkpoints are unchanged, so a model trained either way loads the same
in transformers; only the floating-point order (and the dropout's random draws)
differ, so a comparison stays within one setting.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from femlm.errors import FemlmError


@functools.cache
def _fused_class() -> type[nn.Module]:
    from transformers.models.roformer.modeling_roformer import RoFormerSelfAttention

    class FusedRoFormerSelfAttention(RoFormerSelfAttention):
        """RoFormer self-attention through ``scaled_dot_product_attention`` whenever it
        is plain encoder self-attention; anything else (cross-attention, a cache,
        attention weights asked for, a head mask) takes transformers' own path."""

        def forward(  # type: ignore[override]
            self,
            hidden_states: torch.Tensor,
            attention_mask: torch.Tensor | None = None,
            sinusoidal_pos: torch.Tensor | None = None,
            *args: Any,
            **kwargs: Any,
        ) -> tuple[torch.Tensor, ...]:
            # transformers 4.x passes head_mask, encoder states, cache and
            # output_attentions by position, 5.x by name: all must be unset here.
            extras = [*args, *kwargs.values()]
            if sinusoidal_pos is None or any(x is not None and x is not False for x in extras):
                return super().forward(
                    hidden_states, attention_mask, sinusoidal_pos, *args, **kwargs
                )
            shape = (*hidden_states.shape[:-1], -1, self.attention_head_size)
            q, k, v = (
                layer(hidden_states).view(shape).transpose(1, 2)
                for layer in (self.query, self.key, self.value)
            )  # each (batch, heads, T, head size)
            if self.rotary_value:
                q, k, v = self.apply_rotary_position_embeddings(sinusoidal_pos, q, k, v)
            else:
                q, k = self.apply_rotary_position_embeddings(sinusoidal_pos, q, k)
            if attention_mask is not None:
                attention_mask = attention_mask.to(q.dtype)  # additive, (batch, 1, 1, T)
            p = self.dropout.p if self.training else 0.0
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, dropout_p=p)
            # only [0] is read when no attention weights were asked for (4.x and 5.x)
            return (context.transpose(1, 2).reshape(*hidden_states.shape[:-1], self.all_head_size),)

    return FusedRoFormerSelfAttention


def use_fused_attention(model: nn.Module, name: str = "this model") -> int:
    """Switch every RoFormer self-attention module of ``model`` to the fused path, in
    place (same parameters), and return how many were switched. Other encoders get a
    FemlmError: transformers already chooses their attention (SDPA where it has it)."""
    from transformers.models.roformer.modeling_roformer import RoFormerSelfAttention

    fused = _fused_class()
    switched = 0
    for module in model.modules():
        if type(module) is RoFormerSelfAttention:
            module.__class__ = fused
            switched += 1
    if not switched:
        raise FemlmError(f"fused_attention is for rotary (RoFormer) models, not {name!r}")
    return switched
