"""Fine-tuning: task files, splits, metrics, determinism and the loop on a separable task."""

import argparse
import dataclasses
import importlib.util
import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from femlm.errors import FemlmError
from femlm.finetune.results import FinetuneResult, Summary
from femlm.finetune.run import FinetuneConfig, finetune, format_table, macro_f1
from femlm.finetune.tasks import label_order, read_task_file, split_rows, subsample
from femlm.schema import add_arguments, load_config

FILLER = "the a model token data train loss noise random small large word view step".split()


def _rows(n: int = 240, seed: int = 0) -> list[dict]:
    """Label "yes" iff the text holds the word "mask": one word decides, easy to learn."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 9))]
        if i % 2:
            words.insert(rng.randrange(len(words) + 1), "mask")
        rows.append({"text": " ".join(words), "label": "yes" if i % 2 else "no"})
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A one-layer, hidden-32 BERT masked-LM and the built-in tokenizer, like a run's final/."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from femlm.masking.show import builtin_tokenizer

    folder = tmp_path_factory.mktemp("model")
    tokenizer = builtin_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _cfg(model_dir: Path, task: Path, **kw) -> FinetuneConfig:
    base = dict(model=str(model_dir), task=str(task), seeds=[0], lr=5e-3, epochs=4, patience=0)
    base |= dict(batch_size=16, max_length=32, threads=1, progress=False)
    return FinetuneConfig(**(base | kw))


def test_learns_a_separable_task_and_writes_json(model_dir, tmp_path):
    task = _write_jsonl(tmp_path / "task.jsonl", _rows())
    out = tmp_path / "res.json"
    result = finetune(_cfg(model_dir, task, seeds=[0, 1], out=str(out)))
    saved = json.loads(out.read_text())
    assert saved["labels"] == ["no", "yes"]
    assert saved["splits"] == {"train": 192, "dev": 24, "test": 24}
    assert saved["split"].startswith("stratified 80/10/10")
    assert [r["seed"] for r in saved["runs"]] == [0, 1]
    for run in saved["runs"]:
        assert set(run) >= {"seed", "best_epoch", "dev_accuracy", "test_accuracy"}
        assert set(run) >= {"test_macro_f1", "seconds"}
        assert run["test_accuracy"] > 0.8
    assert saved["test_accuracy"]["std"] is not None
    assert dataclasses.asdict(result.test_macro_f1) == saved["test_macro_f1"]
    assert FinetuneResult.load(out).to_json() == saved  # the file reads back as its type
    assert "+-" in format_table(result) and not list(tmp_path.glob("*.tmp"))


def test_same_seed_gives_identical_numbers(model_dir, tmp_path):
    task = _write_jsonl(tmp_path / "task.jsonl", _rows(120))
    kw = dict(epochs=2, out=str(tmp_path / "r.json"))
    first, second = finetune(_cfg(model_dir, task, **kw)), finetune(_cfg(model_dir, task, **kw))
    strip = [dataclasses.replace(r, seconds=0) for r in first.runs]
    assert strip == [dataclasses.replace(r, seconds=0) for r in second.runs]


def test_given_splits_csv_and_default_output(model_dir, tmp_path):
    folder = tmp_path / "mytask"
    folder.mkdir()
    rows = [{"sentence": r["text"], "y": 7 if r["label"] == "yes" else 10} for r in _rows(80)]
    for split, part in (("train", rows[:60]), ("dev", rows[60:70]), ("test", rows[70:])):
        lines = ["sentence,y"] + [f"{r['sentence']},{r['y']}" for r in part]
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = _cfg(model_dir, folder, text_field="sentence", label_field="y", epochs=1)
    result = finetune(cfg)
    assert result.labels == ["7", "10"]  # integers sort as numbers
    assert result.splits == {"train": 60, "dev": 10, "test": 10} and result.split == "given"
    assert Path(result.out) == model_dir / "finetune-mytask.json"
    assert result.test_accuracy.std is None  # one seed: no spread


def test_stratified_split_is_deterministic_and_stratified():
    rows = [(f"text {i}", "a" if i % 4 else "b") for i in range(200)]  # 150 a, 50 b
    first, again = split_rows(rows), split_rows(list(reversed(rows)))
    assert {k: sorted(v) for k, v in first.items()} == {k: sorted(v) for k, v in again.items()}
    counts = {k: Counter(y for _, y in v) for k, v in first.items()}
    assert counts["train"] == {"a": 120, "b": 40}
    assert counts["dev"] == counts["test"] == {"a": 15, "b": 5}
    assert not set(first["train"]) & set(first["test"])


def test_subsample_keeps_class_shares():
    rows = [(f"t{i}", "a" if i % 3 else "b") for i in range(300)]  # 200 a, 100 b
    kept = subsample(rows, 30)
    assert Counter(y for _, y in kept) == {"a": 20, "b": 10}
    assert kept == subsample(list(reversed(rows)), 30)
    assert subsample(rows, None) is rows


def test_macro_f1_by_hand():
    gold = [0, 0, 0, 1, 1, 2]
    pred = [0, 0, 1, 1, 2, 2]
    # class 0: tp 2 fp 0 fn 1 -> 4/5; class 1: tp 1 fp 1 fn 1 -> 1/2; class 2: tp 1 fp 1 fn 0 -> 2/3
    assert macro_f1(gold, pred) == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)
    assert macro_f1([0, 0], [0, 1]) == pytest.approx(
        (2 / 3 + 0) / 2
    )  # predicted-only class scores 0
    summary = Summary.of([0.5, 0.7])
    assert (summary.mean, summary.std) == (pytest.approx(0.6), pytest.approx(0.1414213562))


def test_label_order():
    assert label_order({"10", "9", "-1"}) == ["-1", "9", "10"]
    assert label_order({"sport", "business", "10"}) == ["10", "business", "sport"]


def test_seeds_from_the_command_line(model_dir):
    parser = argparse.ArgumentParser()
    add_arguments(parser, FinetuneConfig)
    args = parser.parse_args(["--model", str(model_dir), "--task", "bbc", "--seeds", "3", "4"])
    cfg = load_config(FinetuneConfig, None, vars(args))
    assert cfg.seeds == [3, 4] and cfg.lr == FinetuneConfig().lr
    assert FinetuneConfig(seeds="0,1,2").seeds == [0, 1, 2]
    with pytest.raises(FemlmError, match="seeds must be integers"):
        FinetuneConfig(seeds=["x"])


BAD = [
    ("missing.jsonl", None, "task file not found"),
    ("empty.jsonl", b"", "has no examples"),
    ("nolabel.jsonl", b'{"text": "hi"}\n', "line 1 has no 'label' field"),
    ("nolabel.csv", b"text,category\nhi,a\n", "has no column 'label'.*--label-field"),
    ("latin1.csv", "text,label\ncaf\xe9,a\n".encode("latin-1"), "is not UTF-8 text"),
    ("oneclass.jsonl", b'{"text": "x", "label": "a"}\n' * 30, "only one class"),
    ("broken.jsonl", b'{"text": \n', "broken.jsonl:1: not valid JSON"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD)
def test_bad_task_files(model_dir, tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(FemlmError, match=message) as err:
        finetune(_cfg(model_dir, path))
    assert "\n" not in str(err.value)


def test_unseen_labels_and_missing_split(model_dir, tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    rows = _rows(40)
    _write_jsonl(folder / "train.jsonl", rows[:30])
    _write_jsonl(folder / "dev.jsonl", rows[30:35])
    with pytest.raises(FemlmError, match="no test.jsonl"):
        finetune(_cfg(model_dir, folder))
    _write_jsonl(folder / "test.jsonl", rows[35:] + [{"text": "new", "label": "maybe"}])
    with pytest.raises(FemlmError, match=r"test label\(s\) never seen in train: \['maybe'\]"):
        finetune(_cfg(model_dir, folder))
    with pytest.raises(FemlmError, match="model folder not found"):
        finetune(_cfg(tmp_path / "nope", folder))


def test_read_task_file_int_labels(tmp_path):
    path = _write_jsonl(
        tmp_path / "t.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": 0}]
    )
    assert read_task_file(path) == [("a", "1"), ("b", "0")]


def test_learning_rate_is_chosen_on_dev_of_the_first_seed(model_dir, tmp_path):
    task = _write_jsonl(tmp_path / "task.jsonl", _rows())
    # 1e-7 cannot move the fresh head in 4 epochs; 5e-3 learns the one-word rule.
    result = finetune(
        _cfg(model_dir, task, seeds=[0, 1], lrs=[1e-7, 5e-3], out=str(tmp_path / "r.json"))
    )
    assert result.lr == 5e-3 and result.config["lr"] == 5e-3
    assert [t["lr"] for t in result.lr_search] == [1e-7, 5e-3]
    low, high = (t["dev_accuracy"] for t in result.lr_search)
    assert high > 0.8 and low < high
    assert [r.seed for r in result.runs] == [0, 1], "the winner's first-seed run is reused"
    assert result.runs[0].dev_accuracy == high
    plain = finetune(_cfg(model_dir, task, seeds=[0, 1], out=str(tmp_path / "p.json")))
    assert plain.runs == [
        dataclasses.replace(r, seconds=p.seconds)
        for r, p in zip(result.runs, plain.runs, strict=True)
    ], "choosing 5e-3 gives exactly the runs of lr=5e-3"
    assert "chosen on seed 0's dev accuracy" in format_table(result)


def _scripted_predict(monkeypatch, script):
    """Replace the model's predictions, call by call: "majority" (every example the
    most common label), "mixed" (gold, but three majority examples called minority)
    or "gold"."""
    import femlm.finetune.run as run

    calls = iter(script)

    def fake(model, data, pad_id, device):
        gold = [y for _, y in data]
        majority = Counter(gold).most_common(1)[0][0]
        kind = next(calls)
        if kind == "majority":
            return [majority] * len(gold)
        pred = list(gold)
        if kind == "mixed":
            flip = [i for i, y in enumerate(gold) if y == majority][:3]
            for i in flip:
                pred[i] = 1 - majority
        return pred

    monkeypatch.setattr(run, "predict", fake)


def _imbalanced(tmp_path):
    rows = [dict(r, label="yes" if i % 10 == 0 else "no") for i, r in enumerate(_rows())]
    return _write_jsonl(tmp_path / "imbalanced.jsonl", rows)


@pytest.mark.parametrize(("metric", "epoch"), [("accuracy", 1), ("macro_f1", 2)])
def test_early_stopping_follows_the_chosen_dev_metric(
    model_dir, tmp_path, monkeypatch, metric, epoch
):
    # Calling everything the majority label wins on accuracy and loses on macro-F1.
    _scripted_predict(monkeypatch, ["majority", "mixed", "gold"])
    task = _imbalanced(tmp_path)
    result = finetune(_cfg(model_dir, task, epochs=2, metric=metric, out=str(tmp_path / "r.json")))
    run = result.runs[0]
    assert result.metric == metric and run.best_epoch == epoch
    assert run.dev_accuracy > 0.8 if epoch == 1 else run.dev_macro_f1 > 0.6
    assert run.test_accuracy == run.test_macro_f1 == 1.0
    assert json.loads((tmp_path / "r.json").read_text())["metric"] == metric
    assert f"dev metric {metric}" in format_table(result)


@pytest.mark.parametrize(("metric", "lr"), [("accuracy", 1e-3), ("macro_f1", 2e-3)])
def test_learning_rate_is_chosen_on_the_dev_metric(model_dir, tmp_path, monkeypatch, metric, lr):
    _scripted_predict(monkeypatch, ["majority", "gold", "mixed", "gold"])
    task = _imbalanced(tmp_path)
    cfg = _cfg(
        model_dir, task, epochs=1, lrs=[1e-3, 2e-3], metric=metric, out=str(tmp_path / "r.json")
    )
    result = finetune(cfg)
    assert result.lr == lr
    first, second = result.lr_search
    assert first["dev_accuracy"] > second["dev_accuracy"]
    assert first["dev_macro_f1"] < second["dev_macro_f1"]
    name = "accuracy" if metric == "accuracy" else "macro-F1"
    assert f"chosen on seed 0's dev {name}" in format_table(result)


def test_an_unknown_metric_is_a_one_line_error(model_dir, tmp_path):
    task = _write_jsonl(tmp_path / "task.jsonl", _rows(40))
    with pytest.raises(FemlmError, match="metric must be one of accuracy, macro_f1"):
        finetune(_cfg(model_dir, task, metric="f1"))


def test_learning_rate_grid_from_the_command_line(model_dir):
    parser = argparse.ArgumentParser()
    add_arguments(parser, FinetuneConfig)
    args = parser.parse_args(["--model", str(model_dir), "--task", "bbc", "--lrs", "3e-4", "1e-3"])
    assert load_config(FinetuneConfig, None, vars(args)).lrs == [3e-4, 1e-3]
    assert FinetuneConfig(lrs="1e-4,3e-4").lrs == [1e-4, 3e-4]
    with pytest.raises(FemlmError, match="lrs must be numbers"):
        FinetuneConfig(lrs=["fast"])


def test_a_preset_is_the_random_initialisation_baseline(model_dir, tmp_path):
    import torch

    import femlm.finetune.run as ft
    from femlm.data.tokenizer import load_tokenizer

    task = _write_jsonl(tmp_path / "task.jsonl", _rows(120))
    with pytest.raises(FemlmError, match="needs --tokenizer and --out"):
        finetune(_cfg("tiny", task))
    cfg = _cfg("tiny", task, tokenizer=str(model_dir), out=str(tmp_path / "tiny.json"), epochs=1)
    result = finetune(cfg)
    assert result.model == "tiny" and (tmp_path / "tiny.json").is_file()

    # the preset's architecture (hidden 128, 2 layers), not the folder's model (hidden 32),
    # with weights drawn from the seed: same seed, same weights; another seed, others
    tok = load_tokenizer(str(model_dir))

    def weights(seed: int):
        torch.manual_seed(seed)
        model = ft._load_model(cfg, ["no", "yes"], tok)
        assert (model.config.hidden_size, model.config.num_hidden_layers) == (128, 2)
        return model.base_model.encoder.layer[0].attention.self.query.weight

    assert torch.equal(weights(0), weights(0))
    assert not torch.equal(weights(0), weights(1))


def test_dropout_override_reaches_the_model(model_dir):
    import femlm.finetune.run as ft
    from femlm.data.tokenizer import load_tokenizer

    tok = load_tokenizer(str(model_dir))
    for model in (str(model_dir), "bert-tiny"):
        cfg = FinetuneConfig(model=model, dropout=0.25, max_length=32)
        loaded = ft._load_model(cfg, ["no", "yes"], tok)
        assert loaded.bert.embeddings.dropout.p == 0.25
        assert loaded.bert.encoder.layer[0].attention.self.dropout.p == 0.25
        assert loaded.dropout.p == 0.25  # before the classifier
        assert loaded.config.id2label == {0: "no", 1: "yes"}
    with pytest.raises(FemlmError, match="dropout must be in"):
        ft._check(FinetuneConfig(model=str(model_dir), dropout=1.5))


@pytest.mark.parametrize("name", ["BertConfig", "DistilBertConfig", "ModernBertConfig"])
def test_dropout_override_reaches_each_architectures_rates(name):
    import transformers

    from femlm.model import set_dropout

    if not hasattr(transformers, name):
        pytest.skip(f"{name} needs a newer transformers")
    config = getattr(transformers, name)()
    set_dropout(config, 0.0)
    heads = ("classifier_dropout", "qa_dropout", "seq_classif_dropout")  # task heads' own
    rates = {k: v for k, v in config.to_dict().items() if "dropout" in k and k not in heads}
    assert len(rates) >= 2 and set(rates.values()) == {0.0}, rates


def test_three_labels_size_the_head_on_both_paths(model_dir):
    import femlm.finetune.run as ft
    from femlm.data.tokenizer import load_tokenizer

    tok = load_tokenizer(str(model_dir))
    for model in (str(model_dir), "bert-tiny"):
        loaded = ft._load_model(FinetuneConfig(model=model, max_length=32), ["a", "b", "c"], tok)
        assert loaded.classifier.out_features == 3
        assert loaded.config.id2label == {0: "a", 1: "b", 2: "c"}
        assert loaded.config.label2id == {"a": 0, "b": 1, "c": 2}


def _pair_rows(n: int = 240) -> list[dict]:
    """Label "yes" iff the *second* text holds "mask": only a pair model can learn it."""
    rows = _rows(n)
    rng = random.Random(1)
    return [
        {"premise": " ".join(rng.choice(FILLER) for _ in range(5)), "hypothesis": r["text"],
         "label": r["label"]}
        for r in rows
    ]  # fmt: skip


def test_sentence_pairs_get_token_types_and_the_model_is_saved(model_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    task = _write_jsonl(tmp_path / "pairs.jsonl", _pair_rows())
    saved = tmp_path / "classifier"
    cfg = _cfg(model_dir, task, text_field="premise", text_pair_field="hypothesis")
    result = finetune(replace(cfg, save_model=str(saved), lrs=[5e-3, 1e-2], seeds=[0, 1]))
    assert result.runs[0].test_accuracy > 0.8
    assert sorted(p.name for p in saved.iterdir()) == ["seed-0", "seed-1"]  # candidates dropped
    model = AutoModelForSequenceClassification.from_pretrained(saved / "seed-0")
    tok = AutoTokenizer.from_pretrained(saved / "seed-0")
    assert model.config.id2label == {0: "no", 1: "yes"}
    enc = tok("the model", "a mask token", return_tensors="pt")
    assert enc["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert model.config.id2label[int(model(**enc).logits.argmax())] == "yes"


def test_a_missing_pair_column_names_its_flag(tmp_path):
    task = tmp_path / "t.csv"
    task.write_text("text,label\na b,x\n", encoding="utf-8")
    with pytest.raises(FemlmError, match="no column 'second'.*--text-pair-field"):
        read_task_file(task, pair_field="second")


def test_every_checkpoint_of_a_run_is_fine_tuned(model_dir, tmp_path, capsys):
    from transformers import BertForMaskedLM

    from femlm.cli import main
    from femlm.train.checkpoint import save_checkpoint

    run = tmp_path / "run"
    model = BertForMaskedLM.from_pretrained(model_dir)
    for step in (2, 4):
        save_checkpoint(run / "checkpoints", step, model, {"step": step}, {})
    (run / "femlm_config.json").write_text(json.dumps({"tokenizer": str(model_dir)}))
    task = _write_jsonl(tmp_path / "task.jsonl", _rows())
    args = ["finetune", "--task", str(task), "--seeds", "0", "1", "--epochs", "2", "--lr", "5e-3"]
    args += ["--max-length", "32", "--threads", "1", "--no-progress", "--checkpoints", "all"]
    assert main([*args, "--model", str(run)]) == 0
    curve = json.loads((run / "finetune-checkpoints" / "task.json").read_text())
    assert [p["step"] for p in curve["points"]] == [2, 4]
    for point in curve["points"]:
        assert point["test_accuracy"]["std"] is not None  # two seeds: a spread to plot
        one = json.loads((run / "finetune-checkpoints" / point["result"]).read_text())
        assert one["test_accuracy"] == point["test_accuracy"]
    assert "saved to" in capsys.readouterr().out
    plotted = (run / "finetune-checkpoints" / "task.png").is_file()
    assert plotted or importlib.util.find_spec("matplotlib") is None
    assert main([*args, "--model", str(model_dir)]) == 2
    assert "needs --model to be a pre-training run folder" in capsys.readouterr().err


def test_a_hub_id_is_named_as_such(tmp_path):
    task = _write_jsonl(tmp_path / "task.jsonl", _rows())
    with pytest.raises(FemlmError, match="local folders only.*hf download bert-base-uncased"):
        finetune(_cfg(Path("bert-base-uncased"), task))
