"""The training loop, read top to bottom in :func:`_pretrain`.

Data order and masks are pure functions of (seed, step): step ``s`` takes the
blocks :func:`femlm.train.order.step_rows` names, each with its epoch, and
the collator keys masks on (seed, epoch, example index, view). Resuming from a
checkpoint therefore needs only the step, the weights, the optimizer and
scheduler states and the RNG state used by dropout; the result is bitwise
equal to an uninterrupted run on CPU. Under torchrun, each rank takes every
``world``-th sequence of the same global step, so masks equal a single
process's with the same global batch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from femlm.attention import use_fused_attention
from femlm.config import TrainConfig, check_config
from femlm.errors import FemlmError
from femlm.masking.collator import MaskingCollator
from femlm.masking.strategies import WORD_LEVEL
from femlm.model import (
    build_model,
    count_parameters,
    mlm_loss_sum,
    tokenizer_source,
    weights_fingerprint,
)
from femlm.runs import RunDir, RunLock
from femlm.schema import save_config, to_dict
from femlm.train import checkpoint as ckpt
from femlm.train import dist as distributed
from femlm.train.evaluate import eval_batches_for, evaluate, test_batches_for, unigram_loss
from femlm.train.export import save_final
from femlm.train.metrics import MetricsLog
from femlm.train.optim import build_optimizer, lr_factor
from femlm.train.order import epoch_steps, epochs_done, step_rows, steps_per_epoch
from femlm.train.precision import (
    autocast,
    check_precision,
    enable_gradient_checkpointing,
    grad_scaler,
    resolve_auto_bf16,
)
from femlm.train.resume import config_for, resume_point

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
    check_config(cfg, distributed.world_size())  # bad input stops every rank before they meet
    check_precision(cfg)
    d = distributed.init(cfg.device)
    try:
        with RunLock(cfg.out_dir) if d.main else nullcontext():
            return _pretrain(cfg, resume, d)
    finally:
        distributed.shutdown(d)


@dataclass(kw_only=True)
class _Run:
    """What the loop reads and updates; built, or restored, by :func:`_setup`."""

    model: nn.Module
    objective: nn.Module  # the model under DDP and torch.compile, when enabled
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    collator: MaskingCollator
    train_set: Any
    eval_set: Any
    eval_batches: list[dict[str, Tensor]]
    test_batches: list[list[dict[str, Tensor]]]  # one list per draw of the test positions
    tokenizer: Any
    metrics: MetricsLog
    autocast: Any  # bf16 or fp16 autocast, or a null context
    scaler: torch.amp.GradScaler  # fp16 loss scaling; passes through when disabled
    step: int
    elapsed: float


def _pretrain(cfg: TrainConfig, resume: bool, d: distributed.Dist) -> Path:
    run = _setup(cfg, resume, d)
    bar = _progress(cfg, d, run.step)
    while run.step < cfg.max_steps:
        t0 = time.perf_counter()
        loss_sum, total, tokens = _train_step(cfg, d, run)
        run.step += 1
        step_loss = d.sum([loss_sum])[0] / max(total, 1.0)
        seconds = time.perf_counter() - t0
        run.elapsed += seconds  # training time only, carried across resumes
        _log(cfg, run, bar, step_loss, tokens / seconds)
        if _evaluation_due(cfg, run):
            _evaluate(cfg, d, run, bar)
        if cfg.variance_every and run.step % cfg.variance_every == 0:
            _probe(cfg, d, run)
        if _checkpoint_due(cfg, run):
            _checkpoint(cfg, d, run)
    bar.close()
    run.metrics.close()
    final = RunDir(cfg.out_dir).final
    if d.main:
        save_final(run.model, run.tokenizer, cfg, final)
        log.info("saved %s (load with AutoModelForMaskedLM.from_pretrained)", final)
    d.barrier()
    return final


def _setup(cfg: TrainConfig, resume: bool, d: distributed.Dist) -> _Run:
    """Data, model, optimizer and metrics; the newest checkpoint's state on ``resume``."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = RunDir(cfg.out_dir)
    start = resume_point(out, resume) if d.main else None
    if not resume:  # a resumed run keeps the precision its saved config records
        resolve_auto_bf16(cfg, d.device)
    torch.manual_seed(cfg.seed)

    from femlm.data.readers import resolve_inputs
    from femlm.data.tokenizer import load_tokenizer

    resolve_inputs(cfg.data)  # a missing corpus is named before the tokenizer is looked for
    tokenizer = load_tokenizer(tokenizer_source(cfg.tokenizer, cfg.model))
    train_set, eval_set = _blocks(cfg, d, tokenizer)
    if cfg.epochs is not None:  # the schedule, the bar and the last step follow from here
        cfg.max_steps = epoch_steps(cfg.epochs, len(train_set), cfg.batch_size, cfg.epoch_tail)
    model, objective = _model(cfg, d, tokenizer)
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))
    collator = MaskingCollator(tokenizer, spec=cfg.masking, seed=cfg.seed, epoch=0)
    eval_batches = eval_batches_for(cfg, tokenizer, eval_set, d.rank, d.world)
    test_batches = test_batches_for(cfg, tokenizer, eval_set, d.rank, d.world)

    if d.active:
        start = _broadcast_path(start)
    scaler = grad_scaler(cfg, d.device)
    step, elapsed = ckpt.restore(start, model, optimizer, scheduler, scaler) if start else (0, 0.0)
    # a fresh start keeps nothing of a run killed before its first checkpoint
    metrics = MetricsLog(out, d.main, step if start else -1, cfg.report_to, to_dict(cfg))
    if d.main and step == 0:
        # The loss of predicting eval targets from training token frequencies:
        # a run that does not go well below it has learnt nothing but unigrams.
        unigram = unigram_loss(train_set, eval_batches, len(tokenizer))
        metrics.write(
            step=0, unigram_loss=unigram, train_blocks=len(train_set),
            start_weights=weights_fingerprint(model),
        )  # fmt: skip
    if d.main:
        if step == 0:  # a resumed run keeps the record it was started with
            save_config(cfg, out.config)
        log.info(
            "model %s: %.2fM parameters; %d training blocks (%g steps/epoch), %d eval sequences%s; %s",
            cfg.model, count_parameters(model) / 1e6, len(train_set), round(steps_per_epoch(len(train_set), cfg.batch_size, cfg.epoch_tail), 2),
            sum(len(b["input_ids"]) for b in eval_batches), _test_note(test_batches), f"resuming at step {step}" if step else "from step 0",
        )  # fmt: skip
    return _Run(
        model=model, objective=objective, optimizer=optimizer, scheduler=scheduler,
        collator=collator, train_set=train_set, eval_set=eval_set, eval_batches=eval_batches,
        test_batches=test_batches, tokenizer=tokenizer, metrics=metrics,
        autocast=autocast(cfg, d.device), scaler=scaler, step=step, elapsed=elapsed,
    )  # fmt: skip


def _model(cfg: TrainConfig, d: distributed.Dist, tokenizer: Any) -> tuple[nn.Module, nn.Module]:
    """The encoder, and the objective the step calls (wrapped for DDP and compile)."""
    model = build_model(cfg.model, tokenizer, cfg.max_length, cfg.dropout).to(d.device)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if cfg.fused_attention:
        use_fused_attention(model, cfg.model)
    objective: nn.Module = MLMObjective(model)
    if d.active:
        device_ids = [d.device.index] if d.device.type == "cuda" else None
        objective = nn.parallel.DistributedDataParallel(objective, device_ids=device_ids)
    if cfg.compile:
        objective = torch.compile(objective)
    return model, objective


def _blocks(cfg: TrainConfig, d: distributed.Dist, tokenizer: Any) -> tuple[Any, Any]:
    """The (train, evaluation) blocks; at least one batch of training blocks."""
    from femlm.data.blocks import run_blocks

    if not d.main:
        d.barrier()  # rank 0 tokenises first; the others then read its cache
    train, evaluation = run_blocks(cfg, tokenizer, progress=cfg.progress and d.main)
    if d.main:
        d.barrier()
    # Word ids only where the strategy reads them: every column read costs a list per row.
    wanted = ["input_ids"]
    if cfg.strategy in WORD_LEVEL and "word_ids" in train.column_names:
        wanted.append("word_ids")
    train_set = train.select_columns(wanted)
    if len(train_set) < cfg.batch_size:
        raise FemlmError(
            f"the corpus has {len(train_set)} training blocks of {cfg.max_length} tokens, "
            f"fewer than one batch of {cfg.batch_size}; add text or lower --batch-size/--max-length"
        )
    return train_set, evaluation


def _test_note(test_batches: list[list[dict[str, Tensor]]]) -> str:
    if not test_batches:
        return ""
    n = sum(len(b["input_ids"]) for b in test_batches[0])
    return f" and {n} test sequences x {len(test_batches)} draws"


def _train_step(cfg: TrainConfig, d: distributed.Dist, run: _Run) -> tuple[float, float, int]:
    """One optimizer step over every view of every sequence of step ``run.step``.

    Returns this rank's loss sum and the step's predicted and read tokens, all ranks.
    """
    run.model.train()
    micro = list(_micro_batches(cfg, run.train_set, run.collator, run.step, d))
    local = [float((b["labels"] != -100).sum()) for b in micro]
    total = d.sum([sum(local)])[0]  # predicted tokens of the whole step, all ranks
    loss_sum = 0.0
    for i, batch in enumerate(micro):
        batch = {k: v.to(d.device, non_blocking=True) for k, v in batch.items()}
        last = not d.active or i == len(micro) - 1  # DDP all-reduces on the last one only
        sync = nullcontext() if last else run.objective.no_sync()
        with sync, run.autocast:
            loss, _ = run.objective(batch)
            # DDP averages gradients over ranks; scale so the result is the
            # mean over every predicted token of the step.
            scaled = loss * (d.world / max(total, 1.0))
        _backward(run.scaler.scale(scaled))
        loss_sum += float(loss.detach())
    if cfg.clip_grad > 0:
        run.scaler.unscale_(run.optimizer)  # clip the true gradients, not the scaled ones
        norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip_grad)
    elif not run.scaler.is_enabled():  # the norm alone: a factor of 1.0 changes no bit
        norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), math.inf)
    # fp16 overflows are the scaler's to skip; any other non-finite value ends the run
    grads_ok = run.scaler.is_enabled() or math.isfinite(float(norm))
    _stop_unless_finite(cfg, d, run.step + 1, loss_sum, grads_ok)
    run.scaler.step(run.optimizer)  # skipped when fp16 gradients overflowed
    run.scaler.update()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return loss_sum, total, sum(b["input_ids"].numel() for b in micro) * d.world


def _stop_unless_finite(
    cfg: TrainConfig, d: distributed.Dist, step: int, loss: float, grads_ok: bool
) -> None:
    """A FemlmError, on every rank, when the step's loss or gradient norm is not finite:
    the optimizer has not stepped, so the last checkpoint is the last good state."""
    bad = d.sum([float(not (math.isfinite(loss) and grads_ok))])[0]
    if not bad:
        return
    found = ckpt.list_checkpoints(RunDir(cfg.out_dir).checkpoints)
    kept = f"its last good checkpoint is {found[-1].name}" if found else "no checkpoint was written"
    raise FemlmError(
        f"step {step}: the training loss or gradient norm is not finite (lr {cfg.lr:g}); the "
        f"run stopped without final/ and {kept}: lower --lr, or check the data and --fp16/--bf16"
    )


def _log(cfg: TrainConfig, run: _Run, bar: Any, loss: float, rate: float) -> None:
    """The progress bar, and the training loss every ``log_every`` steps."""
    bar.update(1)
    bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{rate:,.0f}")
    if run.step % cfg.log_every == 0 or run.step == cfg.max_steps:
        lr = run.scheduler.get_last_lr()[0]
        run.metrics.write(step=run.step, loss=loss, lr=lr, tokens_per_s=rate)


def _epoch_end(cfg: TrainConfig, run: _Run) -> bool:
    """With ``--epochs``, whether step ``run.step`` completed an epoch."""
    if not cfg.epochs:
        return False
    n, b, tail = len(run.train_set), cfg.batch_size, cfg.epoch_tail
    return epochs_done(run.step, n, b, tail) > epochs_done(run.step - 1, n, b, tail)


def _evaluation_due(cfg: TrainConfig, run: _Run) -> bool:
    every = cfg.eval_every and run.step % cfg.eval_every == 0
    return bool(every) or run.step == cfg.max_steps or _epoch_end(cfg, run)


def _checkpoint_due(cfg: TrainConfig, run: _Run) -> bool:
    every = cfg.save_every and run.step % cfg.save_every == 0
    return bool(every) or run.step == cfg.max_steps or _epoch_end(cfg, run)


def _evaluate(cfg: TrainConfig, d: distributed.Dist, run: _Run, bar: Any) -> None:
    """The dev loss on the fixed evaluation set, and the test set's when there is one."""
    ev = evaluate(run.model, run.eval_batches, d, run.autocast)
    ppl = math.exp(min(ev, 50.0))
    run.metrics.write(
        step=run.step, eval_loss=ev, eval_ppl=ppl, elapsed=run.elapsed, **_test(d, run)
    )
    if d.main:  # tqdm's write prints even where the bar is disabled
        bar.write(f"step {run.step}: eval loss {ev:.4f} (ppl {ppl:.1f})")


def _probe(cfg: TrainConfig, d: distributed.Dist, run: _Run) -> None:
    """The variance terms of ``--variance-every``, probed on rank 0."""
    if d.main:
        from femlm.variance.during import terms_during_training

        terms = terms_during_training(run.model, run.tokenizer, run.eval_set, cfg)
        run.metrics.write(step=run.step, **terms.to_row())
    d.barrier()


def _checkpoint(cfg: TrainConfig, d: distributed.Dist, run: _Run) -> None:
    """Save the step's checkpoint on rank 0, keeping the newest ``keep_last``."""
    if d.main:
        ckpt_dir = RunDir(cfg.out_dir).checkpoints
        state = ckpt.training_state(run.step, run.optimizer, run.scheduler, run.elapsed)
        if run.scaler.is_enabled():
            state["scaler"] = run.scaler.state_dict()
        ckpt.save_checkpoint(ckpt_dir, run.step, run.model, state, to_dict(cfg), run.tokenizer)
        ckpt.prune(ckpt_dir, cfg.keep_last)
    d.barrier()


def _broadcast_path(path: Path | None) -> Path | None:
    box = [str(path) if path else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return Path(box[0]) if box[0] else None


def _test(d: distributed.Dist, run: _Run) -> dict[str, Any]:
    """The test set's loss, the mean over its draws of positions, and each draw's."""
    if not run.test_batches:
        return {}
    losses = [evaluate(run.model, draw, d, run.autocast) for draw in run.test_batches]
    return {"test_loss": sum(losses) / len(losses), "test_losses": losses}


def _micro_batches(
    cfg: TrainConfig, data: Any, collator: MaskingCollator, step: int, d: distributed.Dist
) -> Iterator[dict[str, Tensor]]:
    rows = step_rows(len(data), cfg.batch_size, cfg.seed, step, cfg.epoch_tail)
    mine = rows[d.rank :: d.world]
    epochs = {epoch for epoch, _ in mine}
    collator.set_epoch(min(epochs))
    size = len(mine) // cfg.grad_accum
    for k in range(cfg.grad_accum):
        chunk = mine[k * size : (k + 1) * size]
        columns = data[[i for _, i in chunk]]  # input_ids (and word_ids if read)
        features = [{key: v[j] for key, v in columns.items()} for j in range(len(chunk))]
        for f, (epoch, i) in zip(features, chunk, strict=True):
            f["example_index"] = i
            if len(epochs) > 1:  # a step across an epoch's end: each row keys on its own
                f["epoch"] = epoch
        yield collator(features)


def _backward(loss: Tensor) -> None:
    try:
        loss.backward()
    except (torch.OutOfMemoryError, RuntimeError) as err:
        if "memory" in str(err).lower() or "alloc" in str(err).lower():
            raise FemlmError(
                "out of memory: lower --batch-size, raise --grad-accum or --max-length less"
            ) from None
        raise


def _progress(cfg: TrainConfig, d: distributed.Dist, start: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=cfg.max_steps, initial=start, disable=not (cfg.progress and d.main),
        desc=f"pretrain {cfg.strategy}", unit="step", dynamic_ncols=True,
    )  # fmt: skip


def run_from_files(config_path: str | None, overrides: dict[str, Any], resume: bool) -> Path:
    """CLI entry: on ``resume`` the run folder's saved config, which only settings
    that leave the run unchanged may override (:mod:`femlm.train.resume`)."""
    return pretrain(config_for(config_path, overrides, resume), resume=resume)
