"""MaskingCollator: drop-in behaviour, labels, view layout, worker-independence."""

import pytest
import torch
from torch.utils.data import DataLoader

from femlm.masking.collator import MaskingCollator, epoch_callback
from femlm.masking.show import builtin_tokenizer

TEXTS = [
    "the model predicts every token once",
    "random masks make the gradient noisy and the training slow",
    "a b c",
    "fully explored masking splits the sentence into disjoint groups of tokens in each step",
    "one",
    "views of the same sentence are in the same step",
]


@pytest.fixture(scope="module")
def tokenizer():
    return builtin_tokenizer()


@pytest.fixture(scope="module")
def features(tokenizer):
    return [
        {"input_ids": tokenizer(t)["input_ids"], "example_index": i} for i, t in enumerate(TEXTS)
    ]


def test_output_layout_labels_and_specials(tokenizer, features):
    collator = MaskingCollator(tokenizer, strategy="fully-explored", views=4, return_view_info=True)
    out = collator(features)
    b, v = len(features), 4
    length = max(len(f["input_ids"]) for f in features)
    assert out["input_ids"].shape == (b * v, length)
    assert torch.equal(out["sequence_index"], torch.arange(b).repeat_interleave(v))
    assert torch.equal(out["view_index"], torch.arange(v).repeat(b))
    predicted = out["labels"] != -100
    specials = torch.tensor(tokenizer.all_special_ids)
    for row in range(b * v):
        original = torch.tensor(features[row // v]["input_ids"])
        n = len(original)
        labels = out["labels"][row]
        assert (labels[n:] == -100).all(), "padding is never predicted"
        assert (out["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        assert (out["attention_mask"][row, :n] == 1).all() and (
            out["attention_mask"][row, n:] == 0
        ).all()
        assert torch.equal(labels[:n][predicted[row, :n]], original[predicted[row, :n]])
        assert not torch.isin(original[predicted[row, :n]], specials).any(), (
            "specials never predicted"
        )
        kept = ~predicted[row, :n]
        assert torch.equal(out["input_ids"][row, :n][kept], original[kept]), (
            "off-mask inputs unchanged"
        )
    # views of a sequence are a partition of its maskable tokens
    per_seq = predicted.view(b, v, length).sum(1)
    for i, f in enumerate(features):
        ids = torch.tensor(f["input_ids"])
        maskable = ~torch.isin(ids, specials)
        assert torch.equal(per_seq[i, : len(ids)], maskable.long())


def test_tensor_and_list_inputs_give_the_same_batch(tokenizer, features):
    collator = MaskingCollator(tokenizer, strategy="span", views=2, seed=3, epoch=0)
    as_tensors = [
        {"input_ids": torch.tensor(f["input_ids"]), "example_index": f["example_index"]}
        for f in features
    ]
    a, b = collator(features), collator(as_tensors)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_masks_depend_on_seed_epoch_and_index_only(tokenizer, features):
    collator = MaskingCollator(tokenizer, strategy="random", views=3, seed=7, epoch=0)
    whole = collator(features)
    again = MaskingCollator(tokenizer, strategy="random", views=3, seed=7, epoch=0)(
        [features[4], features[1]]
    )
    rows = lambda i: slice(3 * i, 3 * i + 3)  # noqa: E731
    for pos, i in enumerate([4, 1]):
        n = len(features[i]["input_ids"])
        assert torch.equal(again["labels"][rows(pos), :n], whole["labels"][rows(i), :n])
        assert torch.equal(again["input_ids"][rows(pos), :n], whole["input_ids"][rows(i), :n])
    collator.set_epoch(1)
    assert not torch.equal(collator(features)["labels"], whole["labels"]), "new epoch, new masks"
    other = MaskingCollator(tokenizer, strategy="random", views=3, seed=8, epoch=0)(features)
    assert not torch.equal(other["labels"], whole["labels"]), "new seed, new masks"


def test_without_an_index_masks_are_keyed_on_content(tokenizer, features):
    plain = [{"input_ids": f["input_ids"]} for f in features]
    collator = MaskingCollator(tokenizer, strategy="fully-explored", views=3, epoch=0)
    whole = collator(plain)
    alone = collator([plain[3]])
    n = len(plain[3]["input_ids"])
    assert torch.equal(alone["labels"][:, :n], whole["labels"][9:12, :n])


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, features):
        self.features = features

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return self.features[i]


@pytest.mark.parametrize("workers", [1, 4])
def test_same_masks_with_any_number_of_workers(tokenizer, features, workers):
    collator = MaskingCollator(tokenizer, strategy="fully-explored-span", views=3, seed=5, epoch=0)
    data = _Indexed(features * 4)
    base = DataLoader(data, batch_size=5, collate_fn=collator, num_workers=0)
    multi = DataLoader(data, batch_size=5, collate_fn=collator, num_workers=workers)
    for a, b in zip(base, multi, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_short_sequences_and_empty_views(tokenizer):
    # "one" is a single maskable token: 1 of 7 views predicts it, 6 predict nothing.
    collator = MaskingCollator(tokenizer)
    out = collator([{"input_ids": tokenizer("one")["input_ids"]}])
    assert out["input_ids"].shape[0] == 7
    assert (out["labels"] != -100).sum(1).tolist().count(0) == 6
    only_specials = collator([{"input_ids": tokenizer("")["input_ids"]}])
    assert (only_specials["labels"] == -100).all()


def test_special_tokens_mask_and_word_ids_are_honoured(tokenizer):
    enc = tokenizer("masked language model training", return_special_tokens_mask=True)
    feature = {
        "input_ids": enc["input_ids"],
        "special_tokens_mask": [1, 1] + enc["special_tokens_mask"][2:],  # also protect 1st word
        "word_ids": enc.word_ids(),
    }
    out = MaskingCollator(tokenizer, strategy="fully-explored", views=2)([feature])
    assert (out["labels"][:, :2] == -100).all()
    assert ((out["labels"] != -100).sum(0)[2:-1] == 1).all()


def test_bad_configuration_is_rejected(tokenizer):
    with pytest.raises(ValueError, match="disagree"):
        MaskingCollator(tokenizer, strategy="fully-explored", views=4, rate=0.15)
    with pytest.raises(ValueError, match="rate"):
        MaskingCollator(tokenizer, strategy="random", rate=1.5)
    with pytest.raises(ValueError, match="sum <= 1"):
        MaskingCollator(tokenizer, mask_prob=0.9, random_prob=0.2)
    no_mask = builtin_tokenizer()
    no_mask.mask_token = None
    with pytest.raises(ValueError, match="no mask token"):
        MaskingCollator(no_mask)


def _tiny_bert(tokenizer):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return BertForMaskedLM(config)


@pytest.mark.interop
def test_one_real_step_with_transformers_trainer(tokenizer, tmp_path):
    from transformers import Trainer, TrainingArguments

    model = _tiny_bert(tokenizer)
    before = [p.detach().clone() for p in model.parameters()]
    collator = MaskingCollator(tokenizer, strategy="fully-explored", views=3)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=3,
        max_steps=1,
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        remove_unused_columns=False,
    )
    data = [{"input_ids": tokenizer(t)["input_ids"]} for t in TEXTS]
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data,
        data_collator=collator,
        callbacks=[epoch_callback(collator)],
    )
    result = trainer.train()
    assert result.global_step == 1
    assert torch.isfinite(torch.tensor(result.training_loss))
    changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)]
    assert sum(changed) > len(changed) // 2, "the optimizer step updated the weights"


def test_plain_pytorch_loop(tokenizer, features):
    model = _tiny_bert(tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loader = DataLoader(_Indexed(features), batch_size=3, collate_fn=MaskingCollator(tokenizer))
    for batch in loader:
        assert "sequence_index" not in batch  # only on request: forward() would reject it
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        assert torch.isfinite(loss)


# --- fully-explored across epochs -------------------------------------------------


def _epoch_labels(collator, rows, epoch):
    collator.set_epoch(epoch)
    out = collator([{"input_ids": r, "example_index": i} for i, r in enumerate(rows)])
    return out["labels"] != -100  # [batch, length]: what this epoch predicts


def _rows(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    tok = builtin_tokenizer()
    body = torch.randint(10, len(tok), (n, 30), generator=g)
    cls, sep = tok.cls_token_id, tok.sep_token_id
    return tok, [[cls, *map(int, r[: 8 + i % 20]), sep] for i, r in enumerate(body)]


@pytest.mark.parametrize("k", [2, 4, 7])
def test_across_epochs_every_token_is_predicted_once_per_cycle(k):
    tok, rows = _rows()
    collator = MaskingCollator(tok, "fully-explored-epochs", views=k, seed=3)
    for cycle in range(2):
        masks = [_epoch_labels(collator, rows, cycle * k + e) for e in range(k)]
        total = torch.stack(masks).sum(0)
        maskable = torch.tensor([[0] + [1] * (len(r) - 2) + [0] * (32 - len(r) + 1) for r in rows])
        assert torch.equal(total, maskable[:, : total.shape[1]]), "each token exactly once"
        sizes = torch.stack(masks).sum(-1)  # [k, batch]: one group per epoch, n/K each
        n = maskable.sum(-1)
        assert ((sizes >= n // k) & (sizes <= -(-n // k))).all()
    a = torch.stack([_epoch_labels(collator, rows, e) for e in range(k)])
    b = torch.stack([_epoch_labels(collator, rows, k + e) for e in range(k)])
    assert not torch.equal(a, b), "a new partition every cycle"


def test_across_epochs_each_epoch_is_one_view_at_rate_one_over_k():
    tok, rows = _rows()
    collator = MaskingCollator(tok, "fully-explored-epochs", rate=0.25, seed=0)
    collator.set_epoch(5)
    out = collator([{"input_ids": r, "example_index": i} for i, r in enumerate(rows)])
    assert collator.views == 4 and out["input_ids"].shape[0] == len(rows), "one row per sequence"


def test_across_epochs_a_single_epoch_is_uniform_over_positions():
    # Marginally, one epoch's mask is a uniform random mask of n/K tokens: every
    # position of a row is equally likely, whatever its place or its cycle.
    tok = builtin_tokenizer()
    row = [tok.cls_token_id, *range(20, 32), tok.sep_token_id]  # 12 maskable positions
    collator = MaskingCollator(tok, "fully-explored-epochs", views=4, seed=1)
    counts = torch.zeros(14)
    draws = 1200
    collator.set_epoch(2)
    out = collator([{"input_ids": row, "example_index": i} for i in range(draws)])
    counts = (out["labels"] != -100).sum(0).float()
    assert counts[0] == 0 and counts[-1] == 0
    expected = draws / 4
    assert ((counts[1:-1] - expected).abs() < 5 * expected**0.5).all(), counts


def test_across_epochs_masks_do_not_depend_on_history_or_batching():
    tok, rows = _rows()
    walked = MaskingCollator(tok, "fully-explored-epochs", views=4, seed=7)
    for e in range(6):
        last = _epoch_labels(walked, rows, e)
    resumed = MaskingCollator(tok, "fully-explored-epochs", views=4, seed=7)
    assert torch.equal(_epoch_labels(resumed, rows, 5), last), "resuming continues the cycle"
    resumed.set_epoch(5)
    alone = resumed([{"input_ids": rows[3], "example_index": 3}])["labels"] != -100
    assert torch.equal(alone[0, : len(rows[3])], last[3, : len(rows[3])])
