"""The training loop: one function, read top to bottom in :func:`pretrain`.

Data order and masks are pure functions of (seed, step): step ``s`` takes the
sequences ``perm_e[i*B : (i+1)*B]`` of epoch ``e = s // steps_per_epoch``, and
the collator keys masks on (seed, epoch, example index, view). Resuming from a
checkpoint therefore needs only the step, the weights, the optimizer and
scheduler states and the RNG state used by dropout; the result is bitwise
equal to an uninterrupted run on CPU. Under torchrun, each rank takes every
``world``-th sequence of the same global step, so masks equal a single
process's with the same global batch.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from femlm import checkpoint as ckpt
from femlm import dist as distributed
from femlm.collator import MaskingCollator
from femlm.config import TrainConfig, load_config, save_config, to_dict
from femlm.errors import FemlmError
from femlm.evaluate import eval_batches_for, evaluate, unigram_loss
from femlm.keyed import mix_ints
from femlm.masking import resolve_views_rate
from femlm.model import build_model, count_parameters, mlm_loss_sum

log = logging.getLogger("femlm")


class MLMObjective(nn.Module):
    """Wraps a masked-LM so DDP sees one forward that returns (loss sum, count)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        loss, count = mlm_loss_sum(self.model, batch)
        return loss, torch.tensor(count)


def pretrain(cfg: TrainConfig, resume: bool = False) -> Path:
    """Pre-train (or continue pre-training) a masked-LM; return the final model folder."""
    d = distributed.init(cfg.device)
    try:
        return _pretrain(cfg, resume, d)
    finally:
        distributed.shutdown(d)


def _pretrain(cfg: TrainConfig, resume: bool, d: distributed.Dist) -> Path:
    check_config(cfg, d.world)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    ckpt_dir = out / "checkpoints"
    start = _resume_point(ckpt_dir, resume) if d.main else None
    torch.manual_seed(cfg.seed)

    from femlm.data import build_blocks, load_tokenizer

    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model)
    if not d.main:
        d.barrier()  # rank 0 tokenises first; the others then read its cache
    blocks = build_blocks(
        cfg.data, tokenizer, cfg.max_length, cfg.cache_dir, cfg.text_field,
        cfg.validation_fraction, seed=0, progress=cfg.progress and d.main,
    )  # fmt: skip
    if d.main:
        d.barrier()
    train_set, eval_set = blocks["train"], blocks["validation"]
    steps_per_epoch = len(train_set) // cfg.batch_size
    if steps_per_epoch == 0:
        raise FemlmError(
            f"the corpus has {len(train_set)} training blocks of {cfg.max_length} tokens, "
            f"fewer than one batch of {cfg.batch_size}; add text or lower --batch-size/--max-length"
        )

    model = build_model(cfg.model, tokenizer, cfg.max_length, cfg.dropout).to(d.device)
    objective: nn.Module = MLMObjective(model)
    if d.active:
        device_ids = [d.device.index] if d.device.type == "cuda" else None
        objective = nn.parallel.DistributedDataParallel(objective, device_ids=device_ids)
    if cfg.compile:
        objective = torch.compile(objective)
    optimizer = _optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg))
    collator = MaskingCollator(
        tokenizer, cfg.strategy, cfg.views, cfg.rate, cfg.mask_prob, cfg.random_prob,
        seed=cfg.seed, return_view_info=False,
    )  # fmt: skip
    eval_batches = eval_batches_for(cfg, tokenizer, eval_set, d.rank, d.world)

    step, elapsed = 0, 0.0
    if d.active:
        start = _broadcast_path(start)
    if start is not None:
        state = ckpt.load_checkpoint(start, model)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if torch.cuda.is_available() and "cuda_rng" in state:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        step = int(state["step"])
        elapsed = float(state.get("elapsed", 0.0))
    metrics = _Metrics(out, d.main, truncate_after=step)
    if d.main and step == 0:
        # The loss of predicting eval targets from training token frequencies:
        # a run that does not go well below it has learnt nothing but unigrams.
        metrics.write(step=0, unigram_loss=unigram_loss(train_set, eval_batches, len(tokenizer)))
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / ckpt.CONFIG_FILE)
        log.info(
            "model %s: %.2fM parameters; %d training blocks (%d steps/epoch), %d eval sequences; %s",
            cfg.model, count_parameters(model) / 1e6, len(train_set), steps_per_epoch,
            sum(len(b["input_ids"]) for b in eval_batches), f"resuming at step {step}" if step else "from step 0",
        )  # fmt: skip

    autocast = _autocast(cfg, d.device)
    bar = _progress(cfg, d, step)
    while step < cfg.max_steps:
        # ---- one optimizer step: every view of every sequence of the step ----
        t0 = time.perf_counter()
        model.train()
        micro = list(_micro_batches(cfg, train_set, collator, step, d))
        local = [float((b["labels"] != -100).sum()) for b in micro]
        total = d.sum([sum(local)])[0]  # predicted tokens of the whole step, all ranks
        loss_sum = 0.0
        for i, batch in enumerate(micro):
            batch = {k: v.to(d.device, non_blocking=True) for k, v in batch.items()}
            sync = nullcontext() if (not d.active or i == len(micro) - 1) else objective.no_sync()
            with sync, autocast:
                loss, _ = objective(batch)
                # DDP averages gradients over ranks; scale so the result is the
                # mean over every predicted token of the step.
                scaled = loss * (d.world / max(total, 1.0))
            _backward(scaled)
            loss_sum += float(loss.detach())
        if cfg.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

        # ---- bookkeeping: logs, evaluation, checkpoints ----
        step_loss = d.sum([loss_sum])[0] / max(total, 1.0)
        tokens = sum(b["input_ids"].numel() for b in micro) * d.world
        seconds = time.perf_counter() - t0
        elapsed += seconds  # training time only, carried across resumes
        rate = tokens / seconds
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{rate:,.0f}")
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            metrics.write(
                step=step, loss=step_loss, lr=scheduler.get_last_lr()[0], tokens_per_s=rate
            )
        if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.max_steps:
            ev = evaluate(model, eval_batches, d, autocast)
            metrics.write(
                step=step, eval_loss=ev, eval_ppl=math.exp(min(ev, 50.0)), elapsed=elapsed
            )
            bar.write(f"step {step}: eval loss {ev:.4f} (ppl {math.exp(min(ev, 50.0)):.1f})")
        if cfg.variance_every and step % cfg.variance_every == 0:
            if d.main:
                metrics.write(step=step, **_variance(model, tokenizer, eval_set, cfg))
            d.barrier()
        if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.max_steps:
            if d.main:
                state = _training_state(step, optimizer, scheduler, elapsed)
                ckpt.save_checkpoint(ckpt_dir, step, model, state, to_dict(cfg))
                ckpt.prune(ckpt_dir, cfg.keep_last)
            d.barrier()
    bar.close()
    final = out / "final"
    if d.main:
        _save_final(model, tokenizer, cfg, final)
        log.info("saved %s (load with AutoModelForMaskedLM.from_pretrained)", final)
    d.barrier()
    return final


def check_config(cfg: TrainConfig, world: int = 1) -> None:
    """Reject impossible settings before any work is done (one-line errors)."""
    resolve_views_rate(cfg.strategy, cfg.views, cfg.rate)
    if not cfg.data:
        raise FemlmError("no training data: give --data FILE [FILE ...]")
    if cfg.batch_size < 1 or cfg.grad_accum < 1 or cfg.max_steps < 1:
        raise FemlmError("batch_size, grad_accum and max_steps must be positive")
    if cfg.batch_size % (cfg.grad_accum * world):
        raise FemlmError(
            f"batch_size {cfg.batch_size} must be divisible by grad_accum x processes "
            f"({cfg.grad_accum} x {world})"
        )
    if cfg.schedule not in ("linear", "cosine", "constant"):
        raise FemlmError(f"schedule must be linear, cosine or constant, got {cfg.schedule!r}")
    if cfg.variance_every and cfg.variance_sequences < 3:
        raise FemlmError("--variance-sequences must be at least 3 (the estimator needs them)")
    if not 0 < cfg.eval_rate < 1:
        raise FemlmError(f"eval_rate must be in (0, 1), got {cfg.eval_rate}")
    m, r = cfg.eval_mask_prob, cfg.eval_random_prob
    if min(m, r) < 0 or m + r > 1:
        raise FemlmError(
            f"eval_mask_prob and eval_random_prob must be >= 0 with a sum <= 1, got {m} and {r}"
        )


def _resume_point(ckpt_dir: Path, resume: bool) -> Path | None:
    found = ckpt.list_checkpoints(ckpt_dir)
    if resume:
        if not found:
            raise FemlmError(f"nothing to resume: no checkpoint in {ckpt_dir}")
        ckpt.verify(found[-1])  # a corrupt newest checkpoint is reported, never skipped
        return found[-1]
    if found:
        raise FemlmError(
            f"{ckpt_dir.parent} already holds checkpoints; pass --resume to continue it "
            "or choose another --out-dir"
        )
    return None


def _broadcast_path(path: Path | None) -> Path | None:
    box = [str(path) if path else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return Path(box[0]) if box[0] else None


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on biases and LayerNorm weights (the usual BERT recipe).
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.dim() < 2 or "LayerNorm" in name else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def _schedule(cfg: TrainConfig):
    warm, total = cfg.warmup_steps, cfg.max_steps

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, total - warm))
        if cfg.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress

    return factor


def step_indices(n: int, batch_size: int, seed: int, step: int) -> tuple[int, list[int]]:
    """(epoch, training-set indices) of the sequences of global step ``step``.

    Each epoch is a fresh permutation keyed on (seed, epoch); the last
    ``n % batch_size`` sequences of an epoch's order are not used in that epoch.
    """
    epoch, within = divmod(step, n // batch_size)
    perm = _epoch_order(n, seed, epoch)
    return epoch, perm[within * batch_size : (within + 1) * batch_size].tolist()


@functools.lru_cache(maxsize=2)
def _epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    g = torch.Generator().manual_seed(int(mix_ints(seed, epoch)) & (2**63 - 1))
    return torch.randperm(n, generator=g)


def _micro_batches(
    cfg: TrainConfig, data: Any, collator: MaskingCollator, step: int, d: distributed.Dist
) -> Iterator[dict[str, Tensor]]:
    epoch, indices = step_indices(len(data), cfg.batch_size, cfg.seed, step)
    mine = indices[d.rank :: d.world]
    collator.set_epoch(epoch)
    size = len(mine) // cfg.grad_accum
    for k in range(cfg.grad_accum):
        chunk = mine[k * size : (k + 1) * size]
        rows = data[chunk]["input_ids"]
        yield collator(
            [{"input_ids": r, "example_index": i} for r, i in zip(rows, chunk, strict=True)]
        )


def _variance(model: nn.Module, tokenizer: Any, eval_set: Any, cfg: TrainConfig) -> dict:
    """Point estimates of the variance terms on the first validation sequences."""
    from femlm.variance import variance_terms

    n = min(cfg.variance_sequences, len(eval_set))
    sequences = [torch.tensor(r) for r in eval_set[list(range(n))]["input_ids"]]
    # The run's K, or the K its rate implies for a one-view baseline.
    views = cfg.views if cfg.views and cfg.views >= 2 else max(2, round(1 / (cfg.rate or 0.15)))
    return variance_terms(model, sequences, tokenizer, views=views, seed=cfg.seed)


def _backward(loss: Tensor) -> None:
    try:
        loss.backward()
    except (torch.OutOfMemoryError, RuntimeError) as err:
        if "memory" in str(err).lower() or "alloc" in str(err).lower():
            raise FemlmError(
                "out of memory: lower --batch-size, raise --grad-accum or --max-length less"
            ) from None
        raise


def _training_state(step: int, optimizer: Any, scheduler: Any, elapsed: float) -> dict[str, Any]:
    state = {
        "step": step,
        "elapsed": elapsed,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def _save_final(model: nn.Module, tokenizer: Any, cfg: TrainConfig, folder: Path) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    save_config(cfg, tmp / ckpt.CONFIG_FILE)
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)


def _autocast(cfg: TrainConfig, device: torch.device) -> Any:
    if not cfg.bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _progress(cfg: TrainConfig, d: distributed.Dist, start: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=cfg.max_steps, initial=start, disable=not (cfg.progress and d.main),
        desc=f"pretrain {cfg.strategy}", unit="step", dynamic_ncols=True,
    )  # fmt: skip


class _Metrics:
    """JSON lines in ``out/metrics.jsonl`` (and TensorBoard when installed), rank 0 only."""

    def __init__(self, out: Path, enabled: bool, truncate_after: int) -> None:
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        if self.path.exists():  # drop lines from after the checkpoint we resume from
            keep = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= truncate_after
            ]
            self.path.write_text("".join(line + "\n" for line in keep))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            pass

    def write(self, step: int, **values: float) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)


def run_from_files(config_path: str | None, overrides: dict[str, Any], resume: bool) -> Path:
    """CLI entry: on ``resume`` the run folder's saved config is the base."""
    if resume and not config_path:
        out = overrides.get("out_dir") or TrainConfig().out_dir
        saved = Path(out) / ckpt.CONFIG_FILE
        if saved.is_file():
            config_path = str(saved)
    return pretrain(load_config(TrainConfig, config_path, overrides), resume=resume)
