"""The run folder, a written format: every file and folder name in one place.

A pre-training run folder (``femlm pretrain --out-dir RUN``, or one
``<variant>/seed-<s>/`` of an experiment) holds::

    femlm_config.json        the resolved TrainConfig (written once, at step 0)
    metrics.jsonl            one JSON object per line: step, loss, eval_loss, ...
    checkpoints/step-NNNNNNN/  model, optimizer state, config, sha256 manifest
    final/                   the trained model + tokenizer (HF layout), by one rename
    timing.json              wall-clock seconds of the experiment runner
    variance/ variance.json  the end-of-run variance probe: plots, then results
    finetune-<task>.json     downstream fine-tuning results
    finetune-checkpoints/    the same for every checkpoint (--checkpoints all)
    probe-<task>.json        linear-probe results (frozen features, logistic regression)
    eval-mask<M>-random<R>.json  `femlm evaluate` re-scorings
    .lock                    held by the one process writing the folder

An experiment folder holds ``experiment.json`` (the grid as given),
``tokenizer/`` when the grid trains one, and ``<variant>/seed-<s>/`` runs.
docs/training.md documents the same layout; readers and writers go through
:class:`RunDir` and :class:`ExperimentDir` so that the names cannot drift.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from femlm.errors import FemlmError
from femlm.files import make_folder

CONFIG_FILE = "femlm_config.json"
_SEED = re.compile(r"^seed-(-?\d+)$")


def check_component(name: str, what: str) -> str:
    """``name`` if it is one safe path component (no separator, not ``.``/``..``, no
    leading dot), else a FemlmError: variant and task names become folder and file
    names, and must stay inside the experiment folder."""
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or any(c in name for c in ("/", "\\", "\0"))
    ):
        raise FemlmError(
            f"{what} {name!r} cannot name a file: use one path component without '/', "
            "'\\' or a leading '.'"
        )
    return name


def task_label(task: str) -> str:
    """The name results of ``task`` are filed under: a built-in task's name, else the
    file's or folder's stem, other characters as ``_`` (``/data/my task.jsonl`` ->
    ``my_task``); femlm finetune and the grid both use it."""
    stem = Path(task).stem if ("/" in task or "." in task) else task
    return re.sub(r"[^\w.-]+", "_", stem).lstrip(".") or "task"


@dataclass(frozen=True)
class RunDir:
    """Named paths of one pre-training run folder."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    def __fspath__(self) -> str:  # a RunDir goes wherever a path does
        return str(self.root)

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def final(self) -> Path:
        return self.root / "final"

    @property
    def timing(self) -> Path:
        return self.root / "timing.json"

    @property
    def variance(self) -> Path:
        """The end-of-run probe's results; its plots go to :attr:`variance_dir`."""
        return self.root / "variance.json"

    @property
    def variance_dir(self) -> Path:
        return self.root / "variance"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def finetune_sweep(self) -> Path:
        """``femlm finetune --checkpoints all``: one result per checkpoint and task."""
        return self.root / "finetune-checkpoints"

    def finetune(self, task: str) -> Path:
        return self.root / f"finetune-{task}.json"

    def finetune_results(self) -> dict[str, Path]:
        """``{task: path}`` of every fine-tuning result, sorted by task."""
        found = sorted(self.root.glob("finetune-*.json"))
        return {p.stem.removeprefix("finetune-"): p for p in found}

    def probe(self, task: str) -> Path:
        return self.root / f"probe-{task}.json"

    def probe_results(self) -> dict[str, Path]:
        """``{task: path}`` of every linear-probe result, sorted by task."""
        found = sorted(self.root.glob("probe-*.json"))
        return {p.stem.removeprefix("probe-"): p for p in found}

    def reevaluation(self, mask_prob: float, random_prob: float) -> Path:
        return self.root / f"eval-mask{mask_prob:g}-random{random_prob:g}.json"

    def reevaluations(self) -> dict[str, Path]:
        """``{"mask1-random0": path, ...}`` of every `femlm evaluate` result."""
        found = sorted(self.root.glob("eval-mask*.json"))
        return {p.stem.removeprefix("eval-"): p for p in found}

    @property
    def started(self) -> bool:
        """femlm started this run: it saved its config."""
        return self.config.is_file()

    @property
    def finished(self) -> bool:
        """The final model is written: ``final/`` appears by one rename of a complete
        folder, so its presence is enough, and a copy of a run's results without its
        weights (the usual way to share them) still counts as finished."""
        return self.final.is_dir()

    @property
    def seed(self) -> int | None:
        """The seed of an experiment run (``seed-<s>``), None for another name."""
        m = _SEED.match(self.root.name)
        return int(m.group(1)) if m else None


@dataclass(frozen=True)
class ExperimentDir:
    """Named paths of an experiment folder: ``<variant>/seed-<s>/`` runs and their grid."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def spec(self) -> Path:
        return self.root / "experiment.json"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    def random_init_finetune(self, task: str) -> Path:
        """The fine-tuning recipe on the untrained preset: the downstream reference
        (written by the demo, or by hand for a grid; read by the report)."""
        return self.root / f"random-init-finetune-{task}.json"

    def run(self, variant: str, seed: int) -> RunDir:
        return RunDir(self.root / variant / f"seed-{seed}")

    def runs(self) -> Iterator[tuple[str, RunDir]]:
        """``(variant, run)`` for every ``<variant>/seed-<s>/`` folder, in sorted order."""
        for folder in sorted(self.root.glob("*/seed-*")):
            run = RunDir(folder)
            if folder.is_dir() and run.seed is not None:
                yield folder.parent.name, run


def finished_run(run: str | os.PathLike) -> bool:
    """Whether ``run`` is a finished run folder (see :attr:`RunDir.finished`)."""
    return RunDir(run).finished


def find_runs(folder: str | os.PathLike) -> list[RunDir]:
    """The runs femlm started under ``folder``: an experiment folder, a variant folder
    holding ``seed-<s>/`` runs, or one run folder (returned as it is)."""
    root = Path(folder)
    found = sorted(root.glob(f"*/seed-*/{CONFIG_FILE}")) or sorted(
        root.glob(f"seed-*/{CONFIG_FILE}")
    )
    return [RunDir(p.parent) for p in found] or [RunDir(root)]


class RunBusy(FemlmError):
    """The run folder is locked by another femlm process."""


class RunLock:
    """An exclusive lock on a run folder while a process writes it.

    ``flock`` on ``<run>/.lock``: the kernel releases it when the process exits,
    however it exits, so a lock left by a crash never blocks a later run (the
    file stays, empty of meaning). Re-entrant within a process, so the grid
    runner can hold a run while ``pretrain`` inside it takes the same lock.
    """

    _held: dict[Path, tuple[int, int]] = {}  # resolved folder -> (fd, depth)

    def __init__(self, run: str | os.PathLike) -> None:
        self.run = RunDir(run)

    def __enter__(self) -> RunLock:
        import fcntl

        key = self.run.root.resolve()
        if key in self._held:
            fd, depth = self._held[key]
            self._held[key] = (fd, depth + 1)
            return self
        make_folder(self.run.root, "run folder")
        fd = os.open(self.run.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunBusy(
                f"{self.run.root} is in use by femlm (pid {holder}); wait for it to finish or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._held[key] = (fd, 1)
        return self

    def __exit__(self, *exc: object) -> None:
        key = self.run.root.resolve()
        fd, depth = self._held[key]
        if depth > 1:
            self._held[key] = (fd, depth - 1)
            return
        del self._held[key]
        os.close(fd)  # closing the descriptor releases the flock


def read_metrics(path: str | os.PathLike) -> tuple[list[dict], bool]:
    """The rows of a ``metrics.jsonl`` and whether its last line was torn (a kill
    during a write leaves a partial line: it is dropped). Any other unreadable
    line is a FemlmError naming the file and line."""
    import json

    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    rows, torn = [], False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                raise ValueError("not a metrics row")
        except ValueError:
            if number == len(lines):
                torn = True
                break
            raise FemlmError(f"{path}:{number}: not a metrics row (JSON with a step)") from None
        rows.append(row)
    return rows, torn
