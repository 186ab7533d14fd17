"""A linear probe: how much a frozen encoder's features say about a task.

The encoder is never trained. Each example's feature is its last hidden layer
mean-pooled over its tokens (padding left out), standardised with the train
split's mean and spread; a multinomial logistic regression with an L2 penalty
is fit to the train split by full-batch L-BFGS from zero, so nothing is random
beyond the features themselves. The penalty is chosen on dev by the dev metric;
test is scored once, with the chosen one. Cheap (one forward pass per example)
and steady, so it can see differences that fine-tuning's noise hides.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from femlm.errors import FemlmError
from femlm.files import write_json
from femlm.finetune.config import FinetuneConfig
from femlm.finetune.metrics import dev_scores
from femlm.finetune.results import ProbeResult, ProbeRun
from femlm.finetune.tasks import label_order, load_task
from femlm.model import PRESETS, build_model, encoder_and_head, pick_device, tokenizer_source
from femlm.runs import RunDir, task_label

log = logging.getLogger("femlm")
L2 = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
BATCH = 64


@dataclass
class _Features:
    x: dict[str, Tensor]  # split -> [n, hidden] float64
    y: dict[str, Tensor]  # split -> [n] int64


def linear_probe(cfg: FinetuneConfig, l2: tuple[float, ...] = L2) -> ProbeResult:
    """Probe ``cfg.model`` on ``cfg.task``; a preset is probed at initialisation, once per
    seed of ``cfg.seeds`` (the untrained reference). Writes and returns the result."""
    from femlm.data.tokenizer import load_tokenizer

    if cfg.model in PRESETS and not (cfg.tokenizer and cfg.out):
        raise FemlmError(f"the preset {cfg.model!r} needs --tokenizer and --out for a probe")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    splits, how = load_task(cfg)
    labels = label_order({y for _, y in splits["train"]})
    ids = {y: i for i, y in enumerate(labels)}
    tokenizer = load_tokenizer(tokenizer_source(cfg.tokenizer, cfg.model))
    seeds = cfg.seeds if cfg.model in PRESETS else [None]
    runs = []
    for seed in seeds:
        start = time.perf_counter()
        encoder = _encoder(cfg, tokenizer, seed)
        feats = _features(encoder, tokenizer, splits, ids, cfg)
        runs.append(_fit_and_score(feats, len(labels), cfg.metric, l2, seed, start))
    result = ProbeResult(
        task=cfg.task, model=cfg.model, labels=labels, split=how,
        splits={s: len(r) for s, r in splits.items()}, metric=cfg.metric, runs=runs,
    )  # fmt: skip
    out = Path(cfg.out) if cfg.out else RunDir(cfg.model).probe(task_label(cfg.task))
    write_json(result.to_json(), out)
    result.out = str(out)
    return result


def _encoder(cfg: FinetuneConfig, tokenizer: Any, seed: int | None) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)  # the preset's initialisation
        model = build_model(cfg.model, tokenizer, cfg.max_length, dropout=0.0)
    parts = encoder_and_head(model)
    if parts is None:
        raise FemlmError(f"cannot find the encoder of {type(model).__name__} to probe")
    return parts[0].to(pick_device(cfg.device)).eval()


@torch.no_grad()
def _features(encoder: nn.Module, tokenizer: Any, splits: dict, ids: dict, cfg: FinetuneConfig):
    device = next(encoder.parameters()).device
    x, y = {}, {}
    for split, rows in splits.items():
        texts = [t.replace("\x1f", f" {tokenizer.sep_token} ") for t, _ in rows]
        out = []
        for start in range(0, len(texts), BATCH):
            enc = tokenizer(
                texts[start : start + BATCH], truncation=True, max_length=cfg.max_length,
                padding=True, return_tensors="pt",
            )  # fmt: skip
            mask = enc["attention_mask"].to(device)
            inputs = {"input_ids": enc["input_ids"].to(device), "attention_mask": mask}
            hidden = encoder(**inputs)[0].double()
            weights = mask.unsqueeze(-1).double()
            out.append(((hidden * weights).sum(1) / weights.sum(1).clamp(min=1)).cpu())
        x[split] = torch.cat(out)
        y[split] = torch.tensor([ids[label] for _, label in rows])
    return _Features(x, y)


def _fit_and_score(
    feats: _Features, classes: int, metric: str, l2: tuple[float, ...], seed: Any, start: float
) -> ProbeRun:
    mean, std = feats.x["train"].mean(0), feats.x["train"].std(0).clamp(min=1e-8)
    x = {s: (v - mean) / std for s, v in feats.x.items()}
    tried = []
    for penalty in l2:
        w, b = fit_logistic(x["train"], feats.y["train"], classes, penalty)
        pred = (x["dev"] @ w + b).argmax(-1)
        tried.append((penalty, dev_scores(feats.y["dev"].tolist(), pred.tolist()), w, b))
    best = max(range(len(tried)), key=lambda i: (tried[i][1][metric], -i))
    penalty, dev, w, b = tried[best]
    pred = (x["test"] @ w + b).argmax(-1).tolist()
    test = dev_scores(feats.y["test"].tolist(), pred)
    return ProbeRun(
        seed=seed, l2=penalty, dev_accuracy=dev["accuracy"], dev_macro_f1=dev["macro_f1"],
        test_accuracy=test["accuracy"], test_macro_f1=test["macro_f1"],
        collapsed=len(set(pred)) == 1, seconds=round(time.perf_counter() - start, 2),
        l2_search=[{"l2": p, **s} for p, s, _, _ in tried],
    )  # fmt: skip


def fit_logistic(x: Tensor, y: Tensor, classes: int, l2: float) -> tuple[Tensor, Tensor]:
    """Multinomial logistic regression: mean cross-entropy + ``l2/2 * ||W||^2``,
    minimised by full-batch L-BFGS from zero (a convex problem: one answer)."""
    w = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
        history_size=20, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(x @ w + b, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def format_probe(result: ProbeResult) -> str:
    """The chosen penalty and dev/test scores of each probe, in a few lines."""
    s = result.splits
    lines = [
        f"{result.task}: linear probe of {result.model}, {len(result.labels)} labels, train "
        f"{s['train']} / dev {s['dev']} / test {s['test']}; dev metric {result.metric}"
    ]
    for r in result.runs:
        who = "" if r.seed is None else f"init seed {r.seed}: "
        lines.append(
            f"  {who}l2 {r.l2:g}: dev acc {r.dev_accuracy:.4f} F1 {r.dev_macro_f1:.4f}; test acc "
            f"{r.test_accuracy:.4f} F1 {r.test_macro_f1:.4f}{' (one class)' if r.collapsed else ''}"
        )
    if result.out:
        lines.append(f"saved to {result.out}")
    return "\n".join(lines)
