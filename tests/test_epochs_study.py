"""Stage E's report: each budget pairs the right runs (by settings, across the stage-C
and stage-E grids), the rule of thumb reads the intervals as docs/protocol.md says,
and H is judged against its committed prediction on the same-rate pair."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from femlm.report.epochs import epochs_study, rule_of_thumb, study_json, study_lines
from femlm.report.runs import Run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BLOCKS = {"tapt": 978, "continual": 894}


def _config(name: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


def _run(seed: int, steps: int, test: float, blocks: int, start: str = "s") -> Run:
    run = Run(seed, [(steps, test + 0.1, 0.0)], None, train_blocks=blocks)
    run.tests = [(steps, test, [test - 0.001, test + 0.001])]
    run.start_weights = f"{start}{seed % 3}"
    return run


def _grids(setting: str, gain):
    """Both grids' configs, with every stage-C best and stage-E run finished on units
    3-5; fully-explored-epochs' test loss is standard's plus ``gain(epochs, unit)``."""
    c, e = _config(f"tuned-{setting}"), _config(f"tuned-epochs-{setting}")
    blocks = BLOCKS[setting]

    def loss(name: str, steps: int, unit: int) -> float:
        epochs = round(steps * 28 / blocks)
        base = 5.0 - 0.001 * epochs + 0.01 * unit
        return base + (gain(epochs, unit) if name.startswith("fe-epochs") else 0.0)

    c_runs = {}
    for name, values in c["runs"].items():
        if 3 in (values.get("seeds") or []):
            steps = c["base"]["max_steps"]
            c_runs[name] = [_run(u, steps, loss(name, steps, u), blocks) for u in (3, 4, 5)]
    e_runs = {}
    for name, values in e["runs"].items():
        steps = values["max_steps"]
        e_runs[name] = [_run(u, steps, loss(name, steps, u), blocks) for u in (3, 4, 5)]
    return c, c_runs, e, e_runs


def _noisy_gain(mean_by_epochs: dict[int, float]):
    return lambda epochs, unit: mean_by_epochs[epochs] + 0.002 * (unit - 4)


def test_tapt_pairs_every_budget_across_both_grids():
    gains = {1: 0.0, 5: -0.05, 10: -0.04, 20: -0.03, 40: -0.02, 80: -0.01}
    study = epochs_study(*_grids("tapt", _noisy_gain(gains)))
    assert study.fe == "fe-epochs-K2-constant-lr0.001"
    assert study.standard == "standard-r2-linear-lr0.001"
    assert study.same_rate == "standard-r2-constant-lr0.001"  # the bests sit in different cells
    assert [p.epochs for p in study.best] == [1, 5, 10, 20, 40, 80]
    assert [p.epochs for p in study.same] == [1, 5, 10, 20, 40, 80]
    for p in study.best + study.same:
        assert p.units == [3, 4, 5]
        assert p.verdict.diff == pytest.approx(gains[p.epochs], abs=1e-9)
    assert study.best[4].steps == 1397  # stage C's own runs at 40 epochs
    assert study.rule == "from about 5 epochs on (every budget from 5 up lies below 0)"


def test_rule_of_thumb_needs_every_longer_budget_below_zero():
    gains = {1: -0.05, 5: 0.01, 10: -0.04, 20: -0.03, 40: -0.02, 80: 0.0}
    study = epochs_study(*_grids("tapt", _noisy_gain(gains)))
    assert study.rule.startswith("not found")  # 80 epochs ties, so no budget qualifies
    gains[80] = -0.02
    study = epochs_study(*_grids("tapt", _noisy_gain(gains)))
    assert study.rule.startswith("from about 10 epochs")  # 5 epochs is above 0
    assert rule_of_thumb([], [3, 4, 5]).startswith("not yet")


def test_a_missing_unit_leaves_the_rule_unanswered():
    c, c_runs, e, e_runs = _grids("tapt", _noisy_gain(dict.fromkeys((1, 5, 10, 20, 40, 80), -0.05)))
    e_runs["fe-epochs-K2-constant-lr0.001-e80"].pop()  # unit 5 not finished at 80 epochs
    study = epochs_study(c, c_runs, e, e_runs)
    assert study.best[-1].units == [3, 4]
    assert study.rule == "not yet (budgets [80] lack units)"
    row = next(line for line in study_lines(study) if line.startswith("| 80 |"))
    assert row.endswith("| interim: no verdict |")


def test_h_is_rejected_only_where_the_interval_excludes_its_prediction():
    gains = {1: 0.0, 5: -0.05, 10: -0.04, 20: -0.03, 40: -0.02, 80: -0.01}
    prediction = {"predicted": [
        {"epochs": 1, "gain": 0.0}, {"epochs": 5, "gain": -0.05}, {"epochs": 10, "gain": -0.04},
        {"epochs": 20, "gain": -0.03}, {"epochs": 40, "gain": 0.05}, {"epochs": 80, "gain": -0.01},
    ]}  # fmt: skip
    study = epochs_study(*_grids("tapt", _noisy_gain(gains)), prediction)
    assert [p.h_rejected for p in study.same] == [False, False, False, False, True, False]
    assert all(p.predicted is None for p in study.best)  # H is judged at the same rate only
    text = "\n".join(study_lines(study))
    assert "**rejected**" in text and "Hypothesis H at the same rate" in text
    assert study_json(study)["same_rate"][4]["h_rejected"] is True


def test_continual_bests_share_a_cell_so_h_is_judged_on_them():
    gains = dict.fromkeys((1, 5, 10, 20, 40, 80), -0.03)
    study = epochs_study(*_grids("continual", _noisy_gain(gains)))
    assert study.standard == study.same_rate == "standard-r2-constant-lr0.001"
    assert [p.epochs for p in study.best] == [1, 5, 10, 20, 40, 80]
    assert [p.steps for p in study.best][4] == 1277


def test_starts_from_another_session_are_named():
    c, c_runs, e, e_runs = _grids("tapt", _noisy_gain(dict.fromkeys((1, 5, 10, 20, 40, 80), 0.0)))
    assert "began from one start" in epochs_study(c, c_runs, e, e_runs).starts
    e_runs["standard-r2-linear-lr0.001-e5"][1].start_weights = "other"  # unit 4
    assert "units [4]" in epochs_study(c, c_runs, e, e_runs).starts


def test_a_pair_whose_arms_began_from_different_starts_is_not_judged():
    """Stage C ran in an earlier session: its fe-epochs best at 40 epochs began from
    that session's starts, the same-rate standard run of stage E from this session's."""
    gains = dict.fromkeys((1, 5, 10, 20, 40, 80), -0.05)
    prediction = {"predicted": [{"epochs": e, "gain": 0.05} for e in (1, 5, 10, 20, 40, 80)]}
    c, c_runs, e, e_runs = _grids("tapt", _noisy_gain(gains))
    for run in c_runs["fe-epochs-K2-constant-lr0.001"] + c_runs["standard-r2-linear-lr0.001"]:
        run.start_weights = "earlier-" + run.start_weights
    study = epochs_study(c, c_runs, e, e_runs, prediction)
    forty = study.same[4]
    assert forty.epochs == 40 and forty.unpaired == [3, 4, 5] and forty.verdict is None
    assert forty.h_rejected is None  # H is rejected at the other budgets, not at this one
    assert [p.h_rejected for p in study.same] == [True, True, True, True, None, True]
    assert study.best[4].unpaired == [] and study.best[4].complete  # both from stage C
    row = next(
        line for line in study_lines(study) if line.startswith("| 40 |") and "judged" in line
    )
    assert "units [3, 4, 5]: arms from different starts" in row
    assert study_json(study)["same_rate"][4]["unpaired_units"] == [3, 4, 5]
    e_runs["standard-r2-linear-lr0.001-e5"][0].start_weights = "other"  # best against best
    assert epochs_study(c, c_runs, e, e_runs).rule.startswith("not judged (budgets [5]")
