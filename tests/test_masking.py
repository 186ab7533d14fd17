"""Masking samplers: the invariants every strategy promises."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from femlm.masking.keyed import KeyedGenerator, mix_ints, uniform
from femlm.masking.samplers import (
    ACROSS_EPOCHS,
    FULLY_EXPLORED,
    SPAN_MAX,
    STRATEGIES,
    _tile_spans,
    apply_replacement,
    budget,
    resolve_views_rate,
    sample_masks,
    span_lengths,
    unit_ids,
)


@st.composite
def batches(draw, max_len=40):
    """A random batch: ids, a maskable pattern (holes = specials/padding), word ids, seed."""
    b = draw(st.integers(1, 4))
    length = draw(st.integers(1, max_len))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    p_maskable = draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))
    maskable = torch.rand(b, length, generator=g) < p_maskable
    word_len = torch.randint(1, 4, (b, length), generator=g)
    word_ids = (torch.rand(b, length, generator=g) < 1 / word_len).long().cumsum(-1)
    ids = torch.randint(5, 100, (b, length), generator=g)
    return ids, maskable, word_ids, seed


def _gen(seed: int, keyed: bool, b: int):
    if keyed:
        return KeyedGenerator(mix_ints(seed, 0, torch.arange(b)))
    return torch.Generator().manual_seed(seed)


@settings(max_examples=150, deadline=None)
@given(batches(), st.integers(2, 10), st.sampled_from(FULLY_EXPLORED), st.booleans())
def test_fully_explored_views_partition_the_maskable_set(batch, views, strategy, keyed):
    ids, maskable, word_ids, seed = batch
    m = sample_masks(ids, maskable, strategy, views, None, _gen(seed, keyed, len(ids)), word_ids)
    assert m.shape == (views, *ids.shape)
    assert torch.equal(m.sum(0), maskable.long()), "each maskable token in exactly one view"
    if strategy != "fully-explored-span":
        sizes = m.sum(-1)  # [views, batch]
        assert (sizes.max(0).values - sizes.min(0).values).le(1).all()


@settings(max_examples=60, deadline=None)
@given(batches(), st.integers(2, 8), st.booleans())
def test_contiguous_views_are_blocks_up_to_a_rotation(batch, views, keyed):
    # Blocks are contiguous in position order once rotated: along the row read
    # as a circle, the view changes exactly once per block boundary.
    ids, maskable, _, seed = batch
    gen = _gen(seed, keyed, len(ids))
    m = sample_masks(ids, maskable, "fully-explored-contiguous", views, None, gen)
    order = torch.arange(views).view(views, 1, 1).expand_as(m)
    view_of_pos = torch.where(m, order, 0).sum(0)
    for row, keep in zip(view_of_pos, maskable, strict=True):
        seq = row[keep]
        changes = int((seq != seq.roll(1)).sum())
        blocks = len(seq.unique())
        assert changes == (blocks if blocks > 1 else 0), seq.tolist()


def _contiguous_layout(seed, epoch, index, views=4, length=30):
    maskable = torch.ones(1, length, dtype=torch.bool)
    maskable[0, 0] = maskable[0, -1] = False
    gen = KeyedGenerator(mix_ints(seed, epoch, torch.tensor([index])))
    m = sample_masks(maskable.long(), maskable, "fully-explored-contiguous", views, None, gen)
    return tuple((m[:, 0].long() * torch.arange(1, views + 1)[:, None]).sum(0).tolist())


def test_contiguous_layout_is_random_per_seed_epoch_and_example():
    base = _contiguous_layout(0, 0, 0)
    assert _contiguous_layout(0, 0, 0) == base, "same key, same layout"
    others = [_contiguous_layout(s, e, i) for s, e, i in [(1, 0, 0), (0, 1, 0), (0, 0, 1)]]
    assert all(layout != base for layout in others), "seed, epoch and example each change it"
    layouts = {_contiguous_layout(0, e, 0) for e in range(40)}
    assert len(layouts) > 30, "offsets and view orders vary over epochs"
    # Every block boundary is possible: which maskable positions start a block.
    starts = set()
    for layout in layouts:
        starts |= {i for i in range(2, 29) if layout[i] != layout[i - 1]}
    assert len(starts) > 20


@settings(max_examples=100, deadline=None)
@given(batches(), st.sampled_from(STRATEGIES), st.floats(0.05, 0.6), st.booleans())
def test_no_strategy_masks_outside_the_maskable_set(batch, strategy, rate, keyed):
    ids, maskable, word_ids, seed = batch
    views = None if strategy in FULLY_EXPLORED + ACROSS_EPOCHS else 3
    m = sample_masks(ids, maskable, strategy, views, rate, _gen(seed, keyed, len(ids)), word_ids)
    assert not (m & ~maskable).any()


@settings(max_examples=100, deadline=None)
@given(batches(), st.floats(0.05, 0.9), st.integers(1, 5))
def test_random_views_have_the_exact_count(batch, rate, views):
    ids, maskable, _, seed = batch
    m = sample_masks(ids, maskable, "random", views, rate, _gen(seed, False, 1))
    n = maskable.sum(-1)
    expected = torch.where(n > 0, torch.floor(n * rate + 0.5).clamp(min=1), 0)
    assert torch.equal(m.sum(-1), expected.long().expand(views, -1))


@settings(max_examples=100, deadline=None)
@given(batches(), st.floats(0.1, 0.5))
def test_whole_word_masks_whole_words_up_to_the_budget(batch, rate):
    ids, maskable, word_ids, seed = batch
    m = sample_masks(ids, maskable, "whole-word", 2, rate, _gen(seed, False, 1), word_ids)
    units = unit_ids(maskable, word_ids)
    k = budget(maskable, rate)
    for v in range(2):
        for b in range(len(ids)):
            u = units[b][maskable[b]]
            chosen = m[v, b][maskable[b]]
            for word in u.unique():
                assert chosen[u == word].all() or not chosen[u == word].any(), "word split"
            longest = int(torch.bincount(u).max()) if len(u) else 0
            assert k[b] <= chosen.sum() < k[b] + max(longest, 1)


@settings(max_examples=100, deadline=None)
@given(batches(), st.floats(0.1, 0.5))
def test_span_count_reaches_the_budget_and_overshoots_by_less_than_a_span(batch, rate):
    ids, maskable, _, seed = batch
    m = sample_masks(ids, maskable, "span", 3, rate, _gen(seed, True, len(ids)))
    k = budget(maskable, rate)
    counts = m.sum(-1)
    assert (counts >= k).all() and (counts < k + SPAN_MAX).all()


def _fe_span_segments(ids, maskable, word_ids, seed, keyed):
    """The tiling fully-explored-span draws first from a fresh generator of the same seed."""
    noise = uniform(_gen(seed, keyed, len(ids)), maskable.shape, batch_dim=0)
    return _tile_spans(unit_ids(maskable, word_ids), noise)


@settings(max_examples=150, deadline=None)
@given(batches(max_len=80), st.integers(2, 10), st.booleans(), st.booleans())
def test_fully_explored_span_groups_stay_within_one_span_of_n_over_k(batch, views, keyed, words):
    ids, maskable, word_ids, seed = batch
    word_ids = word_ids if words else None
    m = sample_masks(
        ids, maskable, "fully-explored-span", views, None, _gen(seed, keyed, len(ids)), word_ids
    )
    segments = _fe_span_segments(ids, maskable, word_ids, seed, keyed)
    sizes = m.sum(-1)  # [views, batch]
    for b in range(len(ids)):
        n = int(maskable[b].sum())
        longest = int(torch.bincount(segments[b][maskable[b]]).max()) if n else 0
        assert (sizes[:, b] - n / views).abs().max() <= longest
        if n >= views:
            assert (sizes[:, b] > 0).all(), f"an empty view: {sizes[:, b].tolist()}"


def test_fully_explored_span_with_18_tokens_and_7_views_never_leaves_a_view_empty():
    # The audit's case: one draw gave view sizes [3, 4, 0, 4, 2, 0, 5].
    maskable = torch.ones(500, 20, dtype=torch.bool)
    maskable[:, 0] = maskable[:, -1] = False
    gen = KeyedGenerator(mix_ints(0, 0, torch.arange(500)))
    m = sample_masks(maskable.long(), maskable, "fully-explored-span", 7, None, gen)
    assert (m.sum(-1) > 0).all()
    assert torch.equal(m.sum(0), maskable.long())


def test_keyed_masks_do_not_depend_on_padding_or_batch_neighbours():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 50, (5, 30), generator=g)
    maskable = torch.rand(5, 30, generator=g) < 0.9
    keys = mix_ints(3, 1, torch.arange(100, 105))
    for strategy in STRATEGIES:
        full = sample_masks(
            ids,
            maskable,
            strategy,
            4 if strategy in FULLY_EXPLORED else 2,
            None,
            KeyedGenerator(keys),
        )
        padded_ids = torch.cat([ids, torch.zeros(5, 9, dtype=torch.long)], 1)
        padded_mask = torch.cat([maskable, torch.zeros(5, 9, dtype=torch.bool)], 1)
        sub = [3, 1]  # a different batch: two of the rows, reordered, padded
        alone = sample_masks(
            padded_ids[sub],
            padded_mask[sub],
            strategy,
            4 if strategy in FULLY_EXPLORED else 2,
            None,
            KeyedGenerator(keys[sub]),
        )
        assert torch.equal(alone[..., :30], full[:, sub]), strategy
        assert not alone[..., 30:].any()


def test_sequences_shorter_than_views_leave_some_views_empty():
    ids = torch.arange(10).view(1, 10)
    maskable = torch.zeros(1, 10, dtype=torch.bool)
    maskable[0, 1:4] = True  # 3 maskable tokens, 7 views
    m = sample_masks(ids, maskable, "fully-explored", 7, None, torch.Generator().manual_seed(0))
    per_view = m.sum(-1).squeeze(1)
    assert per_view.sum() == 3 and per_view.max() == 1
    assert (per_view == 0).sum() == 4, "views without a token stay empty, nothing is invented"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_row_with_nothing_maskable_gets_no_mask(strategy):
    ids = torch.arange(12).view(2, 6)
    maskable = torch.zeros(2, 6, dtype=torch.bool)
    maskable[1, 1:5] = True
    m = sample_masks(ids, maskable, strategy, None, 0.5, torch.Generator().manual_seed(0))
    assert not m[:, 0].any() and m[:, 1].any()


def test_views_and_rate_are_tied_for_fully_explored():
    assert resolve_views_rate("fully-explored", None, 0.15) == (7, 1 / 7)
    assert resolve_views_rate("fully-explored", None, None) == (7, 1 / 7)
    assert resolve_views_rate("fully-explored", 4, None) == (4, 0.25)
    assert resolve_views_rate("fully-explored", 7, 0.14) == (7, 1 / 7)
    assert resolve_views_rate("random", None, None) == (1, 0.15)
    assert resolve_views_rate("random", 7, 0.15) == (7, 0.15)


@pytest.mark.parametrize(
    ("strategy", "views", "rate", "message"),
    [
        ("fully-explored", 4, 0.15, "disagree"),
        ("random", None, 0.0, "rate"),
        ("random", None, 1.0, "rate"),
        ("span", None, -0.1, "rate"),
        ("random", 0, None, "views"),
        ("fully-explored", 1, None, "at least 2"),
        ("fully-explored", None, 0.9, "at least 2"),
        ("mystery", None, None, "unknown"),
    ],
)
def test_impossible_views_or_rate_raise_a_clear_value_error(strategy, views, rate, message):
    with pytest.raises(ValueError, match=message):
        resolve_views_rate(strategy, views, rate)


def _truncated_geometric_pmf(p, max_len):
    w = [p * (1 - p) ** (k - 1) for k in range(1, max_len + 1)]
    return [x / sum(w) for x in w]


def _chi2(counts, pmf):
    n = sum(counts)
    return sum((c - n * q) ** 2 / (n * q) for c, q in zip(counts, pmf, strict=True))


def test_span_lengths_follow_the_truncated_geometric():
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lengths = span_lengths(u)
    counts = torch.bincount(lengths, minlength=SPAN_MAX + 1)[1:].tolist()
    assert lengths.min() >= 1 and lengths.max() <= SPAN_MAX
    # 9 degrees of freedom: P(chi2 > 27.9) = 0.001. A nearby wrong law (p=0.22,
    # or clipping without renormalising) scores in the hundreds on this sample.
    assert _chi2(counts, _truncated_geometric_pmf(0.2, SPAN_MAX)) < 27.9
    assert _chi2(counts, _truncated_geometric_pmf(0.22, SPAN_MAX)) > 100
    assert abs(lengths.double().mean().item() - 3.78) < 0.03


def test_tiled_spans_inside_sequences_have_the_stated_lengths():
    g = torch.Generator().manual_seed(0)
    maskable = torch.ones(400, 256, dtype=torch.bool)
    spans = _tile_spans(unit_ids(maskable), torch.rand(400, 256, generator=g, dtype=torch.float64))
    lengths = []
    for row in spans[:, :200]:
        lengths.append(torch.bincount(row)[:-1])  # the last span is cut by the slice
    counts = torch.bincount(torch.cat(lengths), minlength=SPAN_MAX + 1)[1:].tolist()
    assert _chi2(counts, _truncated_geometric_pmf(0.2, SPAN_MAX)) < 27.9


def test_replacement_is_80_10_10_and_never_draws_a_special_token():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 50, (400, 500), generator=g)
    mask = torch.rand(ids.shape, generator=g) < 0.5
    specials = [0, 1, 2, 3, 4]
    out = apply_replacement(ids, mask, 4, 50, specials, 0.8, 0.1, g)
    assert torch.equal(out[~mask], ids[~mask]), "unmasked positions are untouched"
    n = mask.sum().item()
    to_mask = (out[mask] == 4).sum().item() / n
    changed = ((out[mask] != 4) & (out[mask] != ids[mask])).sum().item() / n
    # ~100k masked positions: one standard deviation of each share is < 0.0013;
    # a 1/49 chance that a random draw equals the original token is expected.
    assert abs(to_mask - 0.8) < 0.006
    assert abs(changed - 0.1 * 48 / 49) < 0.006
    random_ids = out[mask & (out != 4) & (out != ids)]
    assert not torch.isin(random_ids, torch.tensor(specials)).any()


def test_replacement_policy_of_all_mask_tokens():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 50, (10, 20), generator=g)
    mask = torch.ones_like(ids, dtype=torch.bool)
    out = apply_replacement(ids, mask, 4, 50, [0, 4], 1.0, 0.0, g)
    assert (out == 4).all()


def test_replacement_rejects_impossible_probabilities():
    ids = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="<= 1"):
        apply_replacement(ids, ids.bool(), 4, 50, [], 0.8, 0.3, torch.Generator())
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        apply_replacement(ids, ids.bool(), 4, 50, [], -0.1, 0.1, torch.Generator())


def test_fully_explored_partition_is_uniform_over_assignments():
    # 4 tokens into 2 views: each of the C(4,2)=6 splits (3 distinct partitions up
    # to view order, 6 assignments) should appear with probability 1/6.
    g = torch.Generator().manual_seed(0)
    ids = torch.zeros(6000, 4, dtype=torch.long)
    maskable = torch.ones(6000, 4, dtype=torch.bool)
    m = sample_masks(ids, maskable, "fully-explored", 2, None, g)[0]
    code = (m.long() * torch.tensor([1, 2, 4, 8])).sum(-1)
    counts = torch.bincount(code, minlength=16)
    seen = counts[counts > 0]
    assert len(seen) == 6
    assert _chi2(seen.tolist(), [1 / 6] * 6) < 20.5  # 5 dof, p = 0.001
    assert math.isclose(seen.sum().item(), 6000)
