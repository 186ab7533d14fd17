"""What a run folder allows: starting fresh, resuming, and which settings may change.

A run folder records one run. Resuming continues that run exactly, so it may
change only settings that leave the trained weights and the record alone
(:data:`FREE_ON_RESUME`), and a longer run only where the learning-rate
schedule does not depend on its length. A folder that already holds a run is
never started over. The newest checkpoint that passes its sha256 check is the
one resumed; a corrupt one is moved aside (``.step-N.corrupt``), never deleted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from femlm.config import TrainConfig
from femlm.errors import FemlmError
from femlm.runs import RunDir
from femlm.schema import flatten_groups, load_config, read_config_file, training_invariant
from femlm.train import checkpoint as ckpt

log = logging.getLogger("femlm")

# The settings marked affects_training=False on their fields (femlm.config): none of
# them changes the weights a resumed run ends with, nor its record.
FREE_ON_RESUME = training_invariant(TrainConfig)


def config_for(config_path: str | None, overrides: dict[str, Any], resume: bool) -> TrainConfig:
    """The config to run: on ``resume`` the run folder's saved config, with only the
    settings it allows to change; a FemlmError names every other key that differs."""
    out = overrides.get("out_dir") or TrainConfig().out_dir
    saved_path = RunDir(out).config
    if not resume:
        return load_config(TrainConfig, config_path, overrides)
    if not saved_path.is_file():
        raise FemlmError(
            f"nothing to resume: {out} holds no {saved_path.name} (no run started there)"
        )
    saved = load_config(TrainConfig, str(saved_path))
    asked = dict(flatten_groups(TrainConfig, read_config_file(config_path))) if config_path else {}
    asked.update({k: v for k, v in overrides.items() if v is not None})
    wanted = load_config(TrainConfig, None, {**vars(saved), **asked})
    differ = [k for k in asked if getattr(wanted, k) != getattr(saved, k)]
    refused = [k for k in differ if k not in FREE_ON_RESUME and not _longer(k, saved, wanted)]
    if refused:
        shown = "; ".join(f"{k}: {getattr(saved, k)!r} -> {getattr(wanted, k)!r}" for k in refused)
        raise FemlmError(
            f"--resume continues the run in {out} as it was started; these settings would change it: {shown}. Drop them, or start a new run in another --out-dir"
        )
    return wanted


def _longer(key: str, saved: TrainConfig, wanted: TrainConfig) -> bool:
    """More steps on a constant schedule extend the run exactly; on a decaying one
    they would change the learning rate of steps already planned."""
    return (
        key == "max_steps" and wanted.max_steps > saved.max_steps and saved.schedule == "constant"
    )


def resume_point(run: RunDir, resume: bool) -> Path | None:
    """The checkpoint to continue from (None: start at step 0), after checking the
    folder holds no run that a fresh start would overwrite."""
    found = ckpt.list_checkpoints(run.checkpoints)
    if not resume:
        if found or run.finished:
            what = "checkpoints" if found else "a finished run (final/)"
            raise FemlmError(
                f"{run.root} already holds {what}; pass --resume to continue it or choose another --out-dir"
            )
        return None
    if not found:
        if run.finished:
            raise FemlmError(
                f"{run.root} holds a finished run (final/); there is nothing to resume"
            )
        raise FemlmError(f"nothing to resume: no checkpoint in {run.checkpoints}")
    for newest in reversed(found):
        try:
            ckpt.verify(newest)
            return newest
        except FemlmError as err:
            aside = newest.with_name(f".{newest.name}.corrupt")
            newest.rename(aside)
            log.warning("%s; moved it to %s and resume from the one before", err, aside.name)
    raise FemlmError(f"no checkpoint in {run.checkpoints} passes its sha256 check; cannot resume")
