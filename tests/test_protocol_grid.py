"""docs/protocol.md's stages as scripts/protocol_grid.py writes them: each stage's
runs follow from the carried dev losses by the protocol's rules, never from test
losses, and every file it writes is a valid experiment."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from femlm.experiments.spec import check_spec

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "protocol_grid.py"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPT.parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def pg(tmp_path, monkeypatch):
    module = _module("protocol_grid")
    monkeypatch.setattr(module, "ROOT", tmp_path)
    return module


def _carry(root: Path, dev, seeds) -> None:
    """A carried stage: every stage-A cell finished on ``seeds`` with dev loss
    ``dev(name, seed)`` and a test loss that always points the other way."""
    for name in dev_names(root):
        for seed in seeds:
            folder = root / name / f"seed-{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            d = dev(name, seed)
            row = {"step": 1397, "eval_loss": d, "test_loss": 20 - d, "test_losses": [20 - d] * 2}
            (folder / "metrics.jsonl").write_text(json.dumps(row) + "\n")
            (folder / "final").mkdir(exist_ok=True)


def dev_names(root: Path) -> list[str]:
    return list(json.loads((root / "names.json").read_text()))


def _dev(name: str, seed: int) -> float:
    """Lower with lr for standard, lowest at 5e-4 for fe-epochs; rate 1/4 and the
    linear schedule best in both arms."""
    loss = 5.0 + (0.0 if "r4" in name or "K4" in name else 0.1)
    loss += 0.0 if "linear" in name else 0.05
    if name.startswith("standard"):
        loss -= {"0.00025": 0.0, "0.0005": 0.01, "0.001": 0.02}[name.rsplit("lr", 1)[1]]
    else:
        loss += {"0.00025": 0.02, "0.0005": 0.0, "0.001": 0.02}[name.rsplit("lr", 1)[1]]
    return loss + 0.001 * seed


def test_stage_a_is_the_full_grid_at_unit_0(pg):
    spec = pg.grid("tapt", "A")
    check_spec(spec, "stage A")
    assert len(spec["runs"]) == 48
    assert all(v["seeds"] == [0] for v in spec["runs"].values())
    assert spec["base"]["epoch_tail"] == "wrap" and spec["base"]["max_steps"] == 1397
    assert "probe" not in spec and "finetune" not in spec


def test_stage_b_and_c_follow_dev_losses_and_c_carries_stage_f(pg, tmp_path):
    folder = tmp_path / "docs" / "results" / "tuned-tapt"
    folder.mkdir(parents=True)
    (folder / "names.json").write_text(json.dumps(list(pg.stage_a())))
    with pytest.raises(SystemExit, match="stage A is not finished"):
        pg.grid("tapt", "B")
    _carry(folder, _dev, [0])
    b = pg.grid("tapt", "B")
    chosen = sorted(n for n, v in b["runs"].items() if v["seeds"] == [0, 1, 2])
    assert len(chosen) == 16  # one lr per (arm, rate, schedule)
    assert "standard-r4-linear-lr0.001" in chosen and "fe-epochs-K4-linear-lr0.0005" in chosen
    assert "probe" not in b
    with pytest.raises(SystemExit, match="stage B is not finished"):
        pg.grid("tapt", "C")
    _carry(folder, _dev, [1, 2])
    c = pg.grid("tapt", "C")
    check_spec(c, "stage C")
    bests = sorted(n for n, v in c["runs"].items() if 3 in v["seeds"])
    assert bests == ["fe-epochs-K4-linear-lr0.0005", "standard-r4-linear-lr0.001"]
    assert c["runs"][bests[0]]["seeds"] == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert sorted(c["probe"]["variants"]) == bests and c["probe"]["pretrain_seeds"] == pg.VERDICT
    assert c["finetune"]["pretrain_seeds"] == [3, 4, 5] and c["finetune"]["tasks"] == ["movies"]
    assert c["finetune"]["lrs"] == [0.0003, 0.001, 0.003]


def test_stage_e_adds_standard_at_fe_epochs_best_cell_stage_d_the_converse_and_g_fits_dev(
    pg, tmp_path
):
    import yaml

    from femlm.report.runs import load_runs

    folder = tmp_path / "docs" / "results" / "tuned-tapt"
    folder.mkdir(parents=True)
    (folder / "names.json").write_text(json.dumps(list(pg.stage_a())))
    rate_penalty = {"r7": 0.3, "K7": 0.0, "r4": 0.0, "K4": 0.1, "r3": 0.2, "K3": 0.2}

    def dev(name, seed):  # standard best at 1/4, fe-epochs best at 1/7: cells differ
        tag = name.split("-")[2 if name.startswith("fe") else 1]
        return _dev(name, seed) + rate_penalty.get(tag, 0.4)

    _carry(folder, dev, [0, 1, 2])
    c = pg.grid("tapt", "C")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tuned-tapt.yaml").write_text(yaml.safe_dump(c, sort_keys=False))
    e = pg.epochs_study("tapt")
    check_spec(e, "stage E")
    assert "standard-r7-linear-lr0.001-e40" in e["runs"]  # the same-rate arm needs its 40
    assert "fe-epochs-K7-linear-lr0.0005-e40" not in e["runs"]  # stage C's runs are that
    assert e["runs"]["fe-epochs-K7-linear-lr0.0005-e1"]["max_steps"] == 35
    assert len(e["runs"]) == 5 + 5 + 6

    d = pg.mini()  # stage D: the bests, and fe-epochs at standard's best cell, labelled
    check_spec(d, "stage D")
    assert set(d["runs"]) == {
        "standard-r4-linear-lr0.001", "fe-epochs-K7-linear-lr0.0005",
        "exploratory-fe-epochs-K4-linear-lr0.0005",
    }  # fmt: skip

    result = _module("prediction").predict(c, load_runs(folder))
    assert result["best"] == "fe-epochs-K7-linear-lr0.0005" and result["K"] == 7
    gains = {round(row["rate"], 3): round(row["gain"], 6) for row in result["stage_b"]}
    assert gains == {0.143: -0.28, 0.25: 0.12, 0.333: 0.02, 0.5: 0.02}  # linear cells, dev
    predicted = {row["epochs"]: row["gain"] for row in result["predicted"]}
    assert predicted[1] == predicted[5] == 0.0  # below one cycle of K = 7
    assert predicted[10] / predicted[40] == pytest.approx(2.0)  # c s(r, E) halves as E x4


def test_stage_d_starts_are_judged_on_their_last_hidden_token_evaluation(tmp_path):
    standing = _module("mini_starts").standing
    metrics = tmp_path / "metrics.jsonl"
    rows = [
        {"step": 0, "unigram_loss": 7.1},
        {"step": 1000, "eval_loss": 6.0},
        {"step": 2000, "eval_loss": 6.15},  # the last evaluation counts, not the best
    ]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    now = standing(metrics)
    assert now["steps"] == 2000 and now["below_unigram"] == pytest.approx(0.95)
    assert not now["reached"]
    metrics.write_text(metrics.read_text() + json.dumps({"step": 3000, "eval_loss": 6.1}) + "\n")
    assert standing(metrics)["reached"]
