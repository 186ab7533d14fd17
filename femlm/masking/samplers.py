"""Mask samplers: pure functions of tensors and an explicit random generator.

Every sampler returns a bool tensor ``[views, batch, length]``; ``True`` marks
a position whose token is hidden from the model and predicted. Positions where
``maskable`` is False (special tokens, padding) are never chosen.

Randomness comes only from the ``generator`` argument: a ``torch.Generator``
or a :class:`KeyedGenerator`, whose draws for row ``b`` depend only on that
row's key. The collator keys rows on (seed, epoch, example index), so masks do
not change with batch composition, padding, data-loader workers or ranks.

Budget rule shared by the baselines: a row with ``n`` maskable positions gets
``max(1, round_half_up(rate * n))`` predicted tokens (0 when ``n == 0``).
``whole-word`` and ``span`` pick whole words/spans in random order until the
budget is reached, so they may overshoot it by less than one word/span.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from femlm.masking.keyed import KeyedGenerator, random_bits, uniform
from femlm.masking.replacement import apply_replacement  # noqa: F401  (public name)
from femlm.masking.strategies import (  # noqa: F401  (public names)
    ACROSS_EPOCHS,
    DEFAULT_RATE,
    FULLY_EXPLORED,
    REGISTRY,
    STRATEGIES,
    MaskingSpec,
    resolve_views_rate,
)

SPAN_P = 0.2
SPAN_MAX = 10
_KEY_BITS = 43
_KEY_MAX = (1 << _KEY_BITS) - 1

Generator = torch.Generator | KeyedGenerator


@dataclass(frozen=True)
class Draw:
    """What every sampler reads: ``maskable [batch, length]`` bool, the masking record,
    the generator, optional ``word_ids [batch, length]`` and the epoch (an int or
    ``[batch]``; only across epochs reads it)."""

    maskable: Tensor
    spec: MaskingSpec
    generator: Generator
    word_ids: Tensor | None = None
    epoch: int | Tensor = 0

    @property
    def views(self) -> int:
        return self.spec.views

    @property
    def rate(self) -> float:
        return self.spec.rate


# name -> sampler: Draw -> [views, batch, length] bool (across epochs [1, batch, length])
SAMPLERS: dict[str, Callable[[Draw], Tensor]] = {}


def sampler(name: str) -> Callable[[Callable[[Draw], Tensor]], Callable[[Draw], Tensor]]:
    """Register the sampler of the registry entry ``name``."""
    if name not in REGISTRY:
        raise ValueError(f"{name!r} has no entry in femlm.masking.strategies.REGISTRY")

    def register(fn: Callable[[Draw], Tensor]) -> Callable[[Draw], Tensor]:
        SAMPLERS[name] = fn
        return fn

    return register


def budget(maskable: Tensor, rate: float) -> Tensor:
    """Number of tokens to predict per row: ``[batch] int64`` (see module docs)."""
    n = maskable.sum(-1)
    k = torch.floor(n.double() * rate + 0.5).long()
    return torch.where(n > 0, k.clamp(min=1), torch.zeros_like(k))


def sample_masks(
    input_ids: Tensor,
    maskable: Tensor,
    strategy: str | MaskingSpec,
    views: int | None = None,
    rate: float | None = None,
    generator: Generator | None = None,
    word_ids: Tensor | None = None,
    epoch: int | Tensor = 0,
) -> Tensor:
    """Draw ``views`` masks for every sequence of a batch.

    Args:
        input_ids: ``[batch, length]`` token ids (only the shape and device are used).
        maskable: ``[batch, length]`` bool, False for special tokens and padding.
        strategy: a :class:`MaskingSpec`, or one of :data:`STRATEGIES` with ``views``
            and ``rate`` (see :func:`resolve_views_rate`).
        generator: ``torch.Generator`` or :class:`KeyedGenerator` (keys ``[batch]``).
        word_ids: optional ``[batch, length]`` int, the word each token belongs
            to (any value, -1 where unknown); ``whole-word`` and ``span`` then
            work in words. Consecutive maskable tokens with equal ids form a word.
        epoch: only for ``fully-explored-epochs``, whose ``generator`` must be keyed
            on the cycle ``epoch // views`` (:meth:`MaskingSpec.cycle_of`); an int or
            ``[batch]``.

    Returns:
        ``[views, batch, length]`` bool. For the fully-explored family the views
        of a row are pairwise disjoint and their union is exactly its maskable set.
        ``fully-explored-epochs`` returns ``[1, batch, length]``: group
        ``(epoch + offset) mod K`` of the row's partition, the partition and the
        offset drawn once per cycle, so K consecutive epochs of a cycle mask each
        maskable token of a row exactly once.
    """
    if isinstance(strategy, MaskingSpec):
        spec = strategy
    else:
        spec = MaskingSpec.resolve(strategy, views, rate)
    if input_ids.dim() != 2 or maskable.shape != input_ids.shape:
        raise ValueError(
            f"input_ids and maskable must both be [batch, length], got "
            f"{tuple(input_ids.shape)} and {tuple(maskable.shape)}"
        )
    if generator is None:
        raise ValueError(
            "sample_masks needs an explicit generator (torch.Generator or KeyedGenerator)"
        )
    draw = Draw(maskable.bool(), spec, generator, word_ids, epoch)
    return SAMPLERS[spec.strategy](draw)


@sampler("random")
def _random(d: Draw) -> Tensor:
    return _random_exact(d.maskable, d.views, d.rate, d.generator)


@sampler("random-bernoulli")
def _bernoulli(d: Draw) -> Tensor:
    noise = uniform(d.generator, (d.views, *d.maskable.shape), batch_dim=1)
    return (noise < d.rate) & d.maskable


@sampler("fully-explored")
def _fully_explored(d: Draw) -> Tensor:
    rank = _rank(_random_order(d.generator, d.maskable, batch_dim=0))
    return _split_into_views(rank, d.maskable, d.views)


@sampler("fully-explored-contiguous")
def _fully_explored_contiguous(d: Draw) -> Tensor:
    return _contiguous_views(d.maskable, d.views, d.generator)


@sampler("fully-explored-epochs")
def _fully_explored_epochs(d: Draw) -> Tensor:
    return _cycle_group(d.maskable, d.views, d.epoch, d.generator)


@sampler("whole-word")
def _whole_word(d: Draw) -> Tensor:
    segments = unit_ids(d.maskable, d.word_ids).unsqueeze(0).expand(d.views, -1, -1)
    return _choose_segments(segments, d.maskable, budget(d.maskable, d.rate), d.generator)


@sampler("span")
def _span(d: Draw) -> Tensor:
    noise = uniform(d.generator, (d.views, *d.maskable.shape), batch_dim=1)
    segments = _tile_spans(unit_ids(d.maskable, d.word_ids), noise)
    return _choose_segments(segments, d.maskable, budget(d.maskable, d.rate), d.generator)


@sampler("fully-explored-span")
def _fully_explored_span(d: Draw) -> Tensor:
    """One tiling per row, its spans dealt out to the views."""
    noise = uniform(d.generator, d.maskable.shape, batch_dim=0)
    segments = _tile_spans(unit_ids(d.maskable, d.word_ids), noise)
    return _deal_segments(segments, d.maskable, d.views, d.generator)


def _cycle_group(maskable: Tensor, views: int, epoch: int | Tensor, generator: Generator) -> Tensor:
    """``[1, batch, length]``: this epoch's group of each row's K-group partition."""
    groups = _split_into_views(_rank(_random_order(generator, maskable, 0)), maskable, views)
    offset = (uniform(generator, maskable.shape[:1], batch_dim=0) * views).long()
    group = (epoch + offset.clamp(max=views - 1)) % views
    return groups[group, torch.arange(maskable.shape[0], device=maskable.device)].unsqueeze(0)


def unit_ids(maskable: Tensor, word_ids: Tensor | None = None) -> Tensor:
    """Index of the maskable unit (token, or word when ``word_ids`` is given).

    Returns ``[batch, length]`` int64: 0, 1, ... in position order over the
    maskable positions, -1 elsewhere. A new word starts at a maskable position
    whose word id differs from the previous position's, or whose previous
    position is not maskable.
    """
    if word_ids is None:
        starts = maskable
    else:
        if word_ids.shape != maskable.shape:
            raise ValueError(
                f"word_ids must be {tuple(maskable.shape)}, got {tuple(word_ids.shape)}"
            )
        prev_same = torch.zeros_like(maskable)
        prev_same[:, 1:] = (word_ids[:, 1:] == word_ids[:, :-1]) & maskable[:, :-1]
        starts = maskable & ~(prev_same & (word_ids >= 0))
    units = starts.long().cumsum(-1) - 1
    return torch.where(maskable, units, torch.full_like(units, -1))


def span_lengths(u: Tensor, p: float = SPAN_P, max_len: int = SPAN_MAX) -> Tensor:
    """Map uniforms in [0, 1) to geometric(p) lengths truncated to ``1..max_len``.

    Inverse CDF of the renormalised truncated geometric (SpanBERT: mean 3.78
    for p=0.2, max 10); shape is kept.
    """
    tail = 1.0 - (1.0 - p) ** max_len
    lengths = torch.ceil(torch.log1p(-u * tail) / math.log1p(-p))
    return lengths.clamp(1, max_len).long()


def _tile_spans(units: Tensor, noise: Tensor) -> Tensor:
    """Cut each row's units into consecutive spans of random length.

    ``units``: ``[batch, length]`` from :func:`unit_ids`; ``noise``: ``[..., batch,
    length]`` uniforms, one per span slot. Returns the span index of every
    position (same shape as ``noise``), -1 where ``units`` is -1.
    """
    ends = span_lengths(noise).cumsum(-1)  # span s covers units [ends[s-1], ends[s])
    u = units.expand_as(ends).clamp(min=0).contiguous()
    spans = torch.searchsorted(ends.contiguous(), u, right=True)
    return torch.where(units >= 0, spans, torch.full_like(spans, -1))


def _choose_segments(segments: Tensor, maskable: Tensor, k: Tensor, generator: Generator) -> Tensor:
    """Mask whole segments in a random order until ``k`` tokens are covered.

    ``segments``: ``[views, batch, length]`` segment index per position (-1 off
    the maskable set); ``k``: ``[batch]``. A segment is taken when the tokens of
    the segments before it in the order are fewer than ``k``.
    """
    sizes = _segment_sizes(segments)
    order = _random_order(generator, sizes > 0, batch_dim=1)
    sorted_sizes = sizes.gather(-1, order)
    before = sorted_sizes.cumsum(-1) - sorted_sizes
    taken_sorted = (before < k[None, :, None]) & (sorted_sizes > 0)
    taken = torch.zeros_like(taken_sorted).scatter_(-1, order, taken_sorted)
    return taken.gather(-1, segments.clamp(min=0)) & maskable


def _deal_segments(segments: Tensor, maskable: Tensor, views: int, generator: Generator) -> Tensor:
    """Partition segments into ``views`` groups of near-equal token counts.

    Segments are laid end to end in a random order and the row is cut into
    ``views`` groups there (see :func:`_cuts`): a group's size is within one
    segment of ``n / views`` and, when ``n >= views``, never 0. A segment is
    split only where a cut has to fall inside it. ``segments``: ``[batch, length]``.
    """
    sizes = _segment_sizes(segments)
    order = _random_order(generator, sizes > 0, batch_dim=0)
    sorted_sizes = sizes.gather(-1, order)
    ends = sorted_sizes.cumsum(-1)  # running token count at the end of each dealt segment
    cuts = _cuts(ends, maskable.sum(-1), views)
    # A token's place in the dealt order: where its segment starts, plus its place inside it.
    start = torch.empty_like(ends).scatter_(-1, order, ends - sorted_sizes)
    seg = segments.clamp(min=0)
    first = (sizes.cumsum(-1) - sizes).gather(-1, seg)  # segments are runs of maskable ranks
    rank = start.gather(-1, seg) + maskable.long().cumsum(-1) - 1 - first
    group = torch.searchsorted(cuts, rank.contiguous(), right=True)
    return _one_hot_views(group, maskable, views)


def _cuts(ends: Tensor, n: Tensor, views: int) -> Tensor:
    """Where groups end in the dealt order: ``[batch, views - 1]``, nondecreasing.

    Cut k goes to the segment end nearest ``k * n / views`` (ties to the lower
    one), which moves it by at most half a segment. Nearest ends can coincide
    when segments are long next to ``n / views`` and would leave a group empty,
    so each cut is then pushed to just past the previous one, inside a segment,
    keeping room for one token in each later group.
    """
    scaled = (ends * views).contiguous()  # compare in integers: ends * K against k * n
    last = ends.shape[-1] - 1
    cuts, prev = [], torch.zeros_like(n)
    for k in range(1, views):
        target = (k * n).unsqueeze(-1)
        i = torch.searchsorted(scaled, target).clamp(max=last)
        above = ends.gather(-1, i).squeeze(-1)
        below = torch.where(i > 0, ends.gather(-1, (i - 1).clamp(min=0)), 0).squeeze(-1)
        lower = (k * n - below * views) <= (above * views - k * n)
        cut = torch.where(lower, below, above)
        cut = torch.minimum(cut, n - (views - k)).maximum(prev + 1).minimum(n)
        cuts.append(cut)
        prev = cut
    return torch.stack(cuts, -1)


def _segment_sizes(segments: Tensor) -> Tensor:
    """Tokens per segment: ``[..., length]`` counts indexed by segment id."""
    sizes = torch.zeros_like(segments)
    return sizes.scatter_add_(-1, segments.clamp(min=0), (segments >= 0).long())


def _random_exact(maskable: Tensor, views: int, rate: float, generator: Generator) -> Tensor:
    keep = maskable.expand(views, *maskable.shape)
    return (
        _rank(_random_order(generator, keep, batch_dim=1)) < budget(maskable, rate)[None, :, None]
    )


def _split_into_views(rank: Tensor, maskable: Tensor, views: int) -> Tensor:
    """View ``floor(rank * views / n)`` for each maskable position of rank ``rank``.

    Ranks ``0..n-1`` give groups whose sizes are ``floor`` or ``ceil`` of ``n / views``.
    """
    n = maskable.sum(-1, keepdim=True).clamp(min=1)
    return _one_hot_views(rank.clamp(min=0) * views // n, maskable, views)


def _contiguous_views(maskable: Tensor, views: int, generator: Generator) -> Tensor:
    """K contiguous blocks of the maskable positions, rotated and shuffled per row.

    The blocks of :func:`_split_into_views` over position order, with the
    ranks rotated by an offset uniform on ``0..n-1`` (so the last block may
    wrap round to the row's start) and the blocks given to the views in a
    random order. Without both, every epoch and seed would mask the same
    blocks in the same view. ``maskable``: ``[batch, length]``.
    """
    b = maskable.shape[0]
    n = maskable.sum(-1, keepdim=True).clamp(min=1)
    offset = (uniform(generator, (b,), batch_dim=0) * n.squeeze(-1)).long().unsqueeze(-1)
    rank = (maskable.long().cumsum(-1) - 1 + offset) % n
    block = rank * views // n
    shuffle = _random_order(generator, maskable.new_ones(b, views), batch_dim=0)
    return _one_hot_views(shuffle.gather(-1, block), maskable, views)


def _one_hot_views(group: Tensor, maskable: Tensor, views: int) -> Tensor:
    view = torch.arange(views, device=group.device).view(views, *([1] * group.dim()))
    return (group.unsqueeze(0) == view) & maskable


def _random_order(generator: Generator, keep: Tensor, batch_dim: int) -> Tensor:
    """A uniformly random order of the last dim with the ``keep`` elements first.

    Returns ``[..., length]`` indices. One stable 1-D sort of int64 keys
    ``row << 43 | random`` is several times faster on CPU than a batched
    argsort; with 43 random bits, ties between kept elements are negligible
    (below 1e-7 per 512-token row). Dropped elements get the largest key.
    """
    *lead, length = keep.shape
    rows = keep.numel() // max(length, 1)
    keys = random_bits(generator, keep.shape, batch_dim, _KEY_BITS).masked_fill(~keep, _KEY_MAX)
    row = torch.arange(rows, device=keep.device).unsqueeze(-1)
    flat = (keys.reshape(rows, length) + (row << _KEY_BITS)).view(-1)
    order = torch.sort(flat, stable=True).indices.view(rows, length)
    return (order - row * length).view(*lead, length)


def _rank(order: Tensor) -> Tensor:
    """Invert a permutation along the last dim: the rank of each element."""
    positions = torch.arange(order.shape[-1], device=order.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)
