"""What femlm writes opens with transformers' own classes, on the oldest and the newest
supported transformers (CI runs this file, and every test marked ``interop``, on both)."""

import json
import random
from pathlib import Path

import pytest
import torch

from femlm.cli import main

pytestmark = pytest.mark.interop

WORDS = "the a model token mask gradient sentence word view step data train loss noise".split()


def _corpus(path: Path, docs: int = 200) -> Path:
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) for _ in range(docs)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """A finished 4-step run of the tiny preset, with checkpoints at steps 2 and 4."""
    from femlm.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("interop")
    corpus = _corpus(root / "corpus.txt")
    tok = train_tokenizer([corpus], root / "tok", vocab_size=80, min_frequency=1, progress=False)
    out = root / "run"
    args = ["pretrain", "--data", str(corpus), "--tokenizer", str(tok), "--out-dir", str(out)]
    args += ["--cache-dir", str(root / "cache"), "--max-length", "32", "--batch-size", "4"]
    args += ["--max-steps", "4", "--warmup-steps", "1", "--eval-every", "2", "--save-every", "2"]
    args += ["--eval-sequences", "4", "--threads", "1", "--no-progress"]
    assert main(args) == 0
    return {"root": root, "corpus": corpus, "tokenizer": tok, "out": out}


def test_the_final_folder_loads_with_auto_classes(run):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    final = run["out"] / "final"
    tok = AutoTokenizer.from_pretrained(final)
    model = AutoModelForMaskedLM.from_pretrained(final)
    assert tok.mask_token == "[MASK]" and model.config.num_hidden_layers == 2
    config = json.loads((final / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_saved_tokenizers_know_the_position_limit_and_token_types(run):
    from transformers import AutoTokenizer, pipeline

    tok = AutoTokenizer.from_pretrained(run["out"] / "final")
    assert tok.model_max_length == 512  # the tiny preset's position table
    assert "token_type_ids" in tok("a model", "a token")  # BERT: type_vocab_size 2
    assert "token_type_ids" in AutoTokenizer.from_pretrained(run["tokenizer"])("a", "b")
    text = "the [MASK] " + " ".join(["model"] * 600)
    fill = pipeline("fill-mask", model=str(run["out"] / "final"), device="cpu")
    assert len(fill(text, tokenizer_kwargs={"truncation": True}, top_k=2)) == 2


def test_checkpoints_open_with_from_pretrained(run):
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM

    step = run["out"] / "checkpoints" / "step-0000004"
    model = AutoModelForMaskedLM.from_pretrained(step)
    final = AutoModelForMaskedLM.from_pretrained(run["out"] / "final")
    for name, tensor in load_file(str(step / "model.safetensors")).items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert torch.equal(model.cls.predictions.decoder.weight, final.cls.predictions.decoder.weight)


def _tiny_roberta(folder: Path, tokenizer, positions: int) -> Path:
    from transformers import RobertaConfig, RobertaForMaskedLM

    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=positions, pad_token_id=tokenizer.pad_token_id,
        type_vocab_size=1,
    )  # fmt: skip
    RobertaForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_roberta_positions_start_after_the_padding_id(run, tmp_path, capsys):
    from femlm.data.tokenizer import load_tokenizer

    tok = load_tokenizer(run["tokenizer"])  # [PAD] is id 0: positions start at 1
    model = _tiny_roberta(tmp_path / "roberta", tok, positions=34)
    args = ["pretrain", "--data", str(run["corpus"]), "--model", str(model)]
    args += ["--cache-dir", str(run["root"] / "cache"), "--batch-size", "4", "--max-steps", "1"]
    args += ["--eval-sequences", "4", "--threads", "1", "--no-progress"]
    capsys.readouterr()
    assert main([*args, "--max-length", "34", "--out-dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # exit 2 with this line: a FemlmError, not the embedding's IndexError traceback
    assert err[-1].startswith("femlm: error: max_length 34 exceeds the 33 positions"), err
    assert main([*args, "--max-length", "33", "--out-dir", str(tmp_path / "b")]) == 0
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(tmp_path / "b" / "final")
    assert saved.model_max_length == 33 and "token_type_ids" not in saved("a", "b")
