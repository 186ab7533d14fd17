"""How a config dataclass becomes command-line flags, is read from a file, and is saved.

Every subcommand's options are a dataclass in :mod:`femlm.config` whose fields
carry their help text (:func:`setting`). From it come the flags (one per field,
grouped as the dataclass's setting groups are), the accepted keys of a YAML or
JSON file, and the JSON saved beside every checkpoint. Precedence: field
defaults < file < flags the user typed. Unknown keys and wrong types are a
:class:`FemlmError` naming the key, before any work is done.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from femlm.errors import FemlmError


def setting(
    default: Any,
    help: str,
    *,
    positional: bool = False,
    required: bool = False,
    choices: tuple | None = None,
    repeatable: bool = False,
    bounds: Bounds | None = None,
    affects_training: bool | None = None,
) -> Any:
    """A dataclass field with its help text, how it appears on the command line (a
    list flag given twice keeps the last unless ``repeatable``), the range of
    numbers it accepts (checked by :func:`check_bounds`) and, for pre-training's
    settings, whether it changes the run: ``affects_training=False`` marks a setting
    that leaves the trained weights and the run's record as they are (where it runs,
    how often it logs or saves, how a step is split into micro-batches, up to the
    order of floating-point sums). Resuming may change only those, and fair pairs
    ignore them (:func:`training_invariant`)."""
    meta = {"help": help, "positional": positional, "required": required, "choices": choices}
    meta |= {"repeatable": repeatable, "bounds": bounds, "affects_training": affects_training}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Bounds:
    """A numeric range: ``low``/``high`` (None: unbounded), each end open or closed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, x: float) -> bool:
        if self.low is not None and (x <= self.low if self.low_open else x < self.low):
            return False
        return self.high is None or (x < self.high if self.high_open else x <= self.high)

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


POSITIVE = Bounds(low=1)  # counts: at least one
NON_NEGATIVE = Bounds(low=0)  # 0 usually means "never" or "off"
PROBABILITY = Bounds(0, 1)
FRACTION = Bounds(0, 1, low_open=True, high_open=True)


def training_invariant(cls: type) -> frozenset[str]:
    """The fields of ``cls`` marked ``affects_training=False``."""
    return frozenset(
        f.name for f in dataclasses.fields(cls) if f.metadata.get("affects_training") is False
    )


def check_bounds(config: Any) -> None:
    """FemlmError naming the first field outside its choices or its :class:`Bounds`;
    every config dataclass calls it after construction, from files and flags alike."""
    for f in dataclasses.fields(config):
        bounds, value = f.metadata.get("bounds"), getattr(config, f.name)
        choices = f.metadata.get("choices")
        if choices and value is not None:
            for v in value if isinstance(value, list) else [value]:
                if v not in choices:
                    raise FemlmError(f"{f.name} must be one of {', '.join(choices)}, got {v!r}")
        if bounds is None or value is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or v not in bounds
            ):
                finite = "a finite number " if isinstance(v, float) and not math.isfinite(v) else ""
                raise FemlmError(f"{f.name} must be {finite}{bounds}, got {value!r}")


class Checked:
    """Numbers are checked against their bounds as soon as a config exists, so a
    file, a flag or a Python caller gets the same one-line error before any work."""

    def __post_init__(self) -> None:
        check_bounds(self)


def base_type(tp: Any) -> Any:
    """``int | None`` -> int; ``list[str]`` -> list."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return base_type(args[0])
    return typing.get_origin(tp) or tp


def _item_type(tp: Any) -> Any:
    """``list[int] | None`` -> int; str for anything else."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    args = typing.get_args(tp)
    return args[0] if typing.get_origin(tp) is list and args else str


def groups_of(cls: type) -> dict[str, str]:
    """``{field name: group title}``: a field belongs to the setting group (a base
    dataclass with a ``GROUP`` title) that declares it; others to the class itself."""
    owner: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        title = base.__dict__.get("GROUP")
        for name in base.__dict__.get("__annotations__", {}):
            if title:
                owner[name] = title
    return owner


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One argument per field, with its help, in argument groups where the class
    has setting groups. Defaults stay unset (None) so that only what the user
    typed overrides a config file."""
    hints = typing.get_type_hints(cls)
    owner = groups_of(cls)
    sections: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        title = owner.get(f.name)
        target = parser
        if title:
            target = sections.setdefault(title, parser.add_argument_group(title))
        _add_one(target, f, base_type(hints[f.name]))


def _add_one(target: Any, f: dataclasses.Field, kind: Any) -> None:
    meta = f.metadata
    shown = "" if meta.get("required") else f" (default: {_default(f)})"
    # argparse %-formats help strings, so a literal % in help text must be doubled
    kwargs: dict[str, Any] = {"help": (meta.get("help", "") + shown).replace("%", "%%")}
    if meta.get("choices"):
        kwargs["choices"] = meta["choices"]
    if meta.get("positional"):
        many = "+" if meta.get("required") else "*"
        kwargs["nargs"] = many if kind is list else (None if meta.get("required") else "?")
        if kwargs["nargs"] in ("?", "*"):
            kwargs["default"] = None
        target.add_argument(f.name, **kwargs)
        return
    flag = "--" + f.name.replace("_", "-")
    kwargs["default"] = None
    if meta.get("required"):
        kwargs["required"] = True
    if kind is bool:
        target.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
    elif kind is list:
        action = "extend" if meta.get("repeatable") else "store"
        target.add_argument(flag, nargs="+", action=action, **kwargs)
    else:
        target.add_argument(flag, type=kind, **kwargs)


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def from_args(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` the user typed on the command line (None: not given)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def load_config(cls: type, path: str | None = None, overrides: dict[str, Any] | None = None) -> Any:
    """Defaults, then the YAML/JSON file at ``path``, then non-None ``overrides``."""
    values: dict[str, Any] = {}
    if path:
        values.update(flatten_groups(cls, read_config_file(path), path))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(cls, values)


def flatten_groups(cls: type, values: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """Settings may be given flat (``lr: 1e-3``) or inside their group's section
    (``optimisation: {lr: 1e-3}``); both load the same config."""
    owner = groups_of(cls)
    titles = set(owner.values())
    names = {f.name for f in dataclasses.fields(cls)}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key in titles and key not in names and isinstance(value, dict):
            for inner, v in value.items():
                if owner.get(inner) != key:
                    raise FemlmError(f"{where}: unknown key {inner!r} in section {key!r}")
                flat[inner] = v
        else:
            flat[key] = value
    return flat


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """``cls(**values)`` after checking every key exists and has the field's type."""
    values = flatten_groups(cls, values)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise FemlmError(f"unknown config key(s): {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    checked = {k: check_type(k, v, hints[k]) for k, v in values.items()}
    return cls(**checked)


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def check_type(key: str, value: Any, hint: Any) -> Any:
    """``value`` as the field's type: ints widen to floats, and a list of numbers may
    come as numbers or strings ("0 1 2", "0,1,2"); anything else must match."""
    kind = base_type(hint)
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
    if kind is list:
        return _as_list(key, value, _item_type(hint))
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FemlmError(f"config key {key!r} should be {kind.__name__}, got {value!r}")
    return value


def _as_list(key: str, value: Any, item: type) -> list:
    items = value if isinstance(value, list) else [value]
    if item is str:
        if not all(isinstance(v, str) for v in items):
            raise FemlmError(f"config key {key!r} should be a list of strings, got {value!r}")
        return list(items)
    parts = [p for v in items for p in (v.split(",") if isinstance(v, str) else [v])]
    out = []
    for p in parts:
        if isinstance(p, str) and p.strip() == "":
            continue
        try:
            if isinstance(p, bool) or (item is int and isinstance(p, float)):
                raise ValueError
            out.append(item(p))
        except (TypeError, ValueError):
            plural = {int: "integers", float: "numbers"}.get(item, f"{item.__name__}s")
            raise FemlmError(f"{key} must be {plural}, got {value!r}") from None
    return out


def read_config_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FemlmError(f"config file not found: {path}")
    import yaml

    try:
        text = p.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if p.suffix in (".yaml", ".yml") else json.loads(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
        raise FemlmError(f"cannot parse config {path}: {str(err).splitlines()[0]}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise FemlmError(f"config {path} must hold a mapping of keys to values")
    return data


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(config), indent=2) + "\n", encoding="utf-8")
