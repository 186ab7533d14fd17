"""--fused-attention: the rotary presets' attention through PyTorch's fused kernel is the
same function of the same weights as transformers' eager path."""

import copy
import json

import pytest
import torch
from test_train import _args
from transformers import AutoModelForMaskedLM, BertConfig, RoFormerConfig

from femlm.attention import use_fused_attention
from femlm.cli import main
from femlm.errors import FemlmError


def _pair():
    config = RoFormerConfig(
        vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, embedding_size=64, max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(0)
    eager = AutoModelForMaskedLM.from_config(config)
    fused = copy.deepcopy(eager)
    assert use_fused_attention(fused) == 2  # one module per layer
    return eager, fused


def _batch():
    ids = torch.randint(5, 300, (3, 24), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0  # padding must stay invisible to the other positions
    return ids, mask


@pytest.mark.interop  # transformers 4.x passes the attention's arguments by position
def test_fused_attention_gives_eager_outputs_and_gradients_from_the_same_weights():
    eager, fused = _pair()
    assert eager.state_dict().keys() == fused.state_dict().keys()
    ids, mask = _batch()
    for model in (eager, fused):
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0  # dropout draws differ between the paths by design
        model(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
    eager.eval()
    fused.eval()
    a = eager(input_ids=ids, attention_mask=mask).logits
    b = fused(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(a[mask.bool()], b[mask.bool()], atol=1e-5)
    compared = 0
    for (name, p), q in zip(eager.named_parameters(), fused.parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, atol=1e-5), name
            compared += 1
    assert compared > 10


@pytest.mark.interop
def test_attention_weights_when_asked_for_take_transformers_own_path():
    eager, fused = _pair()
    ids, mask = _batch()
    fused.eval()
    out = fused(input_ids=ids, attention_mask=mask, output_attentions=True)
    assert out.attentions[0].shape == (3, 4, 24, 24)


def test_fused_attention_on_another_architecture_is_refused():
    bert = AutoModelForMaskedLM.from_config(
        BertConfig(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        )  # fmt: skip
    )
    with pytest.raises(FemlmError, match="rotary"):
        use_fused_attention(bert, "bert-tiny")


def test_pretrain_with_fused_attention_saves_a_model_plain_transformers_loads(setup, tmp_path):
    out = tmp_path / "run"
    assert main(_args(setup, out, "--model", "tiny", "--fused-attention")) == 0
    assert json.loads((out / "femlm_config.json").read_text())["fused_attention"] is True
    model = AutoModelForMaskedLM.from_pretrained(out / "final")
    assert type(model.roformer.encoder.layer[0].attention.self).__name__ == "RoFormerSelfAttention"
    assert main(_args(setup, tmp_path / "b", "--model", "bert-tiny", "--fused-attention")) == 2
