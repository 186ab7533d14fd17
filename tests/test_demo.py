"""The demo's wiring, on a made-up corpus and task with tiny settings (seconds)."""

import json
import random

import femlm.corpora.fetch
import femlm.experiments.demo
from femlm.experiments.demo import run_demo

WORDS = "the market film vote game phone price star minister team chip bank song law goal".split()


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_demo_runs_end_to_end_and_writes_a_report(tmp_path, monkeypatch, capsys):
    rng = random.Random(0)
    cache = tmp_path / "cache"

    def text():
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 30)))

    _write_jsonl(cache / "corpora" / "bbc.jsonl", [{"text": text()} for _ in range(300)])
    for split, n in (("train", 40), ("dev", 10), ("test", 10)):
        rows = [{"text": text(), "label": ["a", "b"][i % 2]} for i in range(n)]
        _write_jsonl(cache / "tasks" / "movies" / f"{split}.jsonl", rows)
    monkeypatch.setattr(femlm.corpora.fetch, "fetch", lambda **kw: {})
    small = {
        "base": {**femlm.experiments.demo.DEMO["base"], "max_length": 32, "eval_sequences": 8, "eval_every": 2,
                 "save_every": 2, "warmup_steps": 1, "threads": 1, "progress": False},
        "variance": {**femlm.experiments.demo.DEMO["variance"], "sequences": 3, "draws": 2, "bootstrap": 20, "hamming_points": 3,
                     "hamming_pairs": 1, "pretrain_seeds": [0], "progress": False, "split": "train"},
        "finetune": {**femlm.experiments.demo.DEMO["finetune"], "epochs": 1, "seeds": [0], "progress": False},
    }  # fmt: skip
    monkeypatch.setattr(femlm.experiments.demo, "DEMO", {**femlm.experiments.demo.DEMO, **small})
    report = run_demo(str(tmp_path / "demo"), str(cache), seeds=(0,), steps=2)
    out = capsys.readouterr().out
    assert report.is_file() and f"report with plots: {report}" in out
    text_md = report.read_text()
    assert "fully-explored" in text_md and "standard" in text_md
    assert "| standard | movies |" in text_md, "fine-tuning results reach the report"
    assert (tmp_path / "demo" / "fully-explored" / "seed-0" / "variance.json").is_file()
    assert not (tmp_path / "demo" / "standard" / "seed-0" / "variance.json").exists()
    assert (tmp_path / "demo" / "random-init-finetune-movies.json").is_file()
    assert "fully-explored vs standard:" in out and "fully-explored vs random-K:" in out
    assert "vs random initialisation" in out and "mask variance, fully-explored" in out
    again = run_demo(str(tmp_path / "demo"), str(cache), seeds=(0,), steps=2)
    assert again == report, "a second run reuses the finished runs"
