"""Runs cannot be silently corrupted: what resume refuses, the run-folder lock, a
finished run, torn metrics, corrupt checkpoints, settings checked before any
work, and one line (not a traceback) for every bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from femlm.cli import main
from femlm.errors import FemlmError
from femlm.runs import RunLock, read_metrics
from femlm.train.checkpoint import list_checkpoints

sys.path.insert(0, str(Path(__file__).parent))
from test_train import _args, _corpus  # noqa: E402  (the shared tiny run)


def _err(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1] if lines else ""


@pytest.fixture
def interrupted(setup, tmp_path):
    """A run killed after its last checkpoint (step 6 of 6), before final/ was written."""
    out = tmp_path / "run"
    assert main(_args(setup, out, "--save-every", "1", "--keep-last", "3")) == 0
    shutil.rmtree(out / "final")
    return out


@pytest.mark.parametrize(
    "change",
    [
        ["--strategy", "random", "--views", "1"],
        ["--lr", "0.01"],
        ["--batch-size", "8"],
        ["--max-length", "24"],
        ["--seed", "5"],
        ["--model", "mini"],
        ["--max-steps", "9"],  # a linear schedule would decay differently
    ],
    ids=lambda c: c[0],
)
def test_resume_refuses_settings_that_change_the_run(setup, interrupted, capsys, change):
    saved = (interrupted / "femlm_config.json").read_bytes()
    assert main(_args(setup, interrupted, "--resume", *change)) == 2
    err = _err(capsys)
    assert (
        err.startswith("femlm: error: --resume continues the run")
        and change[0][2:].replace("-", "_") in err
    )
    assert (interrupted / "femlm_config.json").read_bytes() == saved


def test_resume_with_another_tokenizer_or_data_is_refused(setup, interrupted, tmp_path, capsys):
    other = _corpus(tmp_path / "other.txt", seed=9)
    assert main(_args(setup, interrupted, "--resume", "--data", str(other))) == 2
    assert "data:" in _err(capsys)
    assert main(_args(setup, interrupted, "--resume", "--tokenizer", str(tmp_path))) == 2
    assert "tokenizer:" in _err(capsys)


def test_resume_accepts_settings_that_leave_the_run_alone(setup, interrupted):
    saved = (interrupted / "femlm_config.json").read_bytes()
    extra = ["--resume", "--threads", "2", "--progress", "--log-every", "5", "--keep-last", "1"]
    assert main(_args(setup, interrupted, *extra)) == 0
    assert (interrupted / "femlm_config.json").read_bytes() == saved, "the record is kept"


def test_a_longer_run_is_allowed_on_a_constant_schedule(setup, tmp_path):
    out = tmp_path / "run"
    assert main(_args(setup, out, "--schedule", "constant", "--max-steps", "3")) == 0
    shutil.rmtree(out / "final")
    assert main(_args(setup, out, "--schedule", "constant", "--max-steps", "6", "--resume")) == 0
    assert max(r["step"] for r in read_metrics(out / "metrics.jsonl")[0]) == 6


def test_a_finished_run_is_never_started_over(setup, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(setup, out)) == 0
    shutil.rmtree(out / "checkpoints")
    before = (out / "metrics.jsonl").read_text()
    assert main(_args(setup, out)) == 2
    assert "finished run" in _err(capsys)
    assert (out / "metrics.jsonl").read_text() == before
    assert main(_args(setup, out, "--resume")) == 2
    assert "nothing to resume" in _err(capsys)


def test_a_second_writer_is_refused_and_a_dead_one_leaves_no_lock(setup, tmp_path, capsys):
    out = tmp_path / "run"
    code = "import sys, time; from femlm.runs import RunLock; RunLock(sys.argv[1]).__enter__(); print('held', flush=True); time.sleep(60)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, env=env
    )
    try:
        assert holder.stdout.readline().strip() == b"held"
        assert main(_args(setup, out)) == 2
        assert f"in use by femlm (pid {holder.pid})" in _err(capsys)
        assert not (out / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(_args(setup, out)) == 0, "the kernel released the dead holder's lock"


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with RunLock(tmp_path / "r"), RunLock(tmp_path / "r"):
        pass
    with RunLock(tmp_path / "r"):  # released: it can be taken again
        pass


def test_a_torn_last_metrics_line_is_dropped_on_resume(setup, interrupted, caplog):
    with open(interrupted / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "loss": 1.2')  # a kill during a write
    assert main(_args(setup, interrupted, "--resume")) == 0
    assert "torn last line" in caplog.text
    rows, torn = read_metrics(interrupted / "metrics.jsonl")
    assert not torn and all(isinstance(r["step"], int) for r in rows)


def test_a_corrupt_metrics_line_is_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(FemlmError, match=r"metrics\.jsonl:2: not a metrics row"):
        read_metrics(path)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_newest_good_one(
    setup, interrupted, tmp_path, caplog
):
    whole = tmp_path / "whole"
    assert main(_args(setup, whole)) == 0
    newest = list_checkpoints(interrupted / "checkpoints")[-1]
    (newest / "model.safetensors").write_bytes(b"garbage")
    assert main(_args(setup, interrupted, "--resume")) == 0
    assert f"moved it to .{newest.name}.corrupt" in caplog.text
    assert (interrupted / "checkpoints" / f".{newest.name}.corrupt").is_dir(), "kept, not deleted"
    a = load_file(str(whole / "final" / "model.safetensors"))
    b = load_file(str(interrupted / "final" / "model.safetensors"))
    assert all((a[k] == b[k]).all() for k in a), "resumed from step 5: same weights as one run"


def test_a_hand_edited_manifest_is_a_one_line_error(setup, interrupted, capsys):
    for ckpt in list_checkpoints(interrupted / "checkpoints"):
        (ckpt / "manifest.json").write_text(json.dumps({"step": 1, "sha256": ["x"]}))
    assert main(_args(setup, interrupted, "--resume")) == 2
    assert "passes its sha256 check" in _err(capsys)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--eval-sequences", "0"], "eval_sequences must be >= 1"),
        (["--validation-fraction", "1"], "validation_fraction must be in [0, 1)"),
        (["--variance-every", "-1"], "variance_every must be >= 0"),
        (["--save-every", "-1"], "save_every must be >= 0"),
        (["--eval-every", "-1"], "eval_every must be >= 0"),
        (["--keep-last", "0"], "keep_last must be >= 1"),
        (["--warmup-steps", "-1"], "warmup_steps must be >= 0"),
        (["--clip-grad", "-1"], "clip_grad must be >= 0"),
        (["--log-every", "0"], "log_every must be >= 1"),
        (["--threads", "-1"], "threads must be >= 1"),
        (["--lr", "0"], "lr must be > 0"),
    ],
    ids=lambda x: x[0] if isinstance(x, list) else "",
)
def test_every_numeric_setting_is_checked_before_any_work(setup, tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert main(_args(setup, out, *flags)) == 2
    assert message in _err(capsys)
    assert not out.exists(), "nothing was written"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--sequences", "-3"], "sequences must be >= 3"),
        (["--bootstrap", "-1"], "bootstrap must be >= 2"),
        (["--confidence", "1.5"], "confidence must be in (0, 1)"),
        (["--draws", "1"], "draws must be >= 2"),
    ],
)
def test_variance_settings_are_checked_before_any_work(capsys, flags, message):
    assert main(["variance", "--data", "nothing.txt", *flags]) == 2
    assert message in _err(capsys)


def test_a_config_file_is_checked_like_flags(setup, tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text("evaluation: {eval_rate: 1.5}\n")
    assert main([*_args(setup, tmp_path / "run"), "--config", str(bad)]) == 2
    assert "eval_rate must be in (0, 1)" in _err(capsys)


@pytest.mark.parametrize(
    "text, message",
    [
        ("finetune: {taskz: [bbc]}\n", "unknown config key(s): taskz"),
        ("tokenizer: {data: [c.txt], output: t, vocab_sise: 300}\n", "vocab_sise"),
        ("variance: {variants: [y]}\n", "variance.variants names no variant"),
        ("variance: {sequencez: 3}\n", "sequencez"),
        ("seeds: 5\n", "'seeds' should be a list of integers"),
        ('seeds: "12"\n', "'seeds' should be a list of integers"),
        ("base: [1]\n", "'base' should be a mapping"),
        ("finetune: {tasks: bbc}\n", "finetune.tasks should be a list"),
    ],
)
def test_experiment_files_are_typed_and_checked_before_any_work(tmp_path, capsys, text, message):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("runs: {standard: {strategy: random}}\nbase: {data: [c.txt]}\n" + text)
    if text.startswith("base"):
        cfg.write_text("runs: {standard: {strategy: random}}\n" + text)
    assert main(["experiment", str(cfg), "--out-dir", str(tmp_path / "out")]) == 2
    assert message in _err(capsys)
    assert not (tmp_path / "out").exists()


def test_runs_given_as_a_list_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("runs: [standard, fe]\n")
    assert main(["experiment", str(cfg)]) == 2
    assert "'runs' should map variant names" in _err(capsys)


def test_a_binary_file_is_not_a_corpus(setup, tmp_path, capsys):
    binary = tmp_path / "weights.txt"
    binary.write_bytes(os.urandom(20000))
    assert main(_args(setup, tmp_path / "run", "--data", str(binary))) == 2
    assert "does not look like text" in _err(capsys)
    noisy = tmp_path / "noisy.txt"  # a few bad lines in real text are skipped, as before
    noisy.write_bytes(setup["corpus"].read_bytes() + b"\xff\xfe bad line\n")
    assert main(_args(setup, tmp_path / "run2", "--data", str(noisy))) == 0


def _tiny_model(folder: Path, tokenizer: Path) -> Path:
    from transformers import BertConfig, BertForMaskedLM

    from femlm.data.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer)
    model = BertForMaskedLM(BertConfig(
        vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    ))  # fmt: skip
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_unreadable_or_pickled_weights_are_one_line_errors(setup, tmp_path, capsys):
    import torch

    corrupt = _tiny_model(tmp_path / "corrupt", setup["tokenizer"])
    (corrupt / "model.safetensors").write_bytes(b"garbage" * 10)
    pickled = _tiny_model(tmp_path / "pickled", setup["tokenizer"])
    state = load_file(str(pickled / "model.safetensors"))
    (pickled / "model.safetensors").unlink()
    torch.save(state, pickled / "pytorch_model.bin")
    for folder in (corrupt, pickled):
        assert main(_args(setup, tmp_path / f"run-{folder.name}", "--model", str(folder))) == 2
        assert _err(capsys).startswith(f"femlm: error: cannot load a masked-LM from '{folder}'")


def test_finetune_out_naming_a_folder_is_refused_before_training(setup, tmp_path, capsys):
    model = _tiny_model(tmp_path / "m", setup["tokenizer"])
    task = tmp_path / "t.jsonl"
    task.write_text(
        "".join(json.dumps({"text": f"w{i}", "label": i % 2}) + "\n" for i in range(40))
    )
    assert (
        main(["finetune", "--model", str(model), "--task", str(task), "--out", str(tmp_path)]) == 2
    )
    assert "is a folder" in _err(capsys)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"text": "", "label": i % 2} for i in range(20)], "has no examples with text"),
        ([{"text": f"w{i}", "label": 0.5 + i % 2} for i in range(20)], "is not a class name"),
    ],
)
def test_empty_texts_and_fractional_labels_are_refused(tmp_path, rows, message):
    from femlm.finetune.tasks import read_task_file

    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(FemlmError, match=message):
        read_task_file(path)


def test_fetch_reads_no_file_outside_the_unpacked_package(tmp_path):
    from femlm.corpora.sources import read_rst_tree

    root = tmp_path / "pkg"
    docs = root / "usr/share/doc/python3.11-doc/html/_sources"
    docs.mkdir(parents=True)
    prose = "This paragraph explains how the library reads its input files one by one."
    (docs / "inside.rst.txt").write_text(prose + "\n")
    secret = tmp_path / "host-secret.rst.txt"
    secret.write_text("The secret host file holds private words nobody should ever read here.\n")
    (docs / "link.rst.txt").symlink_to(secret)
    texts = read_rst_tree(root)
    assert any("library reads" in t for t in texts)
    assert not any("secret" in t for t in texts)
