"""The experiment file's schema, checked before any work is done.

Every section has a type: ``seeds`` a list of integers, ``base`` and each run
a mapping of pre-training settings, ``tokenizer`` the options of ``femlm
tokenizer train``, ``variance`` and ``finetune`` those of their subcommands
plus the runner's ``variants`` and ``pretrain_seeds`` (and ``tasks``). An
unknown key or a wrong type stops ``femlm experiment`` with one line naming it,
not after hours of pre-training.
"""

from __future__ import annotations

from typing import Any

from femlm.errors import FemlmError
from femlm.finetune.config import FinetuneConfig
from femlm.options import TokenizerOptions
from femlm.runs import check_component
from femlm.schema import from_dict
from femlm.variance.config import VarianceConfig

TOP_KEYS = ("name", "out_dir", "seeds", "base", "runs", "tokenizer", "finetune", "variance")
TOP_KEYS += ("probe",)
TOP_KEYS += ("budget", "starts", "tuning")
RUNNER_KEYS = ("variants", "pretrain_seeds")


def check_spec(raw: dict[str, Any], where: str) -> None:
    """FemlmError ``<where>: ...`` naming the first key that is unknown or mistyped."""

    def fail(message: str) -> None:
        raise FemlmError(f"{where}: {message}")

    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        fail(f"unknown experiment key(s): {', '.join(unknown)}")
    for key in ("name", "out_dir", "budget"):
        if key in raw and not isinstance(raw[key], str):
            fail(f"{key!r} should be text, got {raw[key]!r}")
    if "seeds" in raw:
        _int_list(raw["seeds"], "seeds", fail)
    starts = raw.get("starts")
    if starts is not None and (
        not isinstance(starts, list) or not starts or not all(isinstance(s, str) for s in starts)
    ):
        fail(f"'starts' should be a list of model folders, got {starts!r}")
    tuning = raw.get("tuning")
    if tuning is not None:
        if not isinstance(tuning, dict) or set(tuning) - {"select_seeds", "verdict_seeds"}:
            fail(f"'tuning' takes select_seeds and verdict_seeds, got {tuning!r}")
        for key, value in tuning.items():
            _int_list(value, f"tuning.{key}", fail)
    for key in ("base", "tokenizer", "variance", "finetune", "probe"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            fail(f"{key!r} should be a mapping of settings, got {raw[key]!r}")
    runs = raw.get("runs")
    if not runs:
        fail("no runs to compare (give a 'runs' mapping)")
    if not isinstance(runs, dict):
        fail(f"'runs' should map variant names to their settings, got {type(runs).__name__}")
    for name, settings in runs.items():
        try:
            check_component(str(name), "variant")
        except FemlmError as err:
            fail(str(err))
        if settings is not None and not isinstance(settings, dict):
            fail(f"run {name!r} should be a mapping of settings, got {settings!r}")
        if settings and "seeds" in settings:
            _int_list(settings["seeds"], f"runs.{name}.seeds", fail)
    _check_sections(raw, [str(n) for n in runs], fail)


def _check_sections(raw: dict[str, Any], variants: list[str], fail: Any) -> None:
    if raw.get("tokenizer"):
        missing = [k for k in ("data", "output") if k not in raw["tokenizer"]]
        if missing:
            fail(f"section 'tokenizer' needs {' and '.join(missing)}")
        _typed(TokenizerOptions, raw["tokenizer"], "tokenizer", fail)
    sections = (
        ("variance", VarianceConfig),
        ("finetune", FinetuneConfig),
        ("probe", FinetuneConfig),
    )
    for key, cls in sections:
        spec = dict(raw.get(key) or {})
        if not spec:
            continue
        named = spec.get("variants", [])
        if not isinstance(named, list) or set(map(str, named)) - set(variants):
            fail(f"{key}.variants names no variant of this experiment: {named!r}")
        if "pretrain_seeds" in spec:
            _int_list(spec["pretrain_seeds"], f"{key}.pretrain_seeds", fail)
        settings = {k: v for k, v in spec.items() if k not in RUNNER_KEYS}
        tasks = settings.pop("tasks", None) if key != "variance" else None
        _typed(cls, {**settings, "task": "x"} if key != "variance" else settings, key, fail)
        if key != "variance" and (
            not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks)
        ):
            fail(f"{key}.tasks should be a list of task names, got {tasks!r}")


def _typed(cls: type, values: dict[str, Any], section: str, fail: Any) -> None:
    try:
        from_dict(cls, values)
    except FemlmError as err:
        fail(f"section {section!r}: {err}")


def _int_list(value: Any, key: str, fail: Any) -> None:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        fail(f"{key!r} should be a list of integers such as [0, 1, 2], got {value!r}")
