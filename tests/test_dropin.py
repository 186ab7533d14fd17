"""MaskingCollator as a drop-in for transformers.DataCollatorForLanguageModeling: fresh
masks every time an example comes back when no epoch is known (also across data-loader
workers), a full cycle for fully-explored-epochs, Hugging Face's keywords and inputs,
and the cases of transformers' own collator tests, written again for femlm."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from femlm.errors import FemlmError
from femlm.masking.collator import MaskingCollator
from femlm.masking.show import builtin_tokenizer

TEXTS = [
    "the model predicts every token once",
    "random masks make the gradient noisy and the training slow",
    "fully explored masking splits the sentence into disjoint groups of tokens in each step",
    "views of the same sentence are in the same step",
    "the model predicts every token once",  # a duplicate of the first
    "a small corpus seen for many epochs",
]


@pytest.fixture(scope="module")
def tokenizer():
    return builtin_tokenizer()


def _ids(tokenizer):
    return [tokenizer(t)["input_ids"] for t in TEXTS]


class _Rows(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i]}


def _masks_by_epoch(collator, rows, epochs, workers, persistent=False, shuffle=True):
    """{row index: [mask of each epoch]} of a DataLoader run as Trainer runs one."""
    torch.manual_seed(0)
    kw = {"persistent_workers": True} if persistent else {}
    loader = DataLoader(
        _Rows(rows), batch_size=2, shuffle=shuffle, collate_fn=collator, num_workers=workers, **kw
    )
    seen: dict[tuple, list] = {}
    for _ in range(epochs):
        for batch in loader:
            for row, labels in zip(batch["input_ids"], batch["labels"], strict=True):
                original = torch.where(labels != -100, labels, row)
                key = tuple(original[original != 0].tolist())  # [CLS] ... [SEP], no padding
                seen.setdefault(key, []).append((labels != -100)[: len(key)])
    return seen


@pytest.mark.parametrize("workers", [0, 2])
def test_without_an_epoch_masks_are_fresh_each_time_an_example_comes_back(tokenizer, workers):
    collator = MaskingCollator(tokenizer, strategy="random", rate=0.3, views=1)
    seen = _masks_by_epoch(collator, _ids(tokenizer), epochs=3, workers=workers)
    for masks in seen.values():
        assert len(masks) >= 3
        assert len({tuple(m.tolist()) for m in masks}) > 1, "the same mask every epoch"
    # the duplicate sentence gets masks of its own, not its twin's
    twin = seen[tuple(_ids(tokenizer)[0])]
    assert len({tuple(m.tolist()) for m in twin}) > 1


def test_transformers_set_seed_decides_the_masks(tokenizer):
    from transformers import set_seed

    def run():
        set_seed(11)
        collator = MaskingCollator(tokenizer, strategy="random", rate=0.3)
        return collator([{"input_ids": ids} for ids in _ids(tokenizer)])["labels"]

    assert torch.equal(run(), run())
    set_seed(12)
    other = MaskingCollator(tokenizer, strategy="random", rate=0.3)(
        [{"input_ids": ids} for ids in _ids(tokenizer)]
    )["labels"]
    assert not torch.equal(run(), other)


@pytest.mark.parametrize(("workers", "persistent"), [(0, False), (2, False), (2, True)])
def test_across_epochs_walks_every_sequence_through_its_cycle_without_an_epoch(
    tokenizer, workers, persistent
):
    rows = [ids for ids in _ids(tokenizer)][:4] + [_ids(tokenizer)[5]]  # distinct sequences
    collator = MaskingCollator(tokenizer, strategy="fully-explored-epochs", views=3, seed=1)
    seen = _masks_by_epoch(collator, rows, epochs=3, workers=workers, persistent=persistent)
    specials = torch.tensor(tokenizer.all_special_ids)
    for key, masks in seen.items():
        assert len(masks) == 3
        ids = torch.tensor(key)
        count = torch.stack(masks).long().sum(0)
        maskable = ~torch.isin(ids, specials)
        assert torch.equal(count[maskable], torch.ones_like(count[maskable])), "once per cycle"


def test_set_epoch_reaches_persistent_workers(tokenizer):
    rows = _ids(tokenizer)
    collator = MaskingCollator(tokenizer, strategy="random", rate=0.3, seed=4, epoch=0)
    keyed = MaskingCollator(tokenizer, strategy="random", rate=0.3, seed=4, epoch=1)
    feats = [{"input_ids": r, "example_index": i} for i, r in enumerate(rows)]
    loader = DataLoader(
        feats, batch_size=3, collate_fn=collator, num_workers=2, persistent_workers=True
    )
    list(loader)
    collator.set_epoch(1)
    for k, batch in enumerate(loader):
        assert torch.equal(batch["labels"], keyed(feats[3 * k : 3 * k + 3])["labels"])


def test_hugging_face_keywords_and_inputs(tokenizer):
    c = MaskingCollator(tokenizer, strategy="random", mlm_probability=0.25, seed=0)
    assert c.mlm_probability == 0.25 and c.rate == 0.25 and c.mlm
    with pytest.raises(FemlmError, match="disagree"):
        MaskingCollator(tokenizer, strategy="random", rate=0.2, mlm_probability=0.25)
    with pytest.raises(FemlmError, match="mlm=False"):
        MaskingCollator(tokenizer, mlm=False)
    with pytest.raises(FemlmError, match="'pt' or 'np'"):
        MaskingCollator(tokenizer, return_tensors="tf")
    bare = MaskingCollator(tokenizer, strategy="random", seed=0, epoch=0)(_ids(tokenizer))
    wrapped = MaskingCollator(tokenizer, strategy="random", seed=0, epoch=0)(
        [{"input_ids": ids} for ids in _ids(tokenizer)]
    )
    assert all(torch.equal(bare[k], wrapped[k]) for k in wrapped)
    np_out = MaskingCollator(tokenizer, strategy="random", return_tensors="np")(_ids(tokenizer))
    assert isinstance(np_out["input_ids"], np.ndarray)


def test_other_feature_keys_pass_through_once_per_view(tokenizer):
    feats = [
        {"input_ids": ids, "next_sentence_label": i % 2, "labels": 5, "example_index": i}
        for i, ids in enumerate(_ids(tokenizer))
    ]
    out = MaskingCollator(tokenizer, strategy="fully-explored", views=3)(feats)
    assert torch.equal(out["next_sentence_label"], torch.tensor([0, 1] * 3).repeat_interleave(3))
    assert out["labels"].dim() == 2, "the masked-LM labels replace a feature's own"
    assert "example_index" not in out, "the collator's own key is consumed"
    ragged = [{"input_ids": ids, "extra": [1] * (i + 1)} for i, ids in enumerate(_ids(tokenizer))]
    with pytest.raises(FemlmError, match="'extra' does not stack"):
        MaskingCollator(tokenizer)(ragged)


def test_a_vocabulary_of_special_tokens_only_names_the_way_out():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(specials)}, unk_token="[UNK]"))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )  # fmt: skip
    with pytest.raises(FemlmError, match="random_prob=0"):
        MaskingCollator(tok)
    assert MaskingCollator(tok, random_prob=0.0)([[2, 1, 1, 3]])["labels"].shape[1] == 4


# --- the cases of transformers' DataCollatorForLanguageModeling tests ------------------


def test_pads_to_the_longest_and_to_a_multiple(tokenizer):
    feats = [{"input_ids": list(range(5, 15))}, {"input_ids": list(range(5, 15))}]
    out = MaskingCollator(tokenizer, strategy="random", views=1)(feats)
    assert out["input_ids"].shape == out["labels"].shape == (2, 10)
    out = MaskingCollator(tokenizer, strategy="random", pad_to_multiple_of=8)(feats)
    assert out["input_ids"].shape == out["labels"].shape == (2, 16)
    short = [{"input_ids": list(range(5, 9))}, {"input_ids": list(range(5, 15))}]
    out = MaskingCollator(tokenizer, strategy="random")(short)
    assert out["input_ids"].shape == (2, 10)
    assert (out["input_ids"][0, 4:] == tokenizer.pad_token_id).all()
    assert (out["labels"][0, 4:] == -100).all() and (out["attention_mask"][0, 4:] == 0).all()


def test_a_tokenizer_without_a_pad_token_is_refused(tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.pad_token = None
    with pytest.raises(ValueError, match="pad token"):
        MaskingCollator(tok)


def test_labels_are_the_originals_at_masked_positions_and_minus_100_elsewhere(tokenizer):
    ids = _ids(tokenizer)
    out = MaskingCollator(tokenizer, strategy="random", rate=0.4, seed=3)(ids)
    for row, original in zip(range(len(ids)), ids, strict=True):
        n = len(original)
        labels, inputs = out["labels"][row, :n], out["input_ids"][row, :n]
        original = torch.tensor(original)
        masked = labels != -100
        assert torch.equal(labels[masked], original[masked])
        assert torch.equal(inputs[~masked], original[~masked])
        maskable = ~torch.isin(original, torch.tensor(tokenizer.all_special_ids))
        assert int(masked.sum()) == max(1, round(0.4 * int(maskable.sum())))


def test_the_bernoulli_rate_and_the_80_10_10_split_hold_on_average(tokenizer):
    ids = [list(range(5, 205))] * 50  # 200 maskable ids a row
    out = MaskingCollator(tokenizer, strategy="random-bernoulli", mlm_probability=0.15)(ids)
    masked = out["labels"] != -100
    assert abs(float(masked.float().mean()) - 0.15) < 0.01
    shown = out["input_ids"][masked]
    assert abs(float((shown == tokenizer.mask_token_id).float().mean()) - 0.8) < 0.03
    kept = shown == out["labels"][masked]
    assert abs(float(kept.float().mean()) - 0.1) < 0.03


@pytest.mark.interop
def test_trainer_with_data_collator_alone_and_two_workers_gets_fresh_masks_each_epoch(
    tokenizer, tmp_path
):
    from transformers import BertConfig, BertForMaskedLM, Trainer, TrainingArguments

    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    seen: dict[tuple, list] = {}

    class Recording(Trainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            for row, labels in zip(inputs["input_ids"], inputs["labels"], strict=True):
                original = torch.where(labels != -100, labels, row)
                key = tuple(original[original != tokenizer.pad_token_id].tolist())
                seen.setdefault(key, []).append(tuple((labels != -100)[: len(key)].tolist()))
            return super().compute_loss(model, inputs, *args, **kwargs)

    rows = [{"input_ids": ids} for ids in _ids(tokenizer)][:4]
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=2, num_train_epochs=3,
        report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no",
        dataloader_num_workers=2, seed=3,
    )  # fmt: skip
    collator = MaskingCollator(tokenizer, strategy="fully-explored-epochs", views=3)
    Recording(
        model=BertForMaskedLM(config), args=args, train_dataset=rows, data_collator=collator
    ).train()
    assert len(seen) == 4
    for masks in seen.values():
        assert len(masks) == 3 and len(set(masks)) == 3, "one new group each epoch"
        cover = torch.tensor(masks).sum(0)
        assert int(cover.max()) == 1, "a full cycle predicts each token once"
