"""Gradient-variance analyser: data vs mask variance, covariance vs Hamming distance.

For S probe sequences at fixed parameters (dropout off) it draws, per masking
strategy, R independent sets of K views per sequence and computes each view's
gradient. Everything the analysis reports is a quadratic form of those
gradients, so for every sequence only a running sum ``T`` of its gradients,
the sum of squared norms ``A`` and the sum over draws of the squared norm of
each draw's K-view sum ``D`` are kept (plus its mean gradient, for ``V_data``).
The estimators, their bias and why they are unbiased are in docs/theory.md.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from femlm.errors import FemlmError
from femlm.files import write_json
from femlm.masking.keyed import KeyedGenerator, mix_ints
from femlm.masking.samplers import apply_replacement, sample_masks
from femlm.masking.strategies import ACROSS_EPOCHS, FULLY_EXPLORED, WORD_LEVEL, MaskingSpec
from femlm.masking.strategies import strategy as registry_entry
from femlm.variance.config import VarianceConfig
from femlm.variance.gradients import (
    ViewGradients,
    Vocab,
    analysis_mode,
    hamming_masks,
    maskable_of,
    select_parameters,
    view_batch,
)
from femlm.variance.probe import (
    DEFAULT_VALIDATION_FRACTION,
    DEFAULT_VIEWS,
    pick_sequences,
    probe_config,
)
from femlm.variance.results import Estimate, ProbeTerms, VarianceResult
from femlm.variance.stats import (
    Arm,
    Measurement,
    Part,
    arm_of,
    assemble,
    bootstrap,
    finish_hamming,
    finish_moments,
    plan_arms,
    summarise,
)
from femlm.variance.table import format_table, recommendation

__all__ = ["VarianceConfig", "analyse", "format_table", "measure", "run_variance", "variance_terms"]

# Settings of the 80/10/10 replacement: as configured, and every chosen token -> [MASK].
SETTINGS = ("configured", "mask_only")


def strategy_list(strategies: Sequence[str]) -> list[str]:
    """``random`` (the reference) and ``fully-explored`` first, then the rest, once each.
    Across epochs is measured through fully-explored's partition (its cycle is
    fully-explored's K views spread over K epochs), so it adds no arm of its own."""
    for s in strategies:
        registry_entry(s)  # a FemlmError naming the choices
    within = [s for s in strategies if s not in ACROSS_EPOCHS]
    return list(dict.fromkeys(["random", "fully-explored", *within]))


def draw_views(
    ids: Tensor,
    maskable: Tensor,
    arm: Arm,
    cfg: VarianceConfig,
    vocab: Vocab,
    key: int,
    word_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """R independent draws of K masks of one sequence: masks and corrupted inputs ``[R, K, L]``.

    Masks are keyed on (seed, strategy, sequence ``key``, draw) and do not depend
    on the replacement setting, so both settings see the same positions.
    ``word_ids`` (``[L]``) make word-level strategies mask words, as in training.
    """
    R, K = cfg.draws, cfg.views
    spec = MaskingSpec.resolve(
        arm.strategy, K, None if arm.strategy in FULLY_EXPLORED else arm.rate,
        cfg.mask_prob, cfg.random_prob,
    )  # fmt: skip
    draws = torch.arange(R)
    tag = spec.info.key  # stable: a new registry entry leaves old probes alone
    gen = KeyedGenerator(mix_ints(cfg.seed, 1, tag, key, draws))
    rows, keep = ids.expand(R, -1), maskable.expand(R, -1)
    words = None if word_ids is None else word_ids.expand(R, -1)
    masks = sample_masks(rows, keep, spec, generator=gen, word_ids=words).transpose(0, 1)
    rgen = KeyedGenerator(mix_ints(cfg.seed, 2, tag, key, draws))
    corrupted = apply_replacement(
        rows[:, None].expand(R, K, -1), masks, vocab.mask_id, vocab.size, vocab.special_ids,
        spec.mask_prob, spec.random_prob, rgen,
    )  # fmt: skip
    return masks, corrupted


def _accumulate(acc: dict[str, Any], grads: Tensor, group: int, pairs: bool = False) -> None:
    """Add a chunk of view gradients ``[c, P]`` (consecutive groups of ``group``);
    ``pairs``: the chunk is Hamming-curve mask pairs, whose inner products are kept."""
    sums = grads.view(-1, group, grads.shape[1]).sum(1)
    acc["T"] = acc["T"] + grads.sum(0)
    acc["A"] += float((grads * grads).sum())
    acc["D"] += float((sums * sums).sum())
    if pairs:  # one Hamming level: its pairs' inner products and its sum
        acc["X"].append(float((grads[0::2] * grads[1::2]).sum()))
        acc["TL"].append(grads.sum(0))


def sequence_moments(
    grad_fn: ViewGradients, ids: Tensor, masks: Tensor, corrupted: Tensor, chunk: int, bar: Any
) -> tuple[float, float, Tensor]:
    """Mask variance of the K-view mean, single-view variance and mean gradient of one sequence."""
    R, K, L = masks.shape
    acc: dict[str, Any] = {"T": 0.0, "A": 0.0, "D": 0.0, "X": []}
    for start in range(0, R, chunk):
        m, c = masks[start : start + chunk], corrupted[start : start + chunk]
        _accumulate(acc, grad_fn(view_batch(ids, c.reshape(-1, L), m.reshape(-1, L))), K)
        bar.update(m.shape[0] * K)
    return finish_moments(acc["T"], acc["A"], acc["D"], R, K)


def sequence_hamming(
    grad_fn: ViewGradients,
    ids: Tensor,
    masks: Tensor,
    vocab: Vocab,
    cfg: VarianceConfig,
    gen: torch.Generator,
    bar: Any,
) -> tuple[float, Tensor]:
    """Single-view variance and the covariance at each overlap level for one sequence."""
    levels, pairs, _, L = masks.shape
    acc: dict[str, Any] = {"T": 0.0, "A": 0.0, "D": 0.0, "X": [], "TL": []}
    for level in masks:
        flat = level.reshape(-1, L)
        rows = ids.expand(flat.shape[0], -1)
        corrupted = apply_replacement(
            rows,
            flat,
            vocab.mask_id,
            vocab.size,
            vocab.special_ids,
            cfg.mask_prob,
            cfg.random_prob,
            gen,
        )
        _accumulate(acc, grad_fn(view_batch(ids, corrupted, flat)), 2, pairs=True)
        bar.update(flat.shape[0])
    TL = torch.stack(acc["TL"])  # on the model's device, like the gradients
    X = torch.tensor(acc["X"], dtype=torch.float64, device=TL.device)
    return finish_hamming(acc["T"], acc["A"], TL, X, pairs)


def hamming_plan(
    sequences: Sequence[Tensor], vocab: Vocab, cfg: VarianceConfig
) -> tuple[int, list[int]]:
    """Mask size m (default: a fully-explored view's size) and the overlaps on the curve."""
    n = min(int(maskable_of(s, vocab).sum()) for s in sequences)
    size = cfg.hamming_size or max(1, round(n / cfg.views))
    if 2 * size > n:
        raise FemlmError(
            f"hamming size {size} needs 2*{size} maskable tokens; the shortest probe has {n}"
        )
    points = max(2, cfg.hamming_points)
    overlaps = [round(size * (1 - i / (points - 1))) for i in range(points)]
    return size, list(dict.fromkeys(overlaps))


def measure(
    model: nn.Module,
    sequences: Sequence[Tensor],
    tokenizer: Any,
    cfg: VarianceConfig,
    hamming: bool = True,
) -> Measurement:
    """Per-sequence moments of every arm (:func:`plan_arms`) with the configured
    replacement and with all ``[MASK]``, and the Hamming curve."""
    if cfg.draws < 2 or len(sequences) < 3 or cfg.views < 2:
        raise FemlmError("the analysis needs at least 2 draws, 2 views and 3 probe sequences")
    vocab = Vocab.of(tokenizer)
    # Masks are drawn on the CPU; ViewGradients moves each chunk to the model's device.
    sequences = [torch.as_tensor(s, dtype=torch.long).cpu() for s in sequences]
    arms = plan_arms(strategy_list(cfg.strategies), cfg.views, cfg.rate)
    m = Measurement({}, {})
    strategies = {arm.strategy for arm in arms}
    words = _word_ids(tokenizer, sequences) if strategies & set(WORD_LEVEL) else None
    with analysis_mode(model):
        grad_fn = ViewGradients(model, select_parameters(model, cfg.params), cfg.grad_mode)
        size, overlaps = hamming_plan(sequences, vocab, cfg)
        total = _total_views(len(sequences), len(arms), cfg, len(overlaps) if hamming else 0)
        _announce(grad_fn, sequences[0], vocab, cfg, total, len(sequences))
        bar = _bar(total, cfg.progress)
        for arm in arms:
            m.configured[arm] = _arm_part(grad_fn, sequences, words, arm, cfg, vocab, bar)
            bare = dataclasses.replace(cfg, mask_prob=1.0, random_prob=0.0)
            m.mask_only[arm] = _arm_part(grad_fn, sequences, words, arm, bare, vocab, bar)
        if hamming:
            m.hamming_s2, m.hamming_cov = _hamming_part(
                grad_fn, sequences, size, overlaps, vocab, cfg, bar
            )
        bar.close()
    distances = [2 * (size - o) for o in overlaps] if hamming else []
    m.info = {
        "parameters": grad_fn.size,
        "grad_mode": grad_fn.mode,
        "ms_per_view": {k: round(v * 1e3, 2) for k, v in grad_fn.timings.items()},
        "hamming_size": size,
        "distances": distances,
        "arms": [dataclasses.asdict(a) for a in arms],
    }
    return m


def _word_ids(tokenizer: Any, sequences: Sequence[Tensor]) -> list[Tensor]:
    """Each probe sequence's word ids, by the rule its training blocks stored them with."""
    from femlm.data.words import WordStarts

    starts = WordStarts.of(tokenizer)
    return [torch.from_numpy(starts.word_ids(s.numpy())).long() for s in sequences]


def _arm_part(grad_fn, sequences, words, arm, run, vocab, bar) -> Part:
    mv, s2, means = [], [], []
    for key, ids in enumerate(sequences):
        word_ids = words[key] if words is not None and arm.strategy in WORD_LEVEL else None
        masks, corrupted = draw_views(ids, maskable_of(ids, vocab), arm, run, vocab, key, word_ids)
        m, s, mean = sequence_moments(grad_fn, ids, masks, corrupted, max(1, run.chunk_draws), bar)
        mv.append(m)
        s2.append(s)
        means.append(mean)
    stacked = torch.stack(means)
    gram = (stacked @ stacked.T).cpu()
    return Part(_f64(mv), _f64(s2), gram)


def _hamming_part(grad_fn, sequences, size, overlaps, vocab, cfg, bar) -> tuple[Tensor, Tensor]:
    s2, cov = [], []
    for key, ids in enumerate(sequences):
        gen = torch.Generator().manual_seed(int(mix_ints(cfg.seed, 3, key)) & (2**62 - 1))
        masks = hamming_masks(maskable_of(ids, vocab), size, overlaps, cfg.hamming_pairs, gen)
        s, c = sequence_hamming(grad_fn, ids, masks, vocab, cfg, gen, bar)
        s2.append(s)
        cov.append(c)
    return _f64(s2), torch.stack(cov).cpu()


def _f64(values: list[float]) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _total_views(n_seq: int, n_arms: int, cfg: VarianceConfig, levels: int) -> int:
    return n_seq * (n_arms * len(SETTINGS) * cfg.draws * cfg.views + levels * cfg.hamming_pairs * 2)


def _announce(
    grad_fn: ViewGradients, ids: Tensor, vocab: Vocab, cfg: VarianceConfig, total: int, n_seq: int
) -> None:
    """Time one chunk (choosing vmap or loop when ``auto``) and print the estimate."""
    import time

    arm = arm_of("random", cfg.views, cfg.rate)
    masks, corrupted = draw_views(ids, maskable_of(ids, vocab), arm, cfg, vocab, -1)
    k = max(1, cfg.chunk_draws)
    batch = view_batch(ids, corrupted[:k].flatten(0, 1), masks[:k].flatten(0, 1))
    grad_fn(batch)
    start = time.perf_counter()
    grad_fn(batch)
    per_view = (time.perf_counter() - start) / len(batch)
    mb = grad_fn.size * 8 * (n_seq + 3 * len(batch) + 4) / 2**20
    if cfg.progress:
        print(
            f"variance: {grad_fn.size:,} parameters, {total:,} view gradients "
            f"({grad_fn.mode}, {per_view * 1e3:.1f} ms each): about {total * per_view / 60:.1f} min "
            f"and {mb:,.0f} MB of gradient buffers beyond the model",
            file=sys.stderr,
        )


def _bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="view", desc="gradients", disable=not enabled, file=sys.stderr)


def analyse(
    model: nn.Module, sequences: Sequence[Tensor], tokenizer: Any, cfg: VarianceConfig
) -> VarianceResult:
    """The full analysis of one model on given probe sequences."""
    import time

    start = time.perf_counter()
    cfg = _with_views(cfg)
    m = measure(model, sequences, tokenizer, cfg)
    result = bootstrap(
        m, strategy_list(cfg.strategies), cfg, torch.Generator().manual_seed(cfg.seed)
    )
    result.hamming_size = m.info["hamming_size"]
    m.info |= {"sequences": len(sequences), "seconds": round(time.perf_counter() - start, 1)}
    result.config, result.setup = dataclasses.asdict(cfg), m.info
    result.recommendation = recommendation(result)
    return result


def variance_terms(
    model: nn.Module,
    sequences: Sequence[Tensor],
    tokenizer: Any,
    cfg: VarianceConfig | None = None,
    **overrides: Any,
) -> ProbeTerms:
    """Point estimates only (no intervals, no Hamming curve), cheap enough for
    every N training steps: fully-explored against K independent random views
    and against one random view of B*K sequences, all at rate 1/K.

    Defaults: ``random`` and ``fully-explored``, 4 draws, no progress output.
    Pass the unwrapped model (not DDP); its train/eval mode is restored.
    """
    base = cfg or VarianceConfig(strategies=["random", "fully-explored"], draws=4, progress=False)
    run = _with_views(dataclasses.replace(base, **overrides))
    m = measure(model, sequences, tokenizer, run, hamming=False)
    strategies = strategy_list(run.strategies)
    args = (strategies, run.views, run.draws, run.batch_size, run.rate)
    flat = summarise(m, torch.arange(len(sequences)), *args)
    result = assemble(
        {k: Estimate(v) for k, v in flat.items()}, *args[:2], run.batch_size, run.rate
    )
    fe, c = result.terms("fully-explored"), result.comparison("fully-explored")
    return ProbeTerms(
        run.views, fe.ratio.value, fe.ratio_no_replacement.value, c.v_data.value,
        c.sigma2.value, c.step_var_ratio.value, c.break_even_v_data.value,
    )  # fmt: skip


def _with_views(cfg: VarianceConfig) -> VarianceConfig:
    return cfg if cfg.views is not None else dataclasses.replace(cfg, views=DEFAULT_VIEWS)


def load_probe(cfg: VarianceConfig) -> tuple[nn.Module, Any, list[Tensor]]:
    """The model (a preset initialised from ``cfg.seed``), its tokenizer and S probe sequences."""
    from femlm.data.blocks import run_blocks
    from femlm.data.tokenizer import load_tokenizer
    from femlm.model import PRESETS, build_model, tokenizer_source

    if cfg.tokenizer is None and cfg.model in PRESETS:
        raise FemlmError(f"preset {cfg.model!r} has no tokenizer of its own: pass --tokenizer DIR")
    if not cfg.data:
        raise FemlmError(
            "no probe data: pass --data FILE ... (text, JSONL, Parquet or a saved dataset)"
        )
    tokenizer = load_tokenizer(tokenizer_source(cfg.tokenizer, cfg.model))
    if cfg.validation_fraction is None:
        cfg = dataclasses.replace(cfg, validation_fraction=DEFAULT_VALIDATION_FRACTION)
    train, held_out = run_blocks(cfg, tokenizer)
    blocks = {"train": train, "validation": held_out}
    if len(blocks[cfg.split]) < 3:
        raise FemlmError(
            f"split {cfg.split!r} holds fewer than 3 sequences; use more data or --split train"
        )
    sequences = pick_sequences(blocks[cfg.split], cfg.sequences, cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, tokenizer, cfg.max_length, dropout=0.0)
    return model, tokenizer, sequences


def run_variance(cfg: VarianceConfig) -> VarianceResult:
    """``femlm variance``: analyse, write ``variance.json`` and the plots, return the result."""
    from femlm.model import pick_device
    from femlm.variance.plots import plot_hamming, plot_variance

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cfg = probe_config(cfg)
    model, tokenizer, sequences = load_probe(cfg)
    device = pick_device(cfg.device)
    model.to(device)
    result = analyse(model, sequences, tokenizer, cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(result.to_json(), out / "variance.json")
    plot_variance(result, out / "variance_by_strategy.png")
    plot_hamming(result, out / "covariance_vs_hamming.png")
    return result
