"""The shipped experiment configs: each parses, every run in it validates, and
its header says what it needs and how long it takes."""

from pathlib import Path

import pytest

from femlm.experiments.grid import load_experiment, seeds_of

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
SWEEPS = {"calibrate"}  # one seed per setting by design: it picks settings, it claims nothing


def test_there_are_configs():
    assert {"scratch", "continual", "ablation", "adaptive"} <= {c.stem for c in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_states_needs_and_time_and_has_three_seeds(path):
    exp = load_experiment(path)  # raises on an unknown key or a bad run config
    header = "".join(line for line in path.read_text().splitlines(True) if line.startswith("#"))
    assert "Needs:" in header and "Time" in header, f"{path.name}: say what it needs and takes"
    if exp.tuning:  # a staged grid: selection stages run fewer seeds, the verdict 5+
        assert len(exp.tuning["verdict_seeds"]) >= 5, f"{path.name}: a headline needs 5 seeds"
    elif path.stem not in SWEEPS:
        few = {v: seeds_of(exp, v) for v in exp.runs if len(seeds_of(exp, v)) < 3}
        assert not few, f"{path.name}: comparisons need >= 3 seeds, not {few}"
