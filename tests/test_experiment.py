"""The experiment runner (skip, resume) and report generation on tiny runs."""

import json
import random
import shutil

import pytest

from femlm.cli import main
from femlm.errors import FemlmError
from femlm.experiments.grid import load_experiment, run_config
from femlm.report.stats import compare, steps_to_reach

WORDS = "the a model token mask gradient sentence word view step data train loss noise".split()


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    rng = random.Random(0)
    corpus = root / "corpus.txt"
    corpus.write_text(
        "\n".join(
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) for _ in range(200)
        )
    )
    cfg = root / "exp.yaml"
    cfg.write_text(
        f"""
name: tiny
out_dir: {root / "runs"}
seeds: [0, 1]
tokenizer: {{data: ["{corpus}"], output: "{root / "tok"}", vocab_size: 100, min_frequency: 1}}
base:
  data: ["{corpus}"]
  cache_dir: "{root / "cache"}"
  max_length: 32
  max_steps: 4
  warmup_steps: 1
  eval_every: 2
  eval_sequences: 8
  save_every: 2
  variance_every: 2
  variance_sequences: 3
  threads: 1
  progress: false
runs:
  fully-explored: {{strategy: fully-explored, views: 2, batch_size: 2}}
  standard: {{strategy: random, views: 1, rate: 0.5, batch_size: 4}}
"""
    )
    assert main(["experiment", str(cfg)]) == 0
    return root, cfg


def test_grid_runs_every_variant_and_seed_and_writes_a_report(experiment):
    root, _ = experiment
    runs = root / "runs"
    for variant in ("fully-explored", "standard"):
        for seed in (0, 1):
            assert (runs / variant / f"seed-{seed}" / "final" / "model.safetensors").is_file()
    report = (runs / "report.md").read_text()
    for section in ("## Efficiency", "## Downstream", "## Claims", "Unigram baseline"):
        assert section in report
    assert "`standard`" in report, "the views-1 random variant is the baseline"
    assert (runs / "val_loss_vs_steps.png").stat().st_size > 1000
    assert (runs / "val_loss_vs_seconds.png").is_file()
    assert (runs / "variance_vs_steps.png").is_file() and "variance vs steps" in report


def test_finished_runs_are_skipped_and_interrupted_ones_resume(experiment, caplog):
    root, cfg = experiment
    run = root / "runs" / "standard" / "seed-1"
    before = (
        (root / "runs" / "fully-explored" / "seed-0" / "final" / "model.safetensors")
        .stat()
        .st_mtime
    )
    shutil.rmtree(run / "final")
    shutil.rmtree(run / "checkpoints" / "step-0000004")  # as if killed after step 2's checkpoint
    with caplog.at_level("INFO", logger="femlm"):
        assert main(["experiment", str(cfg), "--no-report"]) == 0
    assert "finished earlier, skipped" in caplog.text
    assert "resuming from step-0000002" in caplog.text
    assert (run / "final" / "model.safetensors").is_file()
    after = (
        (root / "runs" / "fully-explored" / "seed-0" / "final" / "model.safetensors")
        .stat()
        .st_mtime
    )
    assert before == after
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps.count(4) >= 1 and steps == sorted(steps)


def test_variants_option_runs_only_those(experiment, tmp_path, caplog):
    _, cfg = experiment
    out = tmp_path / "split"
    with caplog.at_level("INFO", logger="femlm"):
        assert main(["experiment", str(cfg), "--out-dir", str(out), "--variants", "standard",
                     "--no-report"]) == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["standard"]
    assert "[2/2] standard seed 1" in caplog.text
    assert main(["experiment", str(cfg), "--variants", "nope"]) == 2


def test_report_command_and_errors(experiment, tmp_path, capsys):
    root, _ = experiment
    assert main(["report", str(root / "runs"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").is_file()
    assert "fully-explored" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_bad_experiment_files(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("runs: {a: {strategy: random, learning_rate: 1}}\n")
    with pytest.raises(FemlmError, match="learning_rate"):
        load_experiment(f)
    f.write_text("name: x\nrunz: {}\n")
    with pytest.raises(FemlmError, match="runz"):
        load_experiment(f)


def test_steps_to_reach_interpolates_and_compare_needs_a_clear_gap():
    evals = [(10, 5.0, 0), (20, 4.0, 0), (30, 3.0, 0)]
    assert steps_to_reach(evals, 3.5) == pytest.approx(25.0)
    assert steps_to_reach(evals, 2.0) is None
    assert steps_to_reach(evals, 6.0) == 10.0
    assert compare({0: 1.0, 1: 1.01, 2: 0.99}, {0: 2.0, 1: 2.01, 2: 1.99}) == "lower"
    # seeds not shared: Welch sees the 1-nat spread
    assert compare({0: 1.0, 1: 2.0, 2: 3.0}, {5: 1.5, 6: 2.5, 7: 3.5}) == "tie"
    # the same values paired by seed: 0.5 lower in every seed
    assert compare({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.5, 1: 2.5, 2: 3.5}) == "lower"
    assert compare({0: 1.0}, {0: 2.0}) == "tie", "one seed proves nothing"


def test_every_shipped_config_is_valid(monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("MINILM_DIR", "/some/minilm")
    configs = sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.yaml"))
    assert {c.stem for c in configs} >= {"scratch", "continual", "ablation", "adaptive"}
    from femlm.masking.strategies import ACROSS_EPOCHS, FULLY_EXPLORED
    from femlm.report.tuning import arm_of

    for path in configs:
        exp = load_experiment(path)
        found = {arm_of(run_config(exp, v, exp.seeds[0]).masking) for v in exp.runs}
        if not found & {*FULLY_EXPLORED, *ACROSS_EPOCHS}:
            continue  # a sweep of settings or models, or warm starts: no masking claim
        assert "standard" in found, f"{path.name}: a masking claim needs standard masking"
        most = max(len(exp.run_seeds.get(v, exp.seeds)) for v in exp.runs)
        stages = bool(exp.tuning)  # a staged grid: the verdict seeds are added later
        assert most >= 3 or stages, f"{path.name}: claims need at least 3 seeds"


def _estimates(fe: float, config: dict | None = None):
    """A variance result whose step variances are FE's ``fe`` and one random view's 1.0,
    each +- 0.1."""
    from femlm.variance.results import Comparison, Estimate, VarianceResult

    def e(v: float) -> Estimate:
        return Estimate(v, v - 0.1, v + 0.1)

    c = Comparison("fully-explored", "random", 1 / 7, *map(e, (1.0, 30.0, fe, 1.0, fe, 1.0)))
    return VarianceResult(7, 4, [], [c], config=config or {})


def _seed_runs(loss: float, variance=None) -> list:
    """Three seeds ending at ``loss`` + 0.00/0.01/0.02 (``variance`` on each)."""
    from femlm.report.runs import Run

    return [Run(s, [(10, loss + s / 100, 0.0)], None, variance=variance) for s in range(3)]


def test_ranking_check_reads_the_variance_estimates(tmp_path):
    from femlm.report.variance import ranking_check

    (tmp_path / "experiment.json").write_text(
        json.dumps({"runs": {"fe": {"strategy": "fully-explored"}, "std": {"strategy": "random"}}})
    )
    variants = {"fe": _seed_runs(5.0, _estimates(2.0)), "std": _seed_runs(4.0)}
    text = "\n".join(ranking_check(tmp_path, variants))
    assert (
        "Lowest step variance first: std, fe; lowest final loss first: std, fe: the same order"
        in text
    )
    assert "not settled" not in text


def test_ranking_check_reads_a_strategy_set_in_base(tmp_path):
    from femlm.report.variance import ranking_check

    # standard masking given once in base, FE overriding it: both get a prediction
    config = {
        "base": {"strategy": "random", "views": 1},
        "runs": {"fe": {"strategy": "fully-explored", "views": 7}, "std": {}},
    }
    (tmp_path / "experiment.json").write_text(json.dumps(config))
    variants = {"fe": _seed_runs(4.0, _estimates(0.5)), "std": _seed_runs(5.0)}
    text = "\n".join(ranking_check(tmp_path, variants))
    assert "| std | 1.000 [0.900, 1.100] |" in text  # standard's estimate, not FE's
    assert "Lowest step variance first: fe, std; lowest final loss first: fe, std" in text


def test_ranking_check_keeps_replacement_policies_apart(tmp_path):
    from femlm.report.variance import ranking_check

    allmask = {"mask_prob": 1.0, "random_prob": 0.0}
    runs = {
        "fe": {"strategy": "fully-explored"},
        "std": {"strategy": "random"},
        "fe-am": {"strategy": "fully-explored", **allmask},
        "std-am": {"strategy": "random", **allmask},
    }
    (tmp_path / "experiment.json").write_text(json.dumps({"runs": runs}))
    variants = {
        # 80/10/10 probe: FE's step variance above standard's, FE's loss too
        "fe": _seed_runs(5.0, _estimates(2.0, {})),
        "std": _seed_runs(4.0),
        # all-[MASK] probe: FE's step variance below, FE's loss too
        "fe-am": _seed_runs(3.0, _estimates(0.5, allmask)),
        "std-am": _seed_runs(3.5),
    }
    text = "\n".join(ranking_check(tmp_path, variants))
    default, masked = text.split("Variants trained with 100% `[MASK]`, 0% random")
    assert "Variants trained with 80% `[MASK]`, 10% random" in default
    assert "lowest final loss first: std, fe: the same order" in default
    assert "lowest final loss first: fe-am, std-am: the same order" in masked
    assert "| fe-am |" not in default and "| fe |" not in masked


def test_ranking_check_ranks_only_variants_trained_as_the_probed_one(tmp_path):
    """A probe of K = 7 at rate 1/7 predicts nothing for standard masking at 0.25 or
    for a run with another step budget."""
    from femlm.report.variance import ranking_check

    runs = {
        "fe": {"strategy": "fully-explored", "rate": 0.15, "batch_size": 4},
        "std": {"strategy": "random", "rate": 0.15, "batch_size": 28},
        "std-r4": {"strategy": "random", "rate": 0.25, "batch_size": 28},
        "std-short": {"strategy": "random", "rate": 0.15, "batch_size": 28, "max_steps": 34},
    }
    (tmp_path / "experiment.json").write_text(json.dumps({"runs": runs}))
    variants = {
        "fe": _seed_runs(5.0, _estimates(2.0)),
        "std": _seed_runs(4.0),
        "std-r4": _seed_runs(3.0),
        "std-short": _seed_runs(6.0),
    }
    text = "\n".join(ranking_check(tmp_path, variants))
    assert "lowest final loss first: std, fe: the same order" in text
    assert "std-r4" not in text and "std-short" not in text


def test_variant_seeds_and_the_seeds_option_pick_the_grid(experiment, tmp_path, caplog):
    _, cfg = experiment
    text = cfg.read_text().replace(
        "runs:\n", "runs:\n  added: {strategy: random, views: 2, batch_size: 2, seeds: [1]}\n"
    )
    (tmp_path / "more.yaml").write_text(text)
    exp = load_experiment(tmp_path / "more.yaml")
    assert exp.run_seeds == {"added": [1]} and "seeds" not in exp.runs["added"]
    out = tmp_path / "more"
    with caplog.at_level("INFO", logger="femlm"):
        assert main(["experiment", str(tmp_path / "more.yaml"), "--out-dir", str(out),
                     "--seeds", "1", "--no-report"]) == 0  # fmt: skip
    made = sorted(str(p.relative_to(out)) for p in out.glob("*/seed-*"))
    assert made == ["added/seed-1", "fully-explored/seed-1", "standard/seed-1"]
    assert "[3/3]" in caplog.text
    assert main(["experiment", str(tmp_path / "more.yaml"), "--seeds", "7"]) == 2


def test_variance_probe_uses_the_runs_replacement_policy(tmp_path, monkeypatch):
    import femlm.variance.analyser
    from femlm.experiments.grid import Experiment, _variance_once

    seen = []
    monkeypatch.setattr(
        femlm.variance.analyser, "run_variance", lambda cfg: seen.append(cfg) or _estimates(1.0)
    )
    folder = tmp_path / "fe-allmask" / "seed-0"
    folder.mkdir(parents=True)
    trained = {"data": ["c.txt"], "max_length": 32, "mask_prob": 1.0, "random_prob": 0.0}
    trained |= {"validation_fraction": 0.1, "threads": 1, "progress": False}
    (folder / "femlm_config.json").write_text(json.dumps(trained))
    exp = Experiment("x", tmp_path, [0], {}, {"fe-allmask": {}}, variance={"sequences": 3})
    _variance_once(exp, folder)
    assert (seen[0].mask_prob, seen[0].random_prob, seen[0].data) == (1.0, 0.0, ["c.txt"])
    assert seen[0].validation_fraction == 0.1  # the run's split, not the default 0.02
    assert (seen[0].threads, seen[0].progress) == (1, False)  # as the run trained
    exp.variance = {"sequences": 3, "mask_prob": 0.8, "random_prob": 0.1}
    (folder / "variance.json").unlink()
    _variance_once(exp, folder)
    assert (seen[1].mask_prob, seen[1].random_prob) == (0.8, 0.1), "the spec overrides the run"


def _start_weights(run) -> str:
    first = (run / "metrics.jsonl").read_text().splitlines()[0]
    return json.loads(first)["start_weights"]


def test_each_run_records_the_fingerprint_of_the_weights_it_started_from(experiment):
    runs = experiment[0] / "runs"
    one_seed = {_start_weights(runs / v / "seed-0") for v in ("fully-explored", "standard")}
    assert len(one_seed) == 1, "a seed initialises the model the same way in every variant"
    assert _start_weights(runs / "standard" / "seed-1") not in one_seed
    assert len(one_seed.pop()) == 16


def test_a_carried_grid_goes_on_on_a_new_machine_without_its_weights(
    experiment, tmp_path, caplog, capsys
):
    root, cfg = experiment
    carried, first, second = tmp_path / "carried", tmp_path / "first", tmp_path / "second"
    args = ["experiment", str(cfg), "--no-report", "--carry", str(carried)]
    assert main([*args, "--out-dir", str(first), "--variants", "standard"]) == 0
    published = sorted(str(p.relative_to(carried)) for p in carried.glob("*/seed-*"))
    assert published == ["standard/seed-0", "standard/seed-1"]
    assert not list(carried.rglob("*.safetensors")) and (carried / "experiment.json").is_file()
    assert json.loads(
        (carried / "standard" / "seed-0" / "metrics.jsonl").read_text().splitlines()[-1]
    )
    with caplog.at_level("INFO", logger="femlm"):  # another machine: an empty runs folder
        assert main([*args, "--out-dir", str(second)]) == 0
    assert "restored 2 finished runs" in caplog.text
    assert caplog.text.count("finished earlier, skipped") == 2
    assert (second / "fully-explored" / "seed-1" / "final" / "model.safetensors").is_file()
    assert (carried / "fully-explored" / "seed-1" / "final").is_dir()
    later = tmp_path / "later.yaml"  # a section added later needs a carried run's weights
    later.write_text(cfg.read_text() + "variance: {variants: [standard], sequences: 3, draws: 2}\n")
    third = ["experiment", str(later), "--no-report", "--carry", str(carried)]
    assert main([*third, "--out-dir", str(tmp_path / "third")]) == 2
    assert "restored from a carried grid without its weights" in capsys.readouterr().err


def test_publishing_carries_the_references_beside_the_runs(tmp_path):
    from femlm.experiments.carry import publish_runs

    src = tmp_path / "runs"
    src.mkdir()
    kept = ["random-init-finetune-movies.json", "start-seed2-finetune-movies.json"]
    kept += ["probe-start-seed0-debian.json", "start-fingerprints.json"]
    for name in [*kept, "notes.json"]:
        (src / name).write_text("{}")
    assert publish_runs(src, tmp_path / "carried") == 4
    assert sorted(p.name for p in (tmp_path / "carried").iterdir()) == sorted(kept)


def test_processes_sharing_a_grid_skip_the_runs_another_one_holds(experiment, tmp_path, caplog):
    import subprocess
    import sys

    _, cfg = experiment
    out = tmp_path / "shared"
    held = out / "standard" / "seed-0"
    held.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR"
         " | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)",
         str(held / ".lock")], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        args = ["experiment", str(cfg), "--out-dir", str(out), "--no-report"]
        assert main(args) == 2, "without --share a busy run stops the grid"
        with caplog.at_level("INFO", logger="femlm"):
            assert main([*args, "--share"]) == 0
        assert "in use by another process, skipped" in caplog.text
        assert not (held / "final").exists()
        assert (out / "standard" / "seed-1" / "final").is_dir()
    finally:
        holder.kill()
        holder.wait()


def test_processes_option_splits_the_grid_and_writes_one_report(experiment, tmp_path, capsys):
    _, cfg = experiment
    out = tmp_path / "two"
    assert main(["experiment", str(cfg), "--out-dir", str(out), "--processes", "2"]) == 0
    for variant in ("fully-explored", "standard"):
        for seed in (0, 1):
            assert (out / variant / f"seed-{seed}" / "final" / "model.safetensors").is_file()
    assert (out / "report.md").is_file() and "report:" in capsys.readouterr().out
