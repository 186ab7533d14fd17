"""The linear probe: frozen features, logistic regression, nothing random but the
features; and fine-tuning's record of a run that collapsed to one class."""

from __future__ import annotations

import json

import pytest
import torch
from test_finetune import _cfg, _rows, _write_jsonl, model_dir  # noqa: F401  (fixture)

from femlm.cli import main
from femlm.finetune.probe import fit_logistic, format_probe, linear_probe
from femlm.finetune.results import ProbeResult


def test_logistic_regression_separates_separable_data_and_l2_shrinks_it():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    w, b = fit_logistic(x, y, 2, 1e-4)
    assert ((x @ w + b).argmax(-1) == y).float().mean() > 0.97
    strong, _ = fit_logistic(x, y, 2, 10.0)
    assert strong.norm() < w.norm()
    again, _ = fit_logistic(x, y, 2, 1e-4)
    assert torch.equal(w, again), "no randomness: the same data gives the same weights"


def test_a_probe_is_deterministic_and_chooses_its_penalty_on_dev(model_dir, tmp_path):  # noqa: F811
    task = _write_jsonl(tmp_path / "task.jsonl", _rows())
    out = tmp_path / "probe.json"
    cfg = _cfg(model_dir, task, out=str(out), method="linear-probe", metric="macro_f1")
    first = linear_probe(cfg)
    again = linear_probe(cfg)
    run = first.runs[0]
    assert run.seed is None and len(first.runs) == 1
    assert [r.test_accuracy for r in again.runs] == [run.test_accuracy]
    best = max(run.l2_search, key=lambda t: t["macro_f1"])
    assert run.l2 == best["l2"] and run.dev_macro_f1 == best["macro_f1"]
    assert ProbeResult.load(out).to_json() == json.loads(out.read_text())
    assert "linear probe" in format_probe(first)


def test_an_untrained_preset_is_probed_once_per_initialisation_seed(model_dir, tmp_path, capsys):  # noqa: F811
    task = _write_jsonl(tmp_path / "task.jsonl", _rows())
    out = tmp_path / "init.json"
    args = ["finetune", "--method", "linear-probe", "--model", "tiny", "--task", str(task)]
    args += ["--tokenizer", str(model_dir), "--seeds", "0", "1", "--out", str(out)]
    args += ["--max-length", "32", "--threads", "1", "--no-progress"]
    assert main(args) == 0
    result = ProbeResult.load(out)
    assert [r.seed for r in result.runs] == [0, 1]
    assert "init seed 1" in capsys.readouterr().out


def test_fine_tuning_records_a_collapse_to_one_class(model_dir, tmp_path, monkeypatch):  # noqa: F811
    import femlm.finetune.run as ft

    monkeypatch.setattr(ft, "predict", lambda model, data, pad, device: [0] * len(data))
    task = _write_jsonl(tmp_path / "task.jsonl", _rows())
    result = ft.finetune(_cfg(model_dir, task, epochs=1, out=str(tmp_path / "r.json")))
    assert result.runs[0].collapsed
    assert "collapsed to one class in 1 of 1" in ft.format_table(result)
    with pytest.raises(ValueError):
        ft.FinetuneConfig(method="probe")
