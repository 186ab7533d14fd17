"""Counter-based random numbers keyed per example.

A ``torch.Generator`` hands out numbers in sequence, so what example ``i``
gets depends on what was drawn before it: the batch it landed in, the worker
that built that batch. :class:`KeyedGenerator` instead hashes (row key, draw
number, element index) with the splitmix64 finaliser, so row ``b`` of every
draw is a pure function of ``keys[b]``. Element indices are hashed per
dimension, so padding a row to a different length leaves its draws unchanged.

All arithmetic is int64 with wrap-around, which PyTorch performs on CPU and GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_M1 = _signed(0xBF58476D1CE4E5B9)
_M2 = _signed(0x94D049BB133111EB)


def _shift_right(x: Tensor, s: int) -> Tensor:
    """Logical right shift of int64 (``>>`` on int64 is arithmetic)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def mix(x: Tensor) -> Tensor:
    """splitmix64 finaliser: a bijective, well-avalanched int64 -> int64 hash.

    Written in place on one fresh tensor: this runs on every element of
    every draw, and allocation dominated it.
    """
    x = x ^ _shift_right(x, 30)
    x.mul_(_M1)
    x.bitwise_xor_(_shift_right(x, 27))
    x.mul_(_M2)
    return x.bitwise_xor_(_shift_right(x, 31))


def mix_ints(*values: int | Tensor) -> Tensor:
    """Hash a tuple of ints (or equal-shaped int64 tensors) into one int64 key."""
    h = torch.tensor(0, dtype=torch.long)
    for v in values:
        v = torch.as_tensor(v, dtype=torch.long)
        h = mix(h * _GOLDEN + v + _GOLDEN)
    return h


class KeyedGenerator:
    """Random draws for a batch whose row ``b`` depends only on ``keys[b]``.

    Args:
        keys: ``[batch]`` int64, one key per row, e.g. ``mix_ints(seed, epoch, index)``.

    Successive calls to :func:`uniform` give independent numbers; the same
    sequence of calls with the same keys gives the same numbers.
    """

    def __init__(self, keys: Tensor) -> None:
        if keys.dim() != 1:
            raise ValueError(f"keys must be 1-D [batch], got shape {tuple(keys.shape)}")
        self.keys = keys.long()
        self.draws = 0

    @property
    def device(self) -> torch.device:
        return self.keys.device

    def bits(self, shape: Sequence[int], batch_dim: int) -> Tensor:
        """Hashed int64 of ``shape``; ``shape[batch_dim]`` must equal ``len(keys)``."""
        shape = tuple(shape)
        if shape[batch_dim] != len(self.keys):
            raise ValueError(
                f"draw shape {shape} has no batch of {len(self.keys)} at dim {batch_dim}"
            )
        view = [1] * len(shape)
        view[batch_dim] = len(self.keys)
        h = mix(self.keys.view(view) + self.draws * _GOLDEN)
        self.draws += 1
        for dim, size in enumerate(shape):
            if dim == batch_dim:
                continue
            index_shape = [1] * len(shape)
            index_shape[dim] = size
            index = torch.arange(1, size + 1, device=self.device).view(index_shape)
            h = mix(h + index * _GOLDEN)
        return h.expand(shape)

    def bits_at(self, index: Sequence[Tensor], batch_dim: int) -> Tensor:
        """Hashed int64 for the elements at ``index`` (a tuple of ``[n]`` index
        tensors, as ``Tensor.nonzero(as_tuple=True)`` gives): cheaper than
        :meth:`bits` when only a few elements of a large tensor need a number.
        """
        h = mix(self.keys[index[batch_dim]] + self.draws * _GOLDEN)
        self.draws += 1
        for dim, idx in enumerate(index):
            if dim != batch_dim:
                h = mix(h + (idx + 1) * _GOLDEN)
        return h


def _to_unit(bits: Tensor) -> Tensor:
    # The top 53 bits make an exactly representable double in [0, 1).
    return _shift_right(bits, 11).double().mul_(2.0**-53)


def random_bits(
    generator: torch.Generator | KeyedGenerator, shape: Sequence[int], batch_dim: int, bits: int
) -> Tensor:
    """Int64 of ``shape`` uniform on ``[0, 2**bits - 1)`` (``bits`` <= 62)."""
    if isinstance(generator, KeyedGenerator):
        return _shift_right(generator.bits(shape, batch_dim), 64 - bits) % ((1 << bits) - 1)
    return torch.randint(
        (1 << bits) - 1, tuple(shape), generator=generator, device=generator.device
    )


def uniform_pair_at(
    generator: torch.Generator | KeyedGenerator, index: Sequence[Tensor], batch_dim: int
) -> tuple[Tensor, Tensor]:
    """Two independent float64 uniforms ``[n]`` per element at ``index``, from one
    64-bit hash split into halves (32 bits each is plenty for a replacement draw)."""
    if isinstance(generator, KeyedGenerator):
        bits = generator.bits_at(index, batch_dim)
        high = _shift_right(bits, 32).double().mul_(2.0**-32)
        low = (bits & 0xFFFFFFFF).double().mul_(2.0**-32)
        return high, low
    u = torch.rand(
        2, len(index[0]), generator=generator, dtype=torch.float64, device=generator.device
    )
    return u[0], u[1]


def uniform(
    generator: torch.Generator | KeyedGenerator, shape: Sequence[int], batch_dim: int
) -> Tensor:
    """Float64 uniforms in [0, 1) of ``shape`` from either kind of generator.

    ``batch_dim`` names the dimension indexed by the batch row; a
    ``torch.Generator`` ignores it.
    """
    if isinstance(generator, KeyedGenerator):
        return _to_unit(generator.bits(shape, batch_dim))
    return torch.rand(
        tuple(shape), generator=generator, dtype=torch.float64, device=generator.device
    )
