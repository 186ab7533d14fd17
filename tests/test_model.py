"""Presets: the rotary-position default, the BERT and ModernBERT ones, and the
masked-positions-only loss that every one of them must compute exactly."""

import pytest
import torch

from femlm.masking.show import builtin_tokenizer
from femlm.model import PRESETS, build_model, mlm_loss_sum


@pytest.mark.parametrize(
    "name, cls",
    [("tiny", "RoFormerForMaskedLM"), ("bert-tiny", "BertForMaskedLM"),
     ("modernbert-tiny", "ModernBertForMaskedLM")],
)  # fmt: skip
def test_presets_build_their_architecture_and_the_cheap_loss_is_exact(name, cls):
    tok = builtin_tokenizer()
    torch.manual_seed(0)
    model = build_model(name, tok, 64, dropout=0.0).eval()
    assert type(model).__name__ == cls
    ids = torch.randint(5, len(tok), (3, 40))
    labels = torch.where(torch.rand(3, 40) < 0.2, ids, -100)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    loss, count = mlm_loss_sum(model, batch)
    logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits
    full = torch.nn.functional.cross_entropy(
        logits[labels != -100], labels[labels != -100], reduction="sum"
    )
    assert count == int((labels != -100).sum())
    assert loss.item() == pytest.approx(full.item(), rel=1e-5)


def test_every_size_exists_for_every_architecture():
    for size in ("tiny", "mini", "small", "base"):
        assert {size, f"bert-{size}", f"modernbert-{size}"} <= set(PRESETS)
        assert PRESETS[size].arch == "roformer"


def test_rotary_final_models_load_as_auto_masked_lm(tmp_path):
    from transformers import AutoModelForMaskedLM

    tok = builtin_tokenizer()
    for name in ("tiny", "modernbert-tiny"):
        model = build_model(name, tok, 64)
        model.save_pretrained(tmp_path / name)
        loaded = AutoModelForMaskedLM.from_pretrained(tmp_path / name)
        assert type(loaded) is type(model)
