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
from collections.abc import Sequence

import torch
from torch import Tensor

from femlm.masking.keyed import KeyedGenerator, random_bits, uniform, uniform_pair_at
from femlm.masking.strategies import (  # noqa: F401  (public names)
    ACROSS_EPOCHS,
    DEFAULT_RATE,
    FULLY_EXPLORED,
    STRATEGIES,
    resolve_views_rate,
)

SPAN_P = 0.2
SPAN_MAX = 10
_KEY_BITS = 43
_KEY_MAX = (1 << _KEY_BITS) - 1

Generator = torch.Generator | KeyedGenerator


def budget(maskable: Tensor, rate: float) -> Tensor:
    """Number of tokens to predict per row: ``[batch] int64`` (see module docs)."""
    n = maskable.sum(-1)
    k = torch.floor(n.double() * rate + 0.5).long()
    return torch.where(n > 0, k.clamp(min=1), torch.zeros_like(k))


def sample_masks(
    input_ids: Tensor,
    maskable: Tensor,
    strategy: str,
    views: int | None = None,
    rate: float | None = None,
    generator: Generator | None = None,
    word_ids: Tensor | None = None,
    epoch: int = 0,
) -> Tensor:
    """Draw ``views`` masks for every sequence of a batch.

    Args:
        input_ids: ``[batch, length]`` token ids (only the shape and device are used).
        maskable: ``[batch, length]`` bool, False for special tokens and padding.
        strategy: one of :data:`STRATEGIES`.
        views, rate: see :func:`resolve_views_rate`.
        generator: ``torch.Generator`` or :class:`KeyedGenerator` (keys ``[batch]``).
        word_ids: optional ``[batch, length]`` int, the word each token belongs
            to (any value, -1 where unknown); ``whole-word`` and ``span`` then
            work in words. Consecutive maskable tokens with equal ids form a word.
        epoch: only for ``fully-explored-epochs``, whose ``generator`` must be keyed
            on the cycle ``epoch // views`` (:func:`cycle_of`), not on the epoch.

    Returns:
        ``[views, batch, length]`` bool. For the fully-explored family the views
        of a row are pairwise disjoint and their union is exactly its maskable set.
        ``fully-explored-epochs`` returns ``[1, batch, length]``: group
        ``(epoch + offset) mod K`` of the row's partition, the partition and the
        offset drawn once per cycle, so K consecutive epochs of a cycle mask each
        maskable token of a row exactly once.
    """
    views, rate = resolve_views_rate(strategy, views, rate)
    if input_ids.dim() != 2 or maskable.shape != input_ids.shape:
        raise ValueError(
            f"input_ids and maskable must both be [batch, length], got "
            f"{tuple(input_ids.shape)} and {tuple(maskable.shape)}"
        )
    if generator is None:
        raise ValueError(
            "sample_masks needs an explicit generator (torch.Generator or KeyedGenerator)"
        )
    maskable = maskable.bool()
    if strategy == "random":
        return _random_exact(maskable, views, rate, generator)
    if strategy == "random-bernoulli":
        noise = uniform(generator, (views, *maskable.shape), batch_dim=1)
        return (noise < rate) & maskable
    if strategy == "fully-explored":
        rank = _rank(_random_order(generator, maskable, batch_dim=0))
        return _split_into_views(rank, maskable, views)
    if strategy == "fully-explored-contiguous":
        return _contiguous_views(maskable, views, generator)
    if strategy == "fully-explored-epochs":
        return _cycle_group(maskable, views, epoch, generator)
    units = unit_ids(maskable, word_ids)
    if strategy == "whole-word":
        segments = units.unsqueeze(0).expand(views, -1, -1)
        return _choose_segments(segments, maskable, budget(maskable, rate), generator)
    if strategy == "span":
        segments = _tile_spans(units, uniform(generator, (views, *maskable.shape), batch_dim=1))
        return _choose_segments(segments, maskable, budget(maskable, rate), generator)
    # fully-explored-span: one tiling per row, its spans dealt out to the views.
    segments = _tile_spans(units, uniform(generator, maskable.shape, batch_dim=0))
    return _deal_segments(segments, maskable, views, generator)


def _cycle_group(maskable: Tensor, views: int, epoch: int, generator: Generator) -> Tensor:
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
    if not (0.0 <= mask_prob <= 1.0 and 0.0 <= random_prob <= 1.0):
        raise ValueError(
            f"mask_prob and random_prob must be in [0, 1], got {mask_prob}, {random_prob}"
        )
    if mask_prob + random_prob > 1.0 + 1e-9:
        raise ValueError(f"mask_prob + random_prob must be <= 1, got {mask_prob + random_prob}")
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
