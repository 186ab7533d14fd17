"""Tuned against tuned: each arm's best is chosen on dev over the selection seeds, and
only the test losses of the verdict seeds judge best against best."""

from __future__ import annotations

import json

from femlm.report.runs import Run, load_runs
from femlm.report.tuning import (
    arms,
    choose,
    configured_bests,
    configured_cell,
    starts_note,
    tuned_section,
)

RUNS = {
    "std-r7-lr1": {"strategy": "random", "views": 1, "rate": 0.142857, "lr": 0.001},
    "std-r7-lr5": {"strategy": "random", "views": 1, "rate": 0.142857, "lr": 0.0005},
    "fe-K7-lr1": {"strategy": "fully-explored-epochs", "views": 7, "lr": 0.001},
    "fe-K7-lr5": {"strategy": "fully-explored-epochs", "views": 7, "lr": 0.0005},
}


def _grid(root, losses):
    """losses: {variant: {seed: (dev, test)}}"""
    root.mkdir(parents=True)
    spec = {"base": {"schedule": "constant"}, "runs": RUNS, "starts": ["a", "b", "c"]}
    spec["tuning"] = {"select_seeds": [0, 1, 2], "verdict_seeds": [3, 4, 5]}
    (root / "experiment.json").write_text(json.dumps(spec))
    for variant, by_seed in losses.items():
        for seed, (dev, test) in by_seed.items():
            folder = root / variant / f"seed-{seed}"
            folder.mkdir(parents=True)
            rows = [
                {
                    "step": 10,
                    "eval_loss": dev,
                    "test_loss": test,
                    "test_losses": [test - 0.01, test + 0.01],
                }
            ]
            (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            (folder / "final").mkdir()
    return spec


def test_the_best_is_chosen_on_dev_and_judged_on_the_verdict_seeds_test(tmp_path):
    # fe's lr5 is best on dev but worst on test: the choice must not look at test
    losses = {
        "std-r7-lr1": {s: (5.0, 5.1) for s in range(6)},
        "std-r7-lr5": {s: (5.1, 5.0) for s in range(3)},
        "fe-K7-lr1": {s: (4.95, 4.9) for s in range(3)},
        "fe-K7-lr5": {s: (4.90 + 0.001 * s, 5.3) for s in range(6)},
    }
    spec = _grid(tmp_path / "g", losses)
    variants = load_runs(tmp_path / "g")
    groups = arms(spec, RUNS)
    assert groups == {
        "standard": ["std-r7-lr1", "std-r7-lr5"],
        "fully-explored-epochs": ["fe-K7-lr1", "fe-K7-lr5"],
    }
    assert choose(groups["fully-explored-epochs"], variants, [0, 1, 2]) == "fe-K7-lr5"
    assert choose(groups["standard"], variants, [0, 1, 2]) == "std-r7-lr1"
    assert choose(groups["standard"], variants, [0, 5]) == "std-r7-lr1"  # lr5 lacks seed 5
    text = "\n".join(tuned_section(spec, variants))
    assert "fully-explored-epochs best minus standard best, test loss: +0.2000" in text
    assert "worse" in text.split("best minus standard best")[1].split("\n")[0]
    assert "draw 1: +0.2000, draw 2: +0.2000" in text
    # the cell table's dev loss is what the choice saw: seeds 0-2, not the verdict seeds
    assert "| fe-K7-lr5 | 0.1429 | constant | 0.0005 | 6 | 4.9010 | 5.3000 |" in text
    assert "start 0: +0.2000 (n=1)" in text
    assert "| 0.143 | constant | fully-explored-epochs |" in text
    # each best sits at an end of the two-value lr grid, and the report says so
    assert "standard's lr 0.001 is the largest the grid tried" in text
    assert "fully-explored-epochs's lr 0.0005 is the smallest the grid tried" in text
    assert "rate" not in text.split("Grid edges:")[1].split("\n")[0]  # one rate: no edge


def _run(seed: int, start: str | None) -> Run:
    run = Run(seed, [(10, 5.0, 1.0)], None)
    run.start_weights = start
    return run


def test_pairs_whose_starts_were_pre_trained_again_elsewhere_are_named():
    same = [[_run(0, "aa"), _run(1, "bb")], [_run(0, "aa"), _run(1, "bb")]]
    assert "every seed's runs began from bit-identical weights" in starts_note(same)
    mixed = [[_run(0, "aa"), _run(1, "bb")], [_run(0, "aa"), _run(1, "cc")], [_run(2, None)]]
    note = starts_note(mixed)
    assert "seeds 1 (2 different weights)" in note and "seeds 0" not in note
    assert "1 runs recorded no fingerprint" in note


def test_the_references_say_whether_they_were_measured_on_the_runs_own_starts(tmp_path):
    from femlm.report.tuning import references_note

    config = {"starts": ["s0", "s1"]}
    variants = {"a": [_run(0, "aa"), _run(1, "bb"), _run(2, "aa")], "b": [_run(3, "bb")]}
    path = tmp_path / "start-fingerprints.json"
    path.write_text(json.dumps({"s0": "aa", "s1": "bb"}))
    assert "measured on the runs' own starts" in references_note(config, variants, path)
    path.write_text(json.dumps({"s0": "aa", "s1": "zz"}))
    note = references_note(config, variants, path)
    assert "start 1 (zz against the runs' ['bb'])" in note and "start 0" not in note
    # only the verdict units are read beside the references: selection units from an
    # earlier session's starts do not make them "elsewhere"
    config["tuning"] = {"verdict_seeds": [2, 3]}
    variants["a"] += [_run(4, "old"), _run(5, "old")]
    path.write_text(json.dumps({"s0": "aa", "s1": "bb"}))
    assert "measured on the runs' own starts" in references_note(config, variants, path)


def test_a_written_grid_records_each_arms_best_and_each_cells_lr_in_its_seeds():
    runs = {n: dict(v) for n, v in RUNS.items()}
    runs["std-r7-lr1"]["seeds"] = [0]  # stage A only
    runs["std-r7-lr5"]["seeds"] = [0, 1, 2, 3, 4, 5]  # chosen in B, best in C
    runs["fe-K7-lr1"]["seeds"] = [0, 1, 2]  # chosen in B, not the best
    runs["fe-K7-lr5"]["seeds"] = [0]
    spec = {"base": {"schedule": "constant"}, "runs": runs}
    spec["tuning"] = {"select_seeds": [0, 1, 2], "verdict_seeds": [3, 4, 5]}
    assert configured_bests(spec) == {"standard": "std-r7-lr5"}
    assert configured_cell(spec, "fully-explored-epochs", (0.143, "constant")) == "fe-K7-lr1"
    assert configured_cell(spec, "standard", (0.143, "constant")) == "std-r7-lr5"
    assert configured_cell(spec, "standard", (0.143, "linear")) is None


def _probe(path, scores, task="movies"):
    runs = [
        {"seed": i, "l2": 0.01, "dev_accuracy": f, "dev_macro_f1": f, "test_accuracy": f,
         "test_macro_f1": f, "collapsed": False, "seconds": 1.0}
        for i, f in enumerate(scores)
    ]  # fmt: skip
    data = {"kind": "linear-probe", "task": task, "model": "m", "labels": ["a", "b"],
            "split": "given", "splits": {}, "metric": "macro_f1", "runs": runs}  # fmt: skip
    path.write_text(json.dumps(data))


def _finetune(path, scores, task="movies"):
    runs = [
        {"seed": i, "best_epoch": 1, "epochs_run": 2, "dev_accuracy": f, "dev_macro_f1": f,
         "test_accuracy": f, "test_macro_f1": f, "seconds": 1.0, "collapsed": False}
        for i, f in enumerate(scores)
    ]  # fmt: skip
    data = {"task": task, "model": "m", "labels": ["a", "b"], "split": "given", "splits": {},
            "metric": "macro_f1", "lr": 0.001, "lr_search": [], "runs": runs}  # fmt: skip
    path.write_text(json.dumps(data))


def test_downstream_is_judged_best_against_best_per_unit_and_against_the_references(tmp_path):
    losses = {
        "std-r7-lr1": {s: (5.0, 5.1) for s in range(6)},
        "fe-K7-lr5": {s: (4.9, 5.0) for s in range(6)},
    }
    spec = _grid(tmp_path / "g", losses)
    root = tmp_path / "g"
    for unit, noise in zip((3, 4, 5), (0.0, 0.001, -0.001), strict=True):
        _probe(root / "std-r7-lr1" / f"seed-{unit}" / "probe-movies.json", [0.60 + noise])
        _probe(root / "fe-K7-lr5" / f"seed-{unit}" / "probe-movies.json", [0.62 + 2 * noise])
        # fine-tuning seeds are averaged within a unit before pairing: +0.01 per unit
        _finetune(root / "std-r7-lr1" / f"seed-{unit}" / "finetune-movies.json", [0.70, 0.72])
        _finetune(root / "fe-K7-lr5" / f"seed-{unit}" / "finetune-movies.json",
                  [0.70 + noise, 0.74 - noise])  # fmt: skip
    for start in range(3):
        _probe(root / f"probe-start-seed{start}-movies.json", [0.61])
    _probe(root / "probe-random-init-movies.json", [0.50, 0.52, 0.51])
    text = "\n".join(tuned_section(spec, load_runs(root), root))
    probe = next(line for line in text.splitlines() if line.startswith("| linear probe | movies"))
    assert "+0.0200 ±" in probe and probe.endswith("| higher (better) |")
    tuned = next(line for line in text.splitlines() if line.startswith("| fine-tuning"))
    assert "+0.0100 ±" in tuned and tuned.endswith("| higher (better) |")
    fe_ref = next(
        line
        for line in text.splitlines()
        if line.startswith("| linear probe | movies | fully-explored-epochs `")
    )
    assert "+0.0100 ±" in fe_ref  # 0.62 against its start's 0.61, paired by unit
    assert "+0.1100 ±" in fe_ref and "Welch" in fe_ref  # against the untrained preset's 0.51


def test_no_verdict_is_given_before_every_verdict_unit_has_run(tmp_path):
    # stage C half run: two of the three verdict seeds, both lower for fe
    losses = {
        "std-r7-lr1": {s: (5.0, 5.1 + 0.001 * s) for s in range(5)},
        "fe-K7-lr5": {s: (4.9, 5.0) for s in range(5)},
    }
    spec = _grid(tmp_path / "g", losses)
    spec["probe"] = {"pretrain_seeds": [3, 4, 5]}
    root = tmp_path / "g"
    for unit in (3, 4):
        _probe(root / "std-r7-lr1" / f"seed-{unit}" / "probe-movies.json", [0.60 + unit / 1000])
        _probe(root / "fe-K7-lr5" / f"seed-{unit}" / "probe-movies.json", [0.62])
    text = "\n".join(tuned_section(spec, load_runs(root), root))
    assert "best minus standard best" not in text  # the verdict's own line is withheld
    assert "verdict seeds not finished (2 of 3): interim -0.1035 ±" in text
    assert "no verdict until all have run" in text
    probe = next(line for line in text.splitlines() if line.startswith("| linear probe | movies"))
    assert probe.endswith("| interim (2 of 3 units): no verdict |")
