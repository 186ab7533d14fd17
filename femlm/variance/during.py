"""The variance terms measured mid-run (``--variance-every``): the end-of-run
probe's sequences and views, at the training step's parameters."""

from __future__ import annotations

from typing import Any

from femlm.config import TrainConfig
from femlm.variance.analyser import variance_terms
from femlm.variance.probe import pick_sequences, probe_views


def terms_during_training(model: Any, tokenizer: Any, eval_set: Any, cfg: TrainConfig) -> Any:
    """Point estimates of the variance terms at a training step, on the sequences and
    views the end-of-run probe would use (``cfg.variance_sequences`` blocks)."""
    sequences = pick_sequences(eval_set, cfg.variance_sequences, cfg.seed)
    return variance_terms(
        model, sequences, tokenizer, views=probe_views(cfg.masking), seed=cfg.seed
    )
