"""What only a CUDA device can show (``pytest -m gpu``; skipped where none is visible,
so CI on CPU reports them as skipped, never as passed): training, resuming, bf16
and the variance probe on the device give what the CPU gives."""

import json

import pytest
import torch
from test_train import _args

from femlm.cli import main

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible"),
]


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_training_on_the_device_matches_the_cpu_in_fp32(setup, tmp_path):
    """Same masks, same data order, same initial weights: the first steps' losses
    agree to float tolerance (kernels differ, the masks do not)."""
    gpu, cpu = tmp_path / "gpu", tmp_path / "cpu"
    assert main(_args(setup, gpu, "--device", "cuda")) == 0
    assert main(_args(setup, cpu, "--device", "cpu")) == 0
    a = [r["loss"] for r in _rows(gpu) if "loss" in r]
    b = [r["loss"] for r in _rows(cpu) if "loss" in r]
    assert a[0] == pytest.approx(b[0], rel=1e-3) and len(a) == len(b)


def test_bf16_on_the_device_trains_and_saves_float32_weights(setup, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "bf16"
    assert main(_args(setup, out, "--device", "cuda", "--bf16")) == 0
    losses = [r["loss"] for r in _rows(out) if "loss" in r]
    assert all(l == l and l < 20 for l in losses)  # noqa: E741 (finite, sane)
    dtypes = {t.dtype for t in load_file(out / "final" / "model.safetensors").values()}
    assert dtypes == {torch.float32}


def test_resume_on_the_device_continues_the_same_run(setup, tmp_path):
    """What a kill after the step-9 checkpoint leaves on disk, resumed on the device,
    ends where the uninterrupted run ended (to kernel tolerance)."""
    import shutil

    extra = ("--device", "cuda", "--max-steps", "12", "--save-every", "3", "--eval-every", "6")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(_args(setup, whole, *extra)) == 0
    shutil.copytree(whole, cut)
    shutil.rmtree(cut / "final")
    shutil.rmtree(cut / "checkpoints" / "step-0000012")
    kept = [
        line
        for line in (cut / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["step"] <= 9
    ]
    (cut / "metrics.jsonl").write_text("\n".join(kept) + "\n")
    assert main([*_args(setup, cut, *extra), "--resume"]) == 0
    last = lambda out: [r for r in _rows(out) if "eval_loss" in r][-1]["eval_loss"]  # noqa: E731
    assert last(cut) == pytest.approx(last(whole), rel=1e-4)
    assert [r["step"] for r in _rows(cut) if "loss" in r] == list(range(1, 13))


def test_variance_probe_runs_on_the_device(setup, tmp_path):
    out = tmp_path / "run"
    assert main(_args(setup, out, "--device", "cuda")) == 0
    probe = tmp_path / "variance"
    args = ["variance", "--model", str(out / "final"), "--data", str(setup["corpus"])]
    args += ["--max-length", "32", "--sequences", "3", "--draws", "2", "--bootstrap", "20"]
    args += ["--device", "cuda", "--out-dir", str(probe), "--no-progress"]
    assert main(args) == 0
    assert (probe / "variance.json").is_file()
