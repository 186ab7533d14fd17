"""The data order (which blocks a step takes, in which epoch) and the held-out
evaluation: a separate corpus, dev blocks for choices, test blocks for verdicts."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from test_train import _args, _corpus

from femlm.cli import main
from femlm.masking.collator import MaskingCollator
from femlm.train.order import epoch_steps, epochs_done, step_rows, steps_per_epoch


def test_dropping_the_tail_keeps_every_step_inside_one_epoch():
    n, b = 10, 4  # 2 steps an epoch; 2 blocks of each epoch's order are never used
    assert steps_per_epoch(n, b) == 2 and epoch_steps(3, n, b) == 6
    for step in range(6):
        rows = step_rows(n, b, seed=0, step=step)
        assert {e for e, _ in rows} == {step // 2} and len({i for _, i in rows}) == b
    seen = Counter(i for s in range(2) for _, i in step_rows(n, b, 0, s))
    assert len(seen) == 8  # two blocks missed epoch 0


def test_wrapping_the_tail_sees_every_block_once_per_epoch():
    n, b = 10, 4
    assert steps_per_epoch(n, b, "wrap") == 2.5 and epoch_steps(2, n, b, "wrap") == 5
    stream = [row for s in range(5) for row in step_rows(n, b, 0, s, "wrap")]
    for epoch in (0, 1):
        assert sorted(i for e, i in stream if e == epoch) == list(range(n))
    crossing = step_rows(n, b, 0, 2, "wrap")  # places 8..11: end of epoch 0, start of 1
    assert [e for e, _ in crossing] == [0, 0, 1, 1]
    assert [epochs_done(s, n, b, "wrap") for s in range(6)] == [0, 0, 0, 1, 1, 2]
    # the first epoch's order is the same whatever happens to the tail
    drop = [i for s in range(2) for _, i in step_rows(n, b, 0, s)]
    assert drop == [i for _, i in stream[:8]]


def test_a_row_that_carries_its_epoch_gets_the_masks_of_that_epoch(setup):
    from femlm.data.tokenizer import load_tokenizer

    tok = load_tokenizer(str(setup["tokenizer"]))
    ids = tok("the model predicts every masked token once")["input_ids"]
    collator = MaskingCollator(tok, "fully-explored-epochs", rate=0.25, seed=3)
    mixed = collator([{"input_ids": ids, "example_index": 7, "epoch": e} for e in (0, 1, 2, 3, 4)])[
        "labels"
    ]
    for e in range(5):
        collator.set_epoch(e)
        alone = collator([{"input_ids": ids, "example_index": 7}])["labels"]
        assert torch.equal(mixed[e], alone[0])
    hidden = (mixed[:4] != -100).sum(0)  # one K = 4 cycle: every token exactly once
    assert int(hidden.max()) == 1 and int(hidden.sum()) == len(ids) - 2


def test_across_epochs_predicts_every_token_once_per_cycle_only_when_the_tail_wraps(
    setup, tmp_path
):
    """The promise of fully-explored-epochs over a real run's data order: with the
    tail dropped, blocks that miss an epoch miss one group of their cycle."""
    from femlm.data.blocks import run_blocks
    from femlm.data.tokenizer import load_tokenizer

    tok = load_tokenizer(str(setup["tokenizer"]))
    corpus = _corpus(tmp_path / "c.txt", docs=60)
    from femlm.config import TrainConfig

    cfg = TrainConfig(
        data=[str(corpus)], tokenizer=str(setup["tokenizer"]), max_length=32,
        cache_dir=str(setup["cache"]), validation_fraction=0.1, progress=False,
    )  # fmt: skip
    train, _ = run_blocks(cfg, tok, progress=False)
    n, b, k = len(train), 7, 4
    assert n % b, "the test needs a tail"
    collator = MaskingCollator(tok, "fully-explored-epochs", views=k, seed=0)
    for tail, whole in (("wrap", True), ("drop", False)):
        counts = torch.zeros(n, 32, dtype=torch.long)
        steps = -(-k * n // b) if tail == "wrap" else k * (n // b)  # k whole epochs
        for s in range(steps):
            rows = [(e, i) for e, i in step_rows(n, b, 0, s, tail) if e < k]
            feats = [
                {"input_ids": train[i]["input_ids"], "example_index": i, "epoch": e}
                for e, i in rows
            ]
            labels = collator(feats)["labels"]
            for (_, i), row in zip(rows, labels, strict=True):
                counts[i] += (row != -100).long()
        ids = torch.tensor(train["input_ids"])
        maskable = ~torch.isin(ids, torch.tensor(tok.all_special_ids))  # [SEP] joins documents
        assert torch.equal(counts[maskable], torch.ones_like(counts[maskable])) is whole
        assert int(counts[~maskable].sum()) == 0


def test_a_held_out_corpus_gives_dev_and_test_losses_with_independent_draws(setup, tmp_path):
    held_out = _corpus(tmp_path / "held-out.txt", docs=120, seed=5)
    out = tmp_path / "run"
    extra = ("--eval-data", str(held_out), "--validation-fraction", "0")
    extra += ("--test-sequences", "16", "--test-draws", "3", "--epoch-tail", "wrap")
    assert main(_args(setup, out, *extra)) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals] == [3, 6]
    for r in evals:
        draws = r["test_losses"]
        assert len(draws) == 3 and len(set(draws)) == 3  # the positions differ per draw
        assert r["test_loss"] == pytest.approx(sum(draws) / 3)
        assert r["test_loss"] != r["eval_loss"]
    saved = json.loads((out / "femlm_config.json").read_text())
    assert saved["eval_data"] == [str(held_out)] and saved["validation_fraction"] == 0


def test_holding_nothing_out_needs_an_evaluation_corpus(setup, tmp_path, capsys):
    assert main(_args(setup, tmp_path / "run", "--validation-fraction", "0")) == 2
    assert "give --eval-data" in capsys.readouterr().err
