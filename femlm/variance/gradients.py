"""Per-view gradients of a masked-LM, as rows of one flat matrix.

The variance analyser needs the gradient of every masked *view* separately
(not the batch sum), so it can form inner products between views. Two ways
compute them: ``torch.func`` (``grad`` vmapped over a chunk of views) and a
plain loop of ``torch.autograd.grad`` calls; which is faster depends on the
model and machine, so ``mode="auto"`` times both on the first chunk.

The loss of one view is the **mean** cross-entropy over its predicted tokens
(docs/theory.md). Parameters stay fixed and dropout is off: the caller puts
the model in ``eval()`` mode, and gradients never touch ``.grad``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from femlm.errors import FemlmError
from femlm.model import encoder_and_head


@dataclass
class ViewBatch:
    """``c`` corrupted copies of one sequence and where each predicts.

    ``input_ids`` ``[c, L]``; ``positions``/``targets``/``weights`` ``[c, m]``
    with ``m`` the largest number of predicted tokens in the chunk; padding
    slots have weight 0, so shapes are fixed, as ``vmap`` needs.
    """

    input_ids: Tensor
    positions: Tensor
    targets: Tensor
    weights: Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def view_batch(original: Tensor, corrupted: Tensor, masks: Tensor) -> ViewBatch:
    """Pack views ``corrupted`` ``[c, L]`` with bool ``masks`` ``[c, L]`` of
    the sequence ``original`` ``[L]`` into a :class:`ViewBatch`."""
    counts = masks.sum(-1)
    width = max(int(counts.max()), 1)
    # Masked positions first, in position order (stable sort of ~mask).
    order = torch.sort((~masks).to(torch.uint8), dim=-1, stable=True).indices[:, :width]
    weights = (torch.arange(width)[None, :] < counts[:, None]).to(torch.float32)
    positions = torch.where(weights > 0, order, torch.zeros_like(order))
    return ViewBatch(corrupted.long(), positions, original.long()[positions], weights)


def select_parameters(model: nn.Module, patterns: Sequence[str] = ()) -> list[str]:
    """Names of the parameters whose gradient is analysed.

    Empty ``patterns`` means all; otherwise a name is kept when any pattern
    (a regular expression) is found in it, e.g. ``encoder.layer.1`` or ``attention``.
    """
    names = [n for n, _ in model.named_parameters()]
    if not patterns:
        return names
    chosen = [n for n in names if any(re.search(p, n) for p in patterns)]
    if not chosen:
        raise FemlmError(
            f"no parameter name matches {list(patterns)}; names look like {names[0]!r}"
        )
    return chosen


class _Predictor(nn.Module):
    """Forward of one unbatched view: mean CE over its predicted tokens.

    Runs the MLM head only at predicted positions when the model has a known
    encoder/head split (as :func:`femlm.model.mlm_loss_sum` does).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.parts = encoder_and_head(model)

    def forward(self, ids: Tensor, positions: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
        if self.parts is not None:
            encoder, head = self.parts
            logits = head(encoder(input_ids=ids[None])[0][0][positions])
        else:
            out = self.model(input_ids=ids[None])
            logits = getattr(out, "logits", out)[0][positions]
        ce = F.cross_entropy(logits.float(), targets, reduction="none")
        # A view with nothing to predict (possible for span-based strategies on
        # short rows) contributes a zero loss, as it does in training.
        return (ce * weights).sum() / weights.sum().clamp(min=1.0)


class ViewGradients:
    """``grads(batch) -> [c, P]`` float64: one flattened gradient per view.

    ``names`` picks the parameters (see :func:`select_parameters`); ``mode``
    is ``vmap``, ``loop`` or ``auto`` (time both on the first call, keep the faster).
    """

    def __init__(self, model: nn.Module, names: Sequence[str], mode: str = "auto") -> None:
        if mode not in ("auto", "vmap", "loop"):
            raise FemlmError(f"gradient mode must be auto, vmap or loop, got {mode!r}")
        self.predictor = _Predictor(model)
        params = dict(self.predictor.named_parameters())
        wanted = {"model." + n for n in names}
        self.trainable = {n: p.detach() for n, p in params.items() if n in wanted}
        self.frozen = {n: p.detach() for n, p in params.items() if n not in wanted}
        self.frozen |= {n: b for n, b in self.predictor.named_buffers()}
        self.size = sum(p.numel() for p in self.trainable.values())
        self.mode = mode
        self.timings: dict[str, float] = {}
        self._vmapped = torch.func.vmap(torch.func.grad(self._loss), in_dims=(None, 0, 0, 0, 0))

    def _loss(self, trainable: dict, ids: Tensor, pos: Tensor, tgt: Tensor, w: Tensor) -> Tensor:
        state = trainable | self.frozen
        return torch.func.functional_call(self.predictor, state, (ids, pos, tgt, w))

    def __call__(self, batch: ViewBatch) -> Tensor:
        device = next(iter(self.trainable.values())).device
        batch = ViewBatch(*(getattr(batch, f.name).to(device) for f in dataclasses.fields(batch)))
        if self.mode == "auto":
            return self._choose(batch)
        if self.mode == "loop":
            return self._flat(self._loop(batch))
        try:
            return self._flat(self._vmap(batch))
        except RuntimeError as err:
            if not _untraceable(err):
                raise
            raise FemlmError(
                "gradient mode vmap cannot trace this model with the installed transformers "
                "(data-dependent branches in its attention mask); use --grad-mode loop or auto"
            ) from err

    def _choose(self, batch: ViewBatch) -> Tensor:
        """Time both ways on this chunk (after one warm-up call) and keep the faster."""
        for mode, fn in (("vmap", self._vmap), ("loop", self._loop)):
            try:
                fn(batch)
            except RuntimeError as err:
                # transformers 4.x builds BERT's attention mask with data-dependent
                # branches, which vmap cannot trace; the loop gives the same gradients.
                if mode != "vmap" or not _untraceable(err):
                    raise
                continue
            start = time.perf_counter()
            grads = fn(batch)
            self.timings[mode] = (time.perf_counter() - start) / len(batch)
        self.mode = min(self.timings, key=self.timings.get)
        return self._flat(grads)

    def _vmap(self, b: ViewBatch) -> dict[str, Tensor]:
        return self._vmapped(self.trainable, b.input_ids, b.positions, b.targets, b.weights)

    def _loop(self, b: ViewBatch) -> dict[str, Tensor]:
        leaves = {n: p.clone().requires_grad_(True) for n, p in self.trainable.items()}
        rows = []
        for i in range(len(b)):
            with torch.enable_grad():
                loss = self._loss(
                    leaves, b.input_ids[i], b.positions[i], b.targets[i], b.weights[i]
                )
                rows.append(torch.autograd.grad(loss, list(leaves.values()), allow_unused=True))
        return {
            n: torch.stack([_or_zeros(r[j], p) for r in rows])
            for j, (n, p) in enumerate(leaves.items())
        }

    def _flat(self, grads: dict[str, Tensor]) -> Tensor:
        return torch.cat(
            [grads[n].reshape(grads[n].shape[0], -1) for n in self.trainable], 1
        ).double()


def _untraceable(err: RuntimeError) -> bool:
    """vmap's refusal of a data-dependent branch (not a bug of ours)."""
    return "vmap" in str(err)


def _or_zeros(g: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if g is None else g


@contextmanager
def analysis_mode(model: nn.Module):
    """Dropout off and eager attention while analysing; restore both after.

    PyTorch's fused CPU attention has no ``vmap`` rule and falls back to a
    slow per-example loop, so eager attention is used for the analysis.
    """
    was_training = model.training
    attn = getattr(getattr(model, "config", None), "_attn_implementation", None)
    setter: Callable[[str], Any] | None = getattr(model, "set_attn_implementation", None)
    model.eval()
    if setter is not None and attn not in (None, "eager"):
        setter("eager")
    try:
        yield model
    finally:
        if setter is not None and attn not in (None, "eager"):
            setter(attn)
        model.train(was_training)


@dataclass(frozen=True)
class Vocab:
    """What replacement needs from a tokenizer."""

    mask_id: int
    size: int
    special_ids: tuple[int, ...]

    @classmethod
    def of(cls, tokenizer: Any) -> Vocab:
        return cls(tokenizer.mask_token_id, len(tokenizer), tuple(tokenizer.all_special_ids))


def maskable_of(ids: Tensor, vocab: Vocab) -> Tensor:
    """Positions that may be masked: not special tokens (padding included), as the collator."""
    return ~torch.isin(ids, torch.tensor(vocab.special_ids, dtype=ids.dtype))


def hamming_masks(
    maskable: Tensor, size: int, overlaps: Sequence[int], pairs: int, gen: torch.Generator
) -> Tensor:
    """Pairs of masks of ``size`` tokens sharing exactly ``o`` of them, for each ``o``.

    Returns bool ``[len(overlaps), pairs, 2, L]``; the Hamming distance of a
    pair is ``2 * (size - o)``. Each pair comes from a fresh random order of the
    maskable positions, so each mask is marginally a uniform ``size``-subset.
    """
    where = maskable.nonzero().squeeze(-1)
    out = torch.zeros(len(overlaps), pairs, 2, maskable.shape[-1], dtype=torch.bool)
    for i, o in enumerate(overlaps):
        for q in range(pairs):
            perm = where[torch.randperm(len(where), generator=gen)]
            out[i, q, 0, perm[:size]] = True
            out[i, q, 1, torch.cat([perm[:o], perm[size : 2 * size - o]])] = True
    return out
