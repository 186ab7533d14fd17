"""The holes a hostile tour found: each is one line and exit 2 (or the right
behaviour), never a traceback, a silent NaN or a file outside the experiment."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from femlm.cli import main
from femlm.runs import read_metrics
from femlm.train.checkpoint import list_checkpoints

sys.path.insert(0, str(Path(__file__).parent))
from test_train import _args  # noqa: E402  (the shared tiny run)


def _err(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1] if lines else ""


@pytest.mark.parametrize("flag", ["--lr", "--epochs", "--clip-grad", "--weight-decay"])
def test_non_finite_settings_are_refused_before_any_work(setup, tmp_path, capsys, flag):
    assert main(_args(setup, tmp_path / "run", flag, "inf")) == 2
    assert "must be a finite number" in _err(capsys)
    assert not (tmp_path / "run").exists()


def test_a_run_whose_loss_turns_non_finite_stops_with_its_last_good_checkpoint(
    setup, tmp_path, capsys
):
    out = tmp_path / "run"
    args = _args(setup, out, "--lr", "1e30", "--clip-grad", "0", "--max-steps", "40")
    assert main([*args, "--save-every", "1", "--keep-last", "50"]) == 2
    err = _err(capsys)
    assert err.startswith("femlm: error: step ") and "not finite" in err and "final/" in err
    assert not (out / "final").exists()
    for ckpt in list_checkpoints(out / "checkpoints"):  # every saved state is finite
        from safetensors.torch import load_file

        assert all(torch.isfinite(t).all() for t in load_file(ckpt / "model.safetensors").values())
    rows, _ = read_metrics(out / "metrics.jsonl")
    assert all(json.dumps(r).find("NaN") < 0 and "Infinity" not in json.dumps(r) for r in rows)


def test_a_restart_before_the_first_checkpoint_starts_the_metrics_afresh(setup, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 0, "unigram_loss": 99.0}\n')
    assert main(_args(setup, out)) == 0
    rows, _ = read_metrics(out / "metrics.jsonl")
    assert [r for r in rows if r["step"] == 0] == [r for r in rows[:1]]
    assert rows[0]["unigram_loss"] != 99.0


def test_yaml_floats_as_users_write_them(setup, tmp_path):
    from femlm.config import TrainConfig
    from femlm.schema import load_config

    f = tmp_path / "c.yaml"
    f.write_text(
        "lr: 1e-3\nweight_decay: 5e-4\nrate: .25\nlrs_unused: 1\n".replace("lrs_unused: 1\n", "")
    )
    cfg = load_config(TrainConfig, str(f))
    assert (cfg.lr, cfg.weight_decay, cfg.rate) == (1e-3, 5e-4, 0.25)
    f.write_text("lr: fast\n")
    with pytest.raises(ValueError, match="'lr' should be float"):
        load_config(TrainConfig, str(f))


def test_the_documented_training_examples_load(tmp_path):
    """Every YAML block of docs/training.md parses into a TrainConfig."""
    import re

    import yaml

    from femlm.config import TrainConfig
    from femlm.schema import from_dict

    text = (Path(__file__).parents[1] / "docs" / "training.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        from_dict(TrainConfig, yaml.safe_load(block))


def test_symlinks_in_a_data_folder(setup, tmp_path, capsys, caplog):
    from femlm.data.readers import resolve_inputs

    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(setup["corpus"], folder / "a.txt")
    (folder / "self").symlink_to(".")  # a loop: never followed
    (folder / "again.txt").symlink_to(folder / "a.txt")  # the same file: read once
    outside = tmp_path / "outside.txt"
    outside.write_text("secret words\n")
    (folder / "out.txt").symlink_to(outside)
    assert [p.name for _, p in resolve_inputs([folder])] == ["a.txt"]
    assert "outside" in caplog.text and "not followed" in caplog.text
    (folder / "gone.txt").symlink_to(tmp_path / "nothing.txt")
    assert main(_args(setup, tmp_path / "run", "--data", str(folder))) == 2
    assert "gone.txt is a link to" in _err(capsys)


def test_out_dir_and_cache_folders_that_cannot_be_made(setup, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(_args(setup, afile)) == 2
    assert "is a file, not a folder" in _err(capsys)
    assert main(_args(setup, "/proc/femlm-run")) == 2
    assert "cannot create the run folder" in _err(capsys)
    args = _args(setup, tmp_path / "run")
    args[args.index("--cache-dir") + 1] = "/proc/femlm-cache"
    assert main(args) == 2
    assert "cannot create the block cache" in _err(capsys)


@pytest.fixture
def finished(setup, tmp_path):
    out = tmp_path / "run"
    assert main(_args(setup, out)) == 0
    return out


def test_damaged_model_folders_and_checkpoints_are_one_line(setup, finished, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(finished / "final", model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "hidden_size": 64}))
    base = _args(setup, tmp_path / "a", "--model", str(model))
    assert main(base) == 2
    assert "does not match its weights" in _err(capsys) or "cannot load" in _err(capsys)
    (model / "config.json").write_text(json.dumps(config)[:40])  # truncated
    assert main(_args(setup, tmp_path / "b", "--model", str(model), "--tokenizer", str(model))) == 2
    err = _err(capsys)
    assert "config.json is not valid JSON" in err and "tokenizer" not in err

    ckpt = list_checkpoints(finished / "checkpoints")[-1]
    shutil.rmtree(finished / "final")
    torch_state = ckpt / "training.pt"
    import pickle

    torch_state.write_bytes(pickle.dumps({"step": 1}))
    _refresh_manifest(ckpt)
    assert main(_args(setup, finished, "--resume")) == 2
    assert "not a weights-only tensor file" in _err(capsys)
    os.replace(ckpt / "model.safetensors", ckpt / "pytorch_model.bin")
    _refresh_manifest(ckpt)
    assert main(_args(setup, finished, "--resume")) == 2
    assert "never unpickles a pytorch_model.bin" in _err(capsys)


def _refresh_manifest(ckpt: Path) -> None:
    """A hostile copy whose manifest agrees with its (wrong) files."""
    from femlm.files import sha256_file

    names = [p.name for p in ckpt.iterdir() if p.is_file() and p.name != "manifest.json"]
    sha = {n: sha256_file(ckpt / n) for n in names}
    (ckpt / "manifest.json").write_text(json.dumps({"step": 1, "sha256": sha}))


def test_checkpoints_open_as_trainer_checkpoints_do(finished):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    ckpt = list_checkpoints(finished / "checkpoints")[-1]
    assert AutoTokenizer.from_pretrained(ckpt).mask_token == "[MASK]"
    assert AutoModelForMaskedLM.from_pretrained(ckpt).config.num_hidden_layers == 2


def _experiment(tmp_path, setup, runs: str, extra: str = "") -> Path:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        f"""
out_dir: {tmp_path / "out"}
seeds: [0]
base:
  data: ["{setup["corpus"]}"]
  tokenizer: "{setup["tokenizer"]}"
  cache_dir: "{setup["cache"]}"
  max_length: 32
  max_steps: 2
  eval_sequences: 4
  batch_size: 4
  threads: 1
  progress: false
runs:
{runs}
{extra}"""
    )
    return cfg


@pytest.mark.parametrize("name", ["../../escaped", "a/b", ".hidden", "..", "x\\\\y"])
def test_variant_names_stay_one_folder_inside_the_experiment(setup, tmp_path, capsys, name):
    cfg = _experiment(tmp_path, setup, f'  "{name}": {{strategy: random, views: 1}}')
    assert main(["experiment", str(cfg)]) == 2
    assert "cannot name a file" in _err(capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "escaped").exists()


def test_a_typo_in_a_run_names_the_file_and_the_run(setup, tmp_path, capsys):
    cfg = _experiment(tmp_path, setup, "  mine: {stratgy: random}")
    assert main(["experiment", str(cfg)]) == 2
    err = _err(capsys)
    assert str(cfg) in err and "run 'mine'" in err and "stratgy" in err


def test_grid_tokenizer_options_task_files_and_no_report(setup, tmp_path, capsys):
    from femlm.data.tokenizer import load_tokenizer

    task = tmp_path / "my task.jsonl"
    rows = [{"text": f"the model {w} sentence", "label": w} for w in ("yes", "no") * 30]
    task.write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = setup["corpus"]
    tok = f'tokenizer: {{data: ["{corpus}"], output: "{tmp_path / "tok"}", vocab_size: 100, min_frequency: 1, cased: true}}'
    ft = f'finetune: {{tasks: ["{task}"], seeds: [0], epochs: 1, max_length: 32, threads: 1, progress: false}}'
    cfg = _experiment(tmp_path, setup, "  std: {strategy: random, views: 1}", f"{tok}\n{ft}\n")
    cfg.write_text(cfg.read_text().replace(f'  tokenizer: "{setup["tokenizer"]}"\n', ""))
    capsys.readouterr()
    assert main(["experiment", str(cfg), "--no-report"]) == 0
    assert "final val loss" not in capsys.readouterr().out  # --no-report prints nothing of it
    assert (
        load_tokenizer(tmp_path / "tok")("The Model")["input_ids"]
        != load_tokenizer(tmp_path / "tok")("the model")["input_ids"]
    ), "cased: true keeps case"
    run = tmp_path / "out" / "std" / "seed-0"
    assert (run / "finetune-my_task.json").is_file()  # femlm finetune's name for the file
    from femlm.report.writer import write_report

    assert "my_task" in write_report(tmp_path / "out").read_text()
