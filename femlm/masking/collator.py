"""A drop-in replacement for ``transformers.DataCollatorForLanguageModeling``.

``MaskingCollator`` pads a list of features and returns ``views`` masked copies
of every sequence as adjacent rows (row = sequence * views + view), so all views
of a sequence land in the same batch and therefore the same optimizer step. With
the fully-explored family a batch of B sequences is B*K rows: size the batch for
K times the memory its sequence count suggests.

Word-level strategies (``whole-word``, ``span``, ``fully-explored-span``) read
each feature's ``word_ids`` when it has them (femlm's packed blocks store
them); otherwise the collator derives them from the token ids with the
tokenizer's word markers (:mod:`femlm.data.words`), so whole-word masking works
on any tokenised dataset.

Two guarantees, by what the collator knows (docs/masking.md):

* **keyed** (an epoch was given: ``epoch=``, :meth:`MaskingCollator.set_epoch`,
  :func:`epoch_callback` or femlm's own loop): masks are a pure function of
  (seed, epoch, example key, view), the same with any batch composition, number
  of data-loader workers or ranks. The example key is the feature's
  ``example_index`` (name set by ``index_key``), else a hash of its token ids.
* **fresh** (no epoch, e.g. ``data_collator=`` alone in ``Trainer``): like
  Hugging Face's collator, every call draws new masks from torch's global
  generator (so ``transformers.set_seed`` fixes them, and each worker's own
  generator makes them differ between epochs); ``fully-explored-epochs`` counts
  each example's visits across workers and uses the visit as its epoch, so every
  sequence still walks through its K groups.

The epoch lives in shared memory, so ``set_epoch`` reaches persistent workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
import torch
from torch import Tensor

from femlm.errors import FemlmError
from femlm.masking.keyed import KeyedGenerator, mix, mix_ints
from femlm.masking.replacement import apply_replacement
from femlm.masking.samplers import sample_masks
from femlm.masking.shared import SharedEpoch, VisitCounter
from femlm.masking.strategies import ACROSS, MaskingSpec

# Distinct streams so the mask draws and replacement draws never coincide.
_MASK_STREAM = 1
_REPLACE_STREAM = 2


class MaskingCollator:
    """Pad, replicate into views, mask and label a list of features.

    Args:
        tokenizer: a ``transformers`` tokenizer with pad and mask tokens.
        strategy: a name from :data:`femlm.masking.STRATEGIES`.
        views: masked copies per sequence (fully-explored default: ``round(1/rate)``).
        rate: mask rate (default 0.15; for fully-explored ``1/views`` when only views is given).
        mask_prob, random_prob: replacement policy of masked positions (80/10/10 by default).
        seed: base seed of every mask (default: drawn from torch's generator, so
            ``transformers.set_seed`` decides it).
        pad_to_multiple_of: pad the length up to a multiple of this.
        index_key: feature field that holds a stable example index.
        return_view_info: add ``sequence_index`` and ``view_index`` (off by default:
            ``Trainer`` passes every key of the batch to ``forward``, which on
            transformers 4 rejects them).
        spec: a resolved :class:`MaskingSpec` instead of the five masking arguments.
        epoch: key masks on this epoch from the start (keyed mode; see the module doc).
        mlm, mlm_probability, return_tensors: Hugging Face's names; ``mlm=False`` is
            refused (masked-LM only), ``mlm_probability`` is ``rate``, tensors are
            ``"pt"`` or ``"np"``.
    """

    def __init__(
        self,
        tokenizer: Any,
        strategy: str = "fully-explored",
        views: int | None = None,
        rate: float | None = None,
        mask_prob: float = 0.8,
        random_prob: float = 0.1,
        seed: int | None = None,
        pad_to_multiple_of: int | None = None,
        index_key: str = "example_index",
        return_view_info: bool = False,
        spec: MaskingSpec | None = None,
        epoch: int | None = None,
        *,
        mlm: bool = True,
        mlm_probability: float | None = None,
        return_tensors: str = "pt",
    ) -> None:
        if not mlm:
            raise FemlmError(
                "MaskingCollator masks for a masked-LM; for causal-LM labels (mlm=False) use "
                "transformers.DataCollatorForLanguageModeling(tokenizer, mlm=False)"
            )
        rate = _alias_rate(rate, mlm_probability)
        self.spec = spec or MaskingSpec.resolve(strategy, views, rate, mask_prob, random_prob)
        if return_tensors not in ("pt", "np"):
            raise FemlmError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}")
        if tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token; masked-LM training needs one")
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token first")
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be positive, got {pad_to_multiple_of}")
        self.tokenizer = tokenizer
        # No seed: one drawn from torch's generator now, before any worker starts, so
        # transformers.set_seed (or torch.manual_seed) decides the masks.
        self.seed = int(torch.randint(0, 2**62, ())) if seed is None else int(seed)
        self._epoch = SharedEpoch(epoch)
        self._visits = VisitCounter() if self.spec.family == ACROSS and epoch is None else None
        self.pad_to_multiple_of = pad_to_multiple_of
        self.index_key = index_key
        self.return_view_info = return_view_info
        self.return_tensors = return_tensors
        self.mlm = True
        self.pad_id = tokenizer.pad_token_id
        self.mask_id = tokenizer.mask_token_id
        self.vocab_size = len(tokenizer)
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        if self.spec.random_prob > 0 and self.vocab_size <= len(self.special_ids):
            raise FemlmError(
                "every id of the tokenizer's vocabulary is a special token, so there is no "
                "random token to replace with: pass random_prob=0"
            )
        self._words: Any = None  # the tokenizer's word tables, built on first need

    @property
    def strategy(self) -> str:
        return self.spec.strategy

    @property
    def views(self) -> int:
        return self.spec.views

    @property
    def rate(self) -> float:
        return self.spec.rate

    @property
    def mask_prob(self) -> float:
        return self.spec.mask_prob

    @property
    def random_prob(self) -> float:
        return self.spec.random_prob

    @property
    def mlm_probability(self) -> float:
        """Hugging Face's name of the mask rate."""
        return self.spec.rate

    @property
    def epoch(self) -> int | None:
        """The epoch masks are keyed on; None in fresh mode."""
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        """Key the next batches' masks on ``epoch`` (in every data-loader worker too)."""
        self._epoch.set(int(epoch))

    def pad(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
        """Stack features into padded ``[batch, length]`` tensors (and ``lengths [batch]``)."""
        lengths = torch.tensor([len(f["input_ids"]) for f in features], dtype=torch.long)
        length = int(lengths.max())
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        # Always right-padded, whatever the tokenizer's padding_side: masks are
        # keyed on positions, and left padding would shift them with the batch.
        valid = torch.arange(length) < lengths[:, None]
        out = {"lengths": lengths, "valid": valid}
        for key, fill in (
            ("input_ids", self.pad_id),
            ("token_type_ids", 0),
            ("special_tokens_mask", 1),
            ("word_ids", -1),
        ):
            if key in features[0]:
                out[key] = _fill(valid, [f[key] for f in features], fill, key == "word_ids")
        if "attention_mask" in features[0]:
            out["attention_mask"] = _fill(valid, [f["attention_mask"] for f in features], 0)
        else:
            out["attention_mask"] = valid.long()
        return out

    def example_keys(
        self, features: Sequence[Mapping[str, Any]], ids: Tensor, lengths: Tensor
    ) -> Tensor:
        """``[batch]`` int64 keys of the examples: their ``index_key`` field, else a hash
        of their token ids."""
        if self.index_key in features[0]:
            return torch.tensor([int(f[self.index_key]) for f in features], dtype=torch.long)
        return content_hash(ids, lengths)

    def row_epochs(
        self, features: Sequence[Mapping[str, Any]], examples: Tensor | None = None
    ) -> int | Tensor | None:
        """The epochs masks are keyed on: the features' own (a step across an epoch's
        end), :meth:`set_epoch`'s, each example's visit number across epochs when no
        epoch is known, or None (fresh masks)."""
        if "epoch" in features[0]:
            return torch.tensor([int(f["epoch"]) for f in features], dtype=torch.long)
        epoch = self.epoch
        if epoch is None and self._visits is not None and examples is not None:
            return self._visits.visit(examples)
        return epoch

    def __call__(self, features: Sequence[Any]) -> dict[str, Any]:
        if not features:
            raise ValueError("cannot collate an empty list of features")
        features = [f if isinstance(f, Mapping) else {"input_ids": f} for f in features]
        batch = self.pad(features)
        examples = self.example_keys(features, batch["input_ids"], batch["lengths"])
        epoch = self.row_epochs(features, examples)
        if epoch is None:  # fresh: new keys each call, one per row
            salt = int(torch.randint(0, 2**62, ()))
            keys = mix_ints(self.seed, salt, torch.arange(len(features)))
        else:
            keys = mix_ints(self.seed, self.spec.cycle_of(epoch), examples)
        out = self.mask(batch, keys, 0 if epoch is None else epoch)
        out |= _passed_through(features, self.spec.step_views, self.index_key)
        if self.return_tensors == "np":
            return {k: v.numpy() for k, v in out.items()}
        return out

    def mask(
        self, batch: dict[str, Tensor], keys: Tensor, epoch: int | Tensor | None = None
    ) -> dict[str, Tensor]:
        """Draw the views, corrupt the inputs and build labels for a padded batch;
        ``epoch``: an int or ``[batch]`` epochs (default :meth:`set_epoch`'s, else 0)."""
        epoch = (self.epoch or 0) if epoch is None else epoch
        ids, valid = batch["input_ids"], batch["valid"]
        maskable = valid & batch["attention_mask"].bool()
        if "special_tokens_mask" in batch:
            maskable &= ~batch["special_tokens_mask"].bool()
        else:
            maskable &= ~torch.isin(ids, self.special_ids)
        masks = sample_masks(
            ids,
            maskable,
            self.spec,
            generator=KeyedGenerator(mix(keys + _MASK_STREAM)),
            word_ids=self.word_ids(batch),
            epoch=epoch,
        )
        b, length = ids.shape
        v = self.spec.step_views
        if v != self.views:  # across epochs: the 80/10/10 draws are fresh every epoch
            keys = mix_ints(keys, epoch)
        masks = masks.transpose(0, 1)  # [batch, views, length]: row = sequence * views + view
        repeated = ids.unsqueeze(1).expand(b, v, length)
        corrupted = apply_replacement(
            repeated,
            masks,
            self.mask_id,
            self.vocab_size,
            self.special_ids.tolist(),
            self.spec.mask_prob,
            self.spec.random_prob,
            KeyedGenerator(mix(keys + _REPLACE_STREAM)),
        )
        out = {
            "input_ids": corrupted.reshape(b * v, length),
            "attention_mask": _repeat_rows(batch["attention_mask"], v),
            "labels": torch.where(masks, repeated, -100).reshape(b * v, length),
        }
        if "token_type_ids" in batch:
            out["token_type_ids"] = _repeat_rows(batch["token_type_ids"], v)
        if self.return_view_info:
            out["sequence_index"] = torch.arange(b).repeat_interleave(v)
            out["view_index"] = torch.arange(v).repeat(b)
        return out

    def word_ids(self, batch: dict[str, Tensor]) -> Tensor | None:
        """``[batch, length]`` word ids: the features' own, or derived from the ids
        for word-level strategies (None for the others, which ignore them)."""
        if "word_ids" in batch:
            return batch["word_ids"]
        if not self.spec.info.word_level:
            return None
        if self._words is None:
            from femlm.data.words import WordStarts

            self._words = WordStarts.of(self.tokenizer)
        return torch.from_numpy(self._words.word_ids(batch["input_ids"].numpy())).long()


_OWN_KEYS = {"input_ids", "attention_mask", "token_type_ids", "special_tokens_mask", "word_ids"}
_OWN_KEYS |= {"epoch", "labels"}  # labels: the masked-LM labels replace a feature's, as in HF


def _passed_through(
    features: Sequence[Mapping[str, Any]], views: int, index_key: str
) -> dict[str, Tensor]:
    """Every other feature key (``next_sentence_label``, another head's labels, the
    ...) stacked and repeated once per view, as Hugging Face's collator
    passes them on; a key whose values do not stack is an error naming it."""
    out = {}
    for key in features[0]:
        if key in _OWN_KEYS or key == index_key:
            continue
        try:
            values = torch.as_tensor(np.asarray([f[key] for f in features]))
        except (ValueError, TypeError, KeyError):
            raise FemlmError(
                f"feature key {key!r} does not stack into a tensor (ragged or missing in "
                "some features); drop it from the dataset or pad it first"
            ) from None
        out[key] = values.repeat_interleave(views, dim=0)
    return out


def _alias_rate(rate: float | None, mlm_probability: float | None) -> float | None:
    """``mlm_probability`` is Hugging Face's name of ``rate``; both must agree."""
    if mlm_probability is None:
        return rate
    if rate is not None and rate != mlm_probability:
        raise FemlmError(f"rate={rate} and mlm_probability={mlm_probability} disagree; give one")
    return mlm_probability


def content_hash(ids: Tensor, lengths: Tensor) -> Tensor:
    """``[batch]`` int64 hash of each right-padded row's first ``lengths[b]`` tokens."""
    positions = torch.arange(ids.shape[1])
    valid = positions < lengths[:, None]
    h = mix(ids.long() * 1_000_003 + positions)
    return mix(torch.where(valid, h, 0).sum(-1) + lengths)


def _fill(valid: Tensor, rows: list[Any], fill: int, may_hold_none: bool = False) -> Tensor:
    """Scatter ragged rows (lists, tuples, arrays or tensors) into a padded tensor.

    ``may_hold_none``: fast tokenizers' ``word_ids`` hold None at special tokens.
    """
    out = torch.full(valid.shape, fill, dtype=torch.long)
    if isinstance(rows[0], Tensor):
        flat = torch.cat([r.reshape(-1).long() for r in rows])
    else:
        values = chain.from_iterable(rows)
        if may_hold_none:
            values = (fill if x is None else x for x in values)
        # numpy reads an iterator of ints ~8x faster than torch.tensor reads a list.
        flat = torch.from_numpy(np.fromiter(values, dtype=np.int64, count=int(valid.sum())))
    out[valid] = flat
    return out


def _repeat_rows(x: Tensor, views: int) -> Tensor:
    return x.repeat_interleave(views, dim=0)


def epoch_callback(collator: MaskingCollator) -> Any:
    """A ``transformers.TrainerCallback`` that calls ``collator.set_epoch`` each epoch.

    Pass ``callbacks=[epoch_callback(collator)]`` to ``Trainer`` so every epoch
    gets fresh masks (without it, each epoch reuses epoch 0's masks).
    """
    from transformers import TrainerCallback

    class _SetEpoch(TrainerCallback):
        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            collator.set_epoch(round(state.epoch or 0))

    return _SetEpoch()
