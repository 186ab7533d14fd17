"""The demo's wiring, on a made-up corpus and task with tiny settings (seconds)."""

import json
import random

import femlm.corpora.fetch
import femlm.experiments.demo
from femlm.experiments import across_epochs
from femlm.experiments.demo import run_demo

WORDS = "the market film vote game phone price star minister team chip bank song law goal".split()


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _tiny_demo(tmp_path, monkeypatch):
    """A made-up corpus and task, the demo's settings shrunk to seconds."""
    rng = random.Random(0)
    cache = tmp_path / "cache"

    def text():
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 30)))

    _write_jsonl(cache / "corpora" / "bbc.jsonl", [{"text": text()} for _ in range(300)])
    for split, n in (("train", 80), ("dev", 10), ("test", 10)):
        rows = [{"text": text(), "label": ["a", "b"][i % 2]} for i in range(n)]
        _write_jsonl(cache / "tasks" / "movies" / f"{split}.jsonl", rows)
    monkeypatch.setattr(femlm.corpora.fetch, "fetch", lambda **kw: {})
    demo = femlm.experiments.demo.DEMO
    small = {
        "base": {**demo["base"], "max_length": 32, "eval_sequences": 8, "eval_every": 2,
                 "save_every": 2, "warmup_steps": 1, "threads": 1, "progress": False},
        "variance": {**demo["variance"], "sequences": 3, "draws": 2, "bootstrap": 20, "hamming_points": 3,
                     "hamming_pairs": 1, "pretrain_seeds": [0], "progress": False, "split": "train"},
    }  # fmt: skip
    monkeypatch.setattr(femlm.experiments.demo, "DEMO", {**demo, **small})
    adapt = across_epochs.ADAPT
    tiny = {
        "base": {**adapt["base"], "max_length": 32, "eval_sequences": 4, "test_sequences": 8,
                 "eval_every": 2, "save_every": 2, "warmup_steps": 1, "progress": False},
        "probe": {**adapt["probe"], "max_train_examples": 40, "seeds": [0, 1], "progress": False},
        "seeds": [0, 1],
    }  # fmt: skip
    monkeypatch.setattr(across_epochs, "ADAPT", {**adapt, **tiny})
    monkeypatch.setattr(across_epochs, "TRAIN_SNIPPETS", 40)
    monkeypatch.setattr(across_epochs, "HELD_OUT", 30)
    return cache


def test_demo_runs_both_acts_and_ends_on_their_verdicts(tmp_path, monkeypatch, capsys):
    cache = _tiny_demo(tmp_path, monkeypatch)
    demo = tmp_path / "demo"
    report = run_demo(str(demo), str(cache), seeds=(0,), steps=2, adapt_steps=3)
    out = capsys.readouterr().out
    act2 = demo / "across-epochs"
    assert report.is_file() and (act2 / "report.md").is_file()
    assert f"reports: {report}, {act2 / 'report.md'}" in out
    text_md = report.read_text()
    assert "fully-explored" in text_md and "standard" in text_md
    assert (demo / "fully-explored" / "seed-0" / "variance.json").is_file()
    assert not (demo / "standard" / "seed-0" / "variance.json").exists()
    # act 2 starts every seed from act 1's standard model and trains on the task text
    for variant in ("standard", "fully-explored-epochs"):
        for seed in (0, 1):
            run = act2 / variant / f"seed-{seed}"
            cfg = json.loads((run / "femlm_config.json").read_text())
            assert cfg["model"] == str(demo / "standard" / "seed-0" / "final")
            assert cfg["data"] == [str(act2 / "data" / "train.jsonl")]
            assert (run / "probe-movies.json").is_file(), "each adapted model is probed"
    act2_md = (act2 / "report.md").read_text()
    assert "On the test blocks" in act2_md, "act 2's report judges on test blocks"
    assert (
        "### Linear probes (frozen encoders)" in act2_md and "probe-random-init-movies" in act2_md
    )
    lines = (act2 / "data" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 40 and set(json.loads(lines[0])) == {"text"}, "text only, no labels"
    assert "act 1, within a step" in out and "fully-explored minus standard:" in out
    assert (
        "act 2, across epochs" in out
        and "fully-explored-epochs vs standard, test-block loss" in out
    )
    assert "linear probe of the frozen encoders" in out
    assert "random initialisation" in out and "over 2 initialisations" in out
    assert "the demo took" in out
    again = run_demo(str(demo), str(cache), seeds=(0,), steps=2, adapt_steps=3)
    assert again == report, "a second run reuses the finished runs"


def test_act2_needs_enough_task_text(tmp_path):
    import pytest

    from femlm.errors import FemlmError

    train = tmp_path / "train.jsonl"
    _write_jsonl(train, [{"text": "a b", "label": "x"}] * 10)
    with pytest.raises(FemlmError, match="needs"):
        across_epochs.task_corpus(train, tmp_path / "data")
