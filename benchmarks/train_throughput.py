"""Training throughput: femlm's step vs transformers.Trainer and a bare loop, one run.

    python benchmarks/train_throughput.py [--steps 12] [--batch 8] [--views 7]

Same model (the ``tiny`` preset with a 30,522-token vocabulary), same rows per
step (B sequences x K views for femlm; B*K sequences for the HF recipe), same
machine. Reports input tokens per second (rows x length / step time, median
over the steps after two warm-up steps), then the ratios, last.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from synthetic import made_up_corpus, made_up_tokenizer, median_logged_rate, median_step_seconds

from femlm.config import TrainConfig
from femlm.masking.collator import MaskingCollator
from femlm.model import build_model
from femlm.train.loop import pretrain

VOCAB = 30522
LENGTH = 128


def _femlm(tmp: Path, tok_dir: Path, corpus: Path, args) -> float:
    out = tmp / "femlm"
    cfg = TrainConfig(
        data=[str(corpus)], tokenizer=str(tok_dir), model="tiny", max_length=LENGTH,
        batch_size=args.batch, views=args.views, max_steps=args.steps, warmup_steps=1,
        eval_every=0, eval_sequences=8, save_every=0, log_every=1, out_dir=str(out),
        cache_dir=str(tmp / "cache"), progress=False, threads=args.threads,
    )  # fmt: skip
    pretrain(cfg)
    return median_logged_rate(out / "metrics.jsonl")


def _bare(tok, args) -> float:
    """Forward/backward/step on one pre-masked batch: the floor for femlm's loop."""
    torch.manual_seed(0)
    model = build_model("tiny", tok, LENGTH)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    feats = [
        {"input_ids": torch.randint(5, VOCAB, (LENGTH,)), "example_index": i}
        for i in range(args.batch)
    ]
    batch = MaskingCollator(tok, views=args.views, return_view_info=False)(feats)
    return batch["input_ids"].numel() / median_step_seconds(model, opt, batch, args.steps, clip=1.0)


def _hf(tmp: Path, tok, args) -> float:
    """The recipe people run today: Trainer + DataCollatorForLanguageModeling."""
    from transformers import (
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    rows = args.batch * args.views
    torch.manual_seed(0)
    model = build_model("tiny", tok, LENGTH)
    data = [
        {"input_ids": torch.randint(5, VOCAB, (LENGTH,)).tolist()} for _ in range(rows * args.steps)
    ]
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t0)

    targs = TrainingArguments(
        output_dir=str(tmp / "hf"), per_device_train_batch_size=rows, max_steps=args.steps,
        learning_rate=1e-4, report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no",
        dataloader_num_workers=0, disable_tqdm=True, max_grad_norm=1.0,
    )  # fmt: skip
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    Trainer(
        model=model, args=targs, train_dataset=data, data_collator=collator, callbacks=[Clock()]
    ).train()
    return rows * LENGTH / statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8, help="sequences per femlm step")
    parser.add_argument("--views", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        tok = made_up_tokenizer(tmp / "tok", VOCAB)
        made_up_corpus(tmp / "corpus.txt", docs=args.batch * args.steps * 2, vocab=VOCAB)
        results = {
            "HF Trainer + DataCollatorForLanguageModeling": _hf(tmp, tok, args),
            "bare loop on pre-masked tensors": _bare(tok, args),
            "femlm pretrain (fully-explored)": _femlm(tmp, tmp / "tok", tmp / "corpus.txt", args),
        }
    rows = args.batch * args.views
    print(f"# tiny preset, vocab {VOCAB}, {rows} rows x {LENGTH} tokens per step, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    print(f"{'what':48s} {'tokens/s':>10s}")
    for name, rate in results.items():
        print(f"{name:48s} {rate:10,.0f}")
    ours = results["femlm pretrain (fully-explored)"]
    print()
    print(
        f"femlm / bare loop: {ours / results['bare loop on pre-masked tensors']:.3f} (target >= 0.95)"
    )
    print(
        f"femlm / HF recipe: {ours / results['HF Trainer + DataCollatorForLanguageModeling']:.2f}x (target >= 1.5x)"
    )


if __name__ == "__main__":
    main()
