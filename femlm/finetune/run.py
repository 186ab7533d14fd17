"""Downstream fine-tuning: does a pre-trained encoder classify text better?

``finetune`` trains a sequence classifier on top of a masked-LM checkpoint for
several seeds, stops each run early on a dev metric (accuracy or macro-F1,
which also chooses the learning rate), and reports test accuracy
and macro-F1 with their mean and spread over seeds. Pre-training strategies
are compared on these numbers, so everything that is not the seed is fixed:
the split, the label ids, the training subsample and the batch order of a seed.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from femlm.errors import FemlmError
from femlm.files import write_json
from femlm.finetune.config import FinetuneConfig
from femlm.finetune.metrics import accuracy, dev_scores, macro_f1
from femlm.finetune.results import FinetuneResult, SeedRun, collapse_note
from femlm.finetune.tasks import PAIR_SEP, Row, label_order, load_task, subsample
from femlm.model import (
    PRESETS,
    check_positions,
    hub_hint,
    local_config,
    local_weights,
    max_positions,
    pick_device,
    preset_config,
    quiet_transformers,
    set_dropout,
    tokenizer_source,
    uses_token_types,
)
from femlm.runs import RunDir, task_label
from femlm.train.optim import adamw, warmup_then

log = logging.getLogger("femlm")
CLIP_GRAD = 1.0
EVAL_BATCH = 64
BATCH_KEYS = ("input_ids", "attention_mask", "labels")


# --- the model and the loop -------------------------------------------------------------


def _load_model(cfg: FinetuneConfig, labels: list[str], tokenizer: Any) -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    if cfg.model in PRESETS:  # the no-pre-training baseline: every weight from the seeded RNG
        config = preset_config(cfg.model, tokenizer, cfg.max_length, cfg.dropout)
        _set_labels(config, labels)
        log.info("model %s: random initialisation, no pre-training", cfg.model)
        return AutoModelForSequenceClassification.from_config(config)
    config = local_config(cfg.model, "a classifier")
    _set_labels(config, labels)
    set_dropout(config, cfg.dropout)
    model, info = local_weights(
        AutoModelForSequenceClassification, cfg.model, config, "a classifier"
    )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise FemlmError(f"the tokenizer has more tokens than {cfg.model!r} embeds")
    check_positions(model, cfg.max_length, cfg.model)
    fresh = [k for k in info.get("missing_keys", []) if "position_ids" not in k]
    log.info("classification head starts fresh: %s", ", ".join(sorted(fresh)) or "none")
    return model


def _set_labels(config: Any, labels: list[str]) -> None:
    config.num_labels = len(labels)  # first: its setter rewrites id2label with placeholders
    config.id2label = dict(enumerate(labels))
    config.label2id = {y: i for i, y in enumerate(labels)}


def _encode(tokenizer: Any, rows: list[Row], ids: dict[str, int], max_length: int) -> list:
    """``((token ids, token type ids), label id)`` per row; a pair row is encoded as the
    tokenizer's pair (``[CLS] A [SEP] B [SEP]``), cutting the longer text first."""
    texts = [t for t, _ in rows]
    pairs = [t.split(PAIR_SEP, 1) for t in texts] if any(PAIR_SEP in t for t in texts) else None
    enc = tokenizer(
        [p[0] for p in pairs] if pairs else texts, [p[1] for p in pairs] if pairs else None,
        truncation=True, max_length=max_length, return_token_type_ids=True,
    )  # fmt: skip
    encoded = zip(enc["input_ids"], enc["token_type_ids"], strict=True)
    return [(x, ids[y]) for x, (_, y) in zip(encoded, rows, strict=True)]


def _collate(
    examples: list, pad_id: int, device: torch.device, types: bool = False
) -> dict[str, Tensor]:
    """Pads to the longest example of this batch only: most texts are short. ``types``:
    add ``token_type_ids`` (models that embed segments, e.g. BERT's sentence B)."""
    ids = torch.full((len(examples), max(len(x) for (x, _), _ in examples)), pad_id)
    mask, segments = torch.zeros_like(ids), torch.zeros_like(ids)
    for i, ((x, t), _) in enumerate(examples):
        ids[i, : len(x)], mask[i, : len(x)], segments[i, : len(t)] = (
            torch.tensor(x),
            1,
            torch.tensor(t),
        )
    labels = torch.tensor([y for _, y in examples])
    batch = dict(zip(BATCH_KEYS, (ids, mask, labels), strict=True))
    if types:
        batch["token_type_ids"] = segments
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def predict(model: nn.Module, data: list, pad_id: int, device: torch.device) -> list[int]:
    """Predicted label ids of ``data`` (token ids, label id) pairs, in their order."""
    model.eval()
    order = sorted(range(len(data)), key=lambda i: len(data[i][0][0]))  # less padding
    preds = [0] * len(data)
    for start in range(0, len(order), EVAL_BATCH):
        chunk = order[start : start + EVAL_BATCH]
        batch = _collate([data[i] for i in chunk], pad_id, device, uses_token_types(model))
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        for i, p in zip(chunk, logits.argmax(-1).tolist(), strict=True):
            preds[i] = p
    return preds


def _optimizer(model: nn.Module, cfg: FinetuneConfig, total: int) -> tuple[Any, Any]:
    """AdamW with linear warm-up then linear decay to zero at the last possible step."""
    optimizer = adamw(model, cfg.lr, cfg.weight_decay)
    warm = max(1, round(cfg.warmup_ratio * total))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then(warm, total))


def _train_epoch(model: nn.Module, batches: Any, optimizer: Any, scheduler: Any, bar: Any) -> None:
    model.train()  # dropout on
    for batch in batches:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_GRAD)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)


def _run_seed(
    cfg: FinetuneConfig,
    seed: int,
    data: dict,
    labels: list,
    tokenizer: Any,
    keep: Path | None = None,
) -> SeedRun:
    """One fine-tuning run: train with early stopping on dev, then score test; ``keep``:
    save the best state there (HF layout, with the tokenizer)."""
    start, device = time.perf_counter(), pick_device(cfg.device)
    torch.manual_seed(seed)  # the fresh head's initialisation and dropout
    model = _load_model(cfg, labels, tokenizer).to(device)
    train, pad, bs = data["train"], tokenizer.pad_token_id, cfg.batch_size
    per_epoch = math.ceil(len(train) / bs)
    optimizer, scheduler = _optimizer(model, cfg, per_epoch * cfg.epochs)
    order = torch.Generator().manual_seed(seed)  # batch order, apart from the global RNG
    best, best_dev, best_epoch, stale = {}, {cfg.metric: -1.0}, 0, 0
    with _progress(cfg, per_epoch * cfg.epochs, seed) as bar:
        for epoch in range(1, cfg.epochs + 1):
            perm = torch.randperm(len(train), generator=order).tolist()
            chunks = [perm[k : k + bs] for k in range(0, len(perm), bs)]
            types = uses_token_types(model)
            batches = (_collate([train[i] for i in c], pad, device, types) for c in chunks)
            _train_epoch(model, batches, optimizer, scheduler, bar)
            dev = dev_scores([y for _, y in data["dev"]], predict(model, data["dev"], pad, device))
            log.debug("seed %d epoch %d: dev %s", seed, epoch, dev)
            if (
                dev[cfg.metric] > best_dev[cfg.metric]
            ):  # a tie keeps the earlier, less-trained state
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best_dev, best_epoch, stale = dev, epoch, 0
            elif cfg.patience and (stale := stale + 1) >= cfg.patience:
                break
    model.load_state_dict(best)
    if keep is not None:
        _save_classifier(model, tokenizer, keep)
    gold, pred = [y for _, y in data["test"]], predict(model, data["test"], pad, device)
    return SeedRun(
        seed=seed, best_epoch=best_epoch, epochs_run=epoch,
        dev_accuracy=best_dev["accuracy"], dev_macro_f1=best_dev["macro_f1"],
        test_accuracy=accuracy(gold, pred), test_macro_f1=macro_f1(gold, pred),
        seconds=round(time.perf_counter() - start, 2), collapsed=len(set(pred)) == 1,
    )  # fmt: skip


def _progress(cfg: FinetuneConfig, total: int, seed: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, disable=not cfg.progress, desc=f"finetune {task_name(cfg)} seed {seed} lr {cfg.lr:.0e}",
        unit="step", dynamic_ncols=True,
    )  # fmt: skip


# --- the whole job -----------------------------------------------------------------------


def _check(cfg: FinetuneConfig) -> None:
    if cfg.model in PRESETS:
        if not cfg.tokenizer or not cfg.out:
            raise FemlmError(
                f"the preset {cfg.model!r} (random initialisation) needs --tokenizer and --out"
            )
    elif not cfg.model or not Path(cfg.model).expanduser().is_dir():
        raise FemlmError(
            f"model folder not found: {cfg.model!r}; give --model a saved model folder "
            f"or a preset ({', '.join(PRESETS)}) for a baseline without pre-training"
            + hub_hint(cfg.model)
        )
    if cfg.out and Path(cfg.out).is_dir():
        raise FemlmError(f"--out {cfg.out} is a folder; give the path of the JSON file to write")


def task_name(cfg: FinetuneConfig) -> str:
    return task_label(cfg.task or "task")


def finetune(cfg: FinetuneConfig) -> FinetuneResult:
    """Fine-tune ``cfg.model`` on ``cfg.task`` once per seed; write and return the result."""
    from femlm.data.tokenizer import load_tokenizer

    _check(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    splits, how = load_task(cfg)
    splits["train"] = subsample(splits["train"], cfg.max_train_examples)
    labels = label_order({y for _, y in splits["train"]})
    tokenizer = load_tokenizer(tokenizer_source(cfg.tokenizer, cfg.model))
    if tokenizer.pad_token_id is None:
        raise FemlmError("the tokenizer has no padding token; batches need one")
    ids = {y: i for i, y in enumerate(labels)}
    data = {s: _encode(tokenizer, rows, ids, cfg.max_length) for s, rows in splits.items()}
    lr, first, search = _search_lr(cfg, data, labels, tokenizer)
    cfg = replace(cfg, lr=lr)
    runs = [first] + [
        _run_seed(cfg, seed, data, labels, tokenizer, _keep(cfg, seed)) for seed in cfg.seeds[1:]
    ]
    result = FinetuneResult(
        task=cfg.task, model=cfg.model, labels=labels, split=how,
        splits={s: len(rows) for s, rows in splits.items()}, metric=cfg.metric, lr=cfg.lr,
        lr_search=search, runs=runs, config=asdict(cfg),
    )  # fmt: skip
    out = Path(cfg.out) if cfg.out else RunDir(cfg.model).finetune(task_name(cfg))
    write_json(result.to_json(), out)
    result.out = str(out)
    return result


def _search_lr(cfg: FinetuneConfig, data: dict, labels: list, tokenizer: Any) -> tuple:
    """Run the first seed once per candidate learning rate; keep the best on dev.

    Returns ``(chosen lr, its first-seed run, [{lr, dev_accuracy, dev_macro_f1}, ...])``,
    the choice made on ``cfg.metric``. Test scores of the losing candidates are
    never looked at, so the choice cannot leak test information. Ties keep the
    earlier candidate.
    """
    first = cfg.seeds[0]
    if not cfg.lrs:
        return cfg.lr, _run_seed(cfg, first, data, labels, tokenizer, _keep(cfg, first)), []
    tried = []
    for i, lr in enumerate(cfg.lrs):
        keep = _keep(cfg, first, f".lr-{i}")  # the chosen candidate's model is moved in below
        tried.append(_run_seed(replace(cfg, lr=lr), first, data, labels, tokenizer, keep))
        log.info(
            "lr %.0e: dev %s %.4f (seed %d)",
            lr,
            cfg.metric.replace("_", " "),
            tried[-1].dev(cfg.metric),
            first,
        )
    best = max(range(len(tried)), key=lambda i: (tried[i].dev(cfg.metric), -i))
    if cfg.save_model:
        _publish_candidate(Path(cfg.save_model), best, first, len(cfg.lrs))
    search = [
        {"lr": lr, "dev_accuracy": r.dev_accuracy, "dev_macro_f1": r.dev_macro_f1}
        for lr, r in zip(cfg.lrs, tried, strict=True)
    ]
    return cfg.lrs[best], tried[best], search


def _keep(cfg: FinetuneConfig, seed: int, candidate: str = "") -> Path | None:
    if not cfg.save_model:
        return None
    root = Path(cfg.save_model).expanduser()
    return (root / candidate if candidate else root) / f"seed-{seed}"


def _save_classifier(model: nn.Module, tokenizer: Any, folder: Path) -> None:
    """Model, tokenizer and labels in HF layout, moved into place when complete."""
    from femlm.data.tokenizer import save_portable

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_transformers():
        model.save_pretrained(tmp, safe_serialization=True)
    save_portable(tokenizer, tmp, max_positions(model), uses_token_types(model))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _publish_candidate(root: Path, best: int, seed: int, candidates: int) -> None:
    """Move the chosen learning rate's first-seed model to ``root/seed-<s>``; drop the rest."""
    target = root / f"seed-{seed}"
    shutil.rmtree(target, ignore_errors=True)
    (root / f".lr-{best}" / f"seed-{seed}").rename(target)
    for i in range(candidates):
        shutil.rmtree(root / f".lr-{i}", ignore_errors=True)


def format_table(result: FinetuneResult) -> str:
    """A short plain-text table of the per-seed scores and their mean +- std."""
    s, metric = result.splits, result.metric
    lines = [
        f"{result.task}: {len(result.labels)} labels, train {s['train']} / dev {s['dev']}"
        f" / test {s['test']}; model {result.model}; dev metric {metric}",
        f"{'seed':>6} {'epoch':>5} {'dev acc':>8} {'dev F1':>8} {'test acc':>8} {'test F1':>8}"
        f" {'seconds':>8}",
    ]
    for r in result.runs:
        dev_f1 = "n/a" if r.dev_macro_f1 is None else f"{r.dev_macro_f1:.4f}"
        lines.append(
            f"{r.seed:>6} {r.best_epoch:>5} {r.dev_accuracy:>8.4f} {dev_f1:>8} "
            f"{r.test_accuracy:>8.4f} {r.test_macro_f1:>8.4f} {r.seconds:>8.1f}"
        )
    if result.lr_search:
        key = f"dev_{metric}"
        tried = ", ".join(f"{t['lr']:.0e}: {t[key]:.4f}" for t in result.lr_search)
        name = "accuracy" if metric == "accuracy" else "macro-F1"
        lines.append(
            f"lr {result.lr:.0e} chosen on seed {result.runs[0].seed}'s dev {name} ({tried})"
        )
    acc, f1 = result.test_accuracy.show(), result.test_macro_f1.show()
    lines.append(f"test accuracy {acc}, macro-F1 {f1} over {len(result.runs)} seed(s)")
    if note := collapse_note(result.runs):
        lines.append(f"{note} seed(s): those runs predict a single class")
    if result.out:
        lines.append(f"saved to {result.out}")
    return "\n".join(lines)
