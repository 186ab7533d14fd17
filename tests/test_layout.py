"""The package's shape: dependencies point one way, rules have one home, and the
command line is derived from the typed configs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from femlm.cli import main
from femlm.config import TrainConfig
from femlm.errors import FemlmError
from femlm.schema import load_config
from femlm.variance.config import VarianceConfig

ROOT = Path(__file__).parent.parent / "femlm"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """femlm modules that ``path`` imports, at the top or inside functions alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n in modules}
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(files)
    return {name: _imports(path, modules) - {name} for name, path in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_walker_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_femlm_has_no_import_cycles():
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_strategy_rules_import_no_torch():
    graph = _graph()
    seen, todo = set(), ["femlm.masking.strategies", "femlm.config", "femlm.report.writer"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += graph.get(name, ())
    heavy = {
        n for n in seen if n.startswith(("femlm.masking.samplers", "femlm.train", "femlm.model"))
    }
    assert not heavy, f"torch-free modules reach {heavy}"


def test_modules_stay_small():
    big = {p.name: n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 420}
    assert not big, big


def test_settings_load_flat_or_in_their_groups(tmp_path):
    flat = tmp_path / "flat.yaml"
    flat.write_text("lr: 0.002\nstrategy: random\neval_every: 7\n")
    grouped = tmp_path / "grouped.yaml"
    grouped.write_text(
        "optimisation: {lr: 0.002}\nmasking: {strategy: random}\nevaluation: {eval_every: 7}\n"
    )
    assert load_config(TrainConfig, str(flat)) == load_config(TrainConfig, str(grouped))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("masking: {lr: 0.002}\n")
    with pytest.raises(FemlmError, match="'lr' in section 'masking'"):
        load_config(TrainConfig, str(wrong))


def test_variance_shares_the_input_and_replacement_settings():
    shared = {"data", "text_field", "tokenizer", "model", "max_length", "cache_dir"}
    shared |= {"validation_fraction", "mask_prob", "random_prob"}
    assert shared <= set(VarianceConfig.__dataclass_fields__)
    assert VarianceConfig().text_field == TrainConfig().text_field


def test_every_subcommand_takes_its_defaults_from_its_options(capsys):
    from femlm.data.tokenizer import DEFAULT_VOCAB_SIZE

    with pytest.raises(SystemExit):
        main(["tokenizer", "train", "--help"])
    assert f"(default: {DEFAULT_VOCAB_SIZE})" in capsys.readouterr().out.replace("\n", " ")


def test_only_bad_input_becomes_a_one_line_error(monkeypatch, capsys):
    import femlm.masking.show as show

    def bug(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(show, "render_views", bug)
    with pytest.raises(ValueError, match="an internal bug"):  # the traceback is kept
        main(["mask", "some text"])
    monkeypatch.undo()
    assert main(["mask", "some text", "--rate", "1.5"]) == 2
    assert capsys.readouterr().err.startswith("femlm: error: rate must be in (0, 1)")


def test_every_strategy_is_one_registry_entry_with_a_sampler_and_a_stable_key():
    from femlm.masking import samplers
    from femlm.masking.strategies import REGISTRY, STRATEGIES

    assert set(samplers.SAMPLERS) == set(REGISTRY) and tuple(REGISTRY) == STRATEGIES
    # The keys are part of every recorded variance probe: they never change or repeat.
    keys = {name: s.key for name, s in REGISTRY.items()}
    assert {k: keys[k] for k in list(keys)[:8]} == {
        "random": 0, "random-bernoulli": 1, "whole-word": 2, "span": 3, "fully-explored": 4,
        "fully-explored-contiguous": 5, "fully-explored-span": 6, "fully-explored-epochs": 7,
    }  # fmt: skip
    assert len(set(keys.values())) == len(keys)
    for s in REGISTRY.values():  # a baseline is a one-view strategy of the registry
        assert REGISTRY[s.baseline].family == "one-view"


def test_every_pretraining_setting_says_whether_it_changes_the_run():
    import dataclasses

    from femlm.report.pairs import NOT_COMPARED
    from femlm.schema import training_invariant
    from femlm.train.resume import FREE_ON_RESUME

    unmarked = [
        f.name
        for f in dataclasses.fields(TrainConfig)
        if not isinstance(f.metadata.get("affects_training"), bool)
    ]
    assert not unmarked, f"mark these with affects_training=True/False: {unmarked}"
    free = training_invariant(TrainConfig)
    assert free == FREE_ON_RESUME and free <= NOT_COMPARED  # one mark, both rules
    assert {"out_dir", "threads", "report_to", "grad_accum", "variance_every"} <= free
    assert not free & {"lr", "strategy", "data", "eval_sequences", "seed"}


def test_the_package_ships_every_subpackage_and_one_version():
    import tomllib
    from setuptools import find_packages

    import femlm

    project = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = set(find_packages(str(ROOT.parent), include=include))
    on_disk = {_module_name(p.parent / "__init__.py") for p in ROOT.rglob("__init__.py")}
    assert on_disk <= shipped, f"not in the wheel: {on_disk - shipped}"
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "femlm.__version__"
    assert femlm.__version__
