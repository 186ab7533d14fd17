"""femlm's training step against this CPU's practical limit, at real sizes.

    python benchmarks/limit.py [--sizes tiny mini small] [--lengths 128 512] [--threads 1]

Per (preset, length), in a fresh process each (so its peak resident memory is its
own, read by the parent from wait4):

* femlm's loop (``pretrain``: standard masking at 0.15, AdamW, grad clipping),
  the median tokens/s over the logged steps after two warm-up steps;
* the training FLOP of a token, counted from the model's shapes: 3 x (forward
  matmuls) with forward = L x (8H^2 + 4HI + 4TH) per token plus the head only at
  the predicted positions, r x (2H^2 + 2HV) (``mlm_loss_sum``);
* a matrix-multiply microbenchmark of the same model's own forward shapes
  (projections, feed-forward, attention scores and values, the head), timed in
  the same process: the practical limit of this CPU for this model;
* achieved FLOP/s (tokens/s x FLOP/token) and its ratio to that limit.

Then bf16 autocast against fp32 (femlm's ``bf16`` setting), femlm's fused
attention for the rotary presets against transformers' eager RoFormer attention
(``fused_attention``; RoFormer has no SDPA path in transformers), and BERT's SDPA
attention against eager, each measured, never assumed. Prints the CPU model and the flags
that decide bf16 (avx512_bf16, amx_bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
RATE, VOCAB, TOKENS_PER_STEP = 0.15, 30522, 3584  # 28 x 128 = 7 x 512


def cpu_description() -> tuple[str, list[str]]:
    """The CPU model and which of the flags that matter for bf16 it has."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln), "?"
    )
    flags = next(
        (ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []
    )
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma")
    return model, [f for f in wanted if f in flags]


def flop_per_token(
    layers: int, hidden: int, inter: int, length: int, vocab: int, rate: float
) -> float:
    """Training FLOP of one input token (multiply-adds x 2; backward = 2 x forward)."""
    body = layers * (8 * hidden**2 + 4 * hidden * inter + 4 * length * hidden)
    head = rate * (2 * hidden**2 + 2 * hidden * vocab)
    return 3.0 * (body + head)


def matmul_limit(
    layers: int,
    hidden: int,
    inter: int,
    heads: int,
    length: int,
    rows: int,
    vocab: int,
    rate: float,
    dtype: torch.dtype = torch.float32,
    repeats: int = 3,
) -> float:
    """FLOP/s of the model's own forward matmuls on this CPU: each shape timed alone
    (best of ``repeats``), weighted by how often a step runs it (L times a layer's,
    once the head's): sum(count x FLOP) / sum(count x seconds)."""
    n, d, b = rows * length, hidden // heads, rows * heads
    masked = max(1, round(rate * n))
    mm = [(layers, (n, hidden), (hidden, 3 * hidden)), (layers, (n, hidden), (hidden, hidden)),
          (layers, (n, hidden), (hidden, inter)), (layers, (n, inter), (inter, hidden)),
          (1, (masked, hidden), (hidden, hidden)), (1, (masked, hidden), (hidden, vocab))]  # fmt: skip
    ops = [(c, 2 * x[0] * x[1] * y[1], torch.randn(x, dtype=dtype), torch.randn(y, dtype=dtype))
           for c, x, y in mm]  # fmt: skip
    scores = (torch.randn(b, length, d, dtype=dtype), torch.randn(b, d, length, dtype=dtype))
    values = (torch.randn(b, length, length, dtype=dtype), torch.randn(b, length, d, dtype=dtype))
    ops += [
        (layers, 2 * b * length * length * d, *scores),
        (layers, 2 * b * length * length * d, *values),
    ]
    flops = seconds = 0.0
    for count, f, x, y in ops:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.matmul(x, y)
            best = min(best, time.perf_counter() - t0)
        flops, seconds = flops + count * f, seconds + count * best
    return flops / seconds


def one(
    size: str, length: int, threads: int, steps: int, bf16: bool,
    device: str = "cpu", compile: bool = False, tokens: int = TOKENS_PER_STEP,
    fused: bool = False,
) -> dict:  # fmt: skip
    """femlm's loop and the matmul limit for one configuration (run in a child process)."""
    sys.path.insert(0, str(HERE))
    from synthetic import made_up_corpus, made_up_tokenizer, median_logged_rate

    from femlm.config import TrainConfig
    from femlm.model import PRESETS
    from femlm.train.loop import pretrain

    torch.set_num_threads(threads)
    p = PRESETS[size]
    rows = tokens // length
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        made_up_tokenizer(tmp / "tok", VOCAB)
        made_up_corpus(tmp / "corpus.txt", docs=rows * (steps + 2) * length // 40, vocab=VOCAB)
        cfg = TrainConfig(
            data=[str(tmp / "corpus.txt")], tokenizer=str(tmp / "tok"), model=size,
            max_length=length, batch_size=rows, rate=RATE, max_steps=steps, warmup_steps=1,
            eval_every=0, eval_sequences=8, save_every=0, log_every=1, out_dir=str(tmp / "run"),
            cache_dir=str(tmp / "cache"), progress=False, threads=threads, bf16=bf16,
            device=device, compile=compile, validation_fraction=0.02, fused_attention=fused,
        )  # fmt: skip
        pretrain(cfg)
        tokens_per_s = median_logged_rate(tmp / "run" / "metrics.jsonl")
    fpt = flop_per_token(p.layers, p.hidden, p.intermediate, length, VOCAB, RATE)
    dtype = torch.bfloat16 if bf16 else torch.float32
    limit = (  # a GPU's limit is its spec sheet's peak (scripts/gpu_check.py)
        matmul_limit(p.layers, p.hidden, p.intermediate, p.heads, length, rows, VOCAB, RATE, dtype)
        if device == "cpu"
        else None
    )
    return {"size": size, "length": length, "rows": rows, "bf16": bf16, "fused_attention": fused,
            "tokens_per_s": tokens_per_s,
            "flop_per_token": fpt, "achieved_flops": tokens_per_s * fpt, "matmul_flops": limit}  # fmt: skip


def _masked_batch(length: int) -> tuple[Any, dict]:
    """The made-up tokenizer and one batch of TOKENS_PER_STEP random tokens masked at
    RATE; then ``torch.manual_seed(0)``, so that the models built next start the same."""
    sys.path.insert(0, str(HERE))
    from synthetic import made_up_tokenizer

    from femlm.masking.collator import MaskingCollator

    with tempfile.TemporaryDirectory() as d:
        tok = made_up_tokenizer(Path(d) / "tok", VOCAB)
    rows = TOKENS_PER_STEP // length
    feats = [
        {"input_ids": torch.randint(5, VOCAB, (length,)), "example_index": i} for i in range(rows)
    ]
    batch = MaskingCollator(tok, strategy="random", rate=RATE, return_view_info=False)(feats)
    torch.manual_seed(0)
    return tok, batch


def attention(size: str, length: int, threads: int, steps: int, impl: str) -> dict:
    """fwd + bwd + AdamW of the BERT preset on one pre-masked batch, eager or SDPA."""
    sys.path.insert(0, str(HERE))
    from synthetic import median_step_seconds
    from transformers import AutoModelForMaskedLM

    from femlm.model import preset_config

    torch.set_num_threads(threads)
    tok, batch = _masked_batch(length)
    config = preset_config(f"bert-{size}", tok, length)
    model = AutoModelForMaskedLM.from_config(config, attn_implementation=impl)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rows = TOKENS_PER_STEP // length
    seconds = median_step_seconds(model, opt, batch, steps)
    return {"size": f"bert-{size}", "length": length, "attention": impl,
            "tokens_per_s": rows * length / seconds}  # fmt: skip


def fused_ab(size: str, length: int, threads: int, steps: int) -> dict:
    """The preset's fwd + bwd + AdamW step, eager and fused attention (femlm's for the
    rotary presets, transformers' SDPA for ``bert-*``) from the same weights, alternated
    step by step in one process (so that a busy machine slows both alike); the median
    of each after two warm-up rounds."""
    import copy
    import statistics

    sys.path.insert(0, str(HERE))
    from synthetic import median_step_seconds
    from transformers import AutoModelForMaskedLM

    from femlm.attention import use_fused_attention
    from femlm.model import preset_config

    torch.set_num_threads(threads)
    tok, batch = _masked_batch(length)
    config = preset_config(size, tok, length)
    if size.startswith("bert-"):  # transformers' own SDPA path against its eager one
        eager = AutoModelForMaskedLM.from_config(config, attn_implementation="eager")
        fused = AutoModelForMaskedLM.from_config(config, attn_implementation="sdpa")
        fused.load_state_dict(eager.state_dict())
    else:
        eager = AutoModelForMaskedLM.from_config(config)
        fused = copy.deepcopy(eager)
        use_fused_attention(fused)
    rows = TOKENS_PER_STEP // length
    opts = {m: torch.optim.AdamW(m.parameters(), lr=1e-4) for m in (eager, fused)}
    times: dict = {eager: [], fused: []}
    for _ in range(steps + 2):
        for m in (eager, fused):
            times[m].append(median_step_seconds(m, opts[m], batch, 1, warmup=0))
    e, f = (statistics.median(times[m][2:]) for m in (eager, fused))
    return {"size": size, "length": length, "eager_tokens_per_s": rows * length / e,
            "fused_tokens_per_s": rows * length / f, "fused_over_eager": e / f}  # fmt: skip


def child(kind: str, *args: str, threads: int, steps: int, script: str = __file__) -> dict:
    """Run one measurement in a fresh process of ``script`` (this file, or a benchmark
    built on it); its result and its peak resident memory."""
    cmd = [
        sys.executable,
        script,
        "--child",
        kind,
        *args,
        "--threads",
        str(threads),
        "--steps",
        str(steps),
    ]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read().decode()
    if status != 0:
        raise SystemExit(f"{kind} {' '.join(args)} failed (status {status})")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_mib": usage.ru_maxrss / 1024}


def fused_ab_table(sizes: list[str], lengths: list[int], kw: dict) -> list[dict]:
    rows = [child("fused-ab", s, str(n), "fp32", **kw) for s in sizes for n in lengths]
    print("\nfused against eager attention alternated step by step in one process "
          "(fwd + bwd + AdamW, one pre-masked batch):")  # fmt: skip
    for r in rows:
        print(f"  {r['size']:8s} {r['length']:4d}: eager {r['eager_tokens_per_s']:8,.0f}, fused "
              f"{r['fused_tokens_per_s']:8,.0f} tokens/s: fused / eager {r['fused_over_eager']:.2f}")  # fmt: skip
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "mini", "small"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[128, 512])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8, help="logged steps per configuration")
    parser.add_argument(
        "--bf16-sizes", nargs="*", default=["tiny"], help="bf16 against fp32 at 128"
    )
    parser.add_argument(
        "--fused-sizes", nargs="*", default=["tiny", "mini", "small"],
        help="fused against eager attention (femlm's loop, every length)",
    )  # fmt: skip
    parser.add_argument(
        "--attention-size", default="mini", help="the BERT preset for SDPA vs eager"
    )
    parser.add_argument(
        "--fused-ab-only", action="store_true",
        help="only the alternated fused/eager comparison of the --fused-sizes",
    )  # fmt: skip
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write every row to this JSON file")
    return parser


def _as_child(args: argparse.Namespace) -> dict:
    """One configuration, measured in this process (the parent reads its JSON line)."""
    kind, size, length, flag = args.child
    if kind == "fused-ab":
        return fused_ab(size, int(length), args.threads, args.steps)
    if kind == "loop":
        return one(size, int(length), args.threads, args.steps, flag == "bf16",
                   fused=flag == "fused")  # fmt: skip
    return attention(size, int(length), args.threads, args.steps, flag)


def fp32_table(sizes: list[str], lengths: list[int], kw: dict) -> list[dict]:
    rows = [child("loop", s, str(n), "fp32", **kw) for s in sizes for n in lengths]
    print(f"{'preset':8s} {'len':>4s} {'tokens/s':>9s} {'GFLOP/tok':>9s} {'GFLOP/s':>8s} "
          f"{'matmul GFLOP/s':>14s} {'ratio':>6s} {'peak MiB':>9s}")  # fmt: skip
    for r in rows:
        r["ratio"] = r["achieved_flops"] / r["matmul_flops"]
        print(f"{r['size']:8s} {r['length']:4d} {r['tokens_per_s']:9,.0f} {r['flop_per_token'] / 1e9:9.4f} "
              f"{r['achieved_flops'] / 1e9:8.1f} {r['matmul_flops'] / 1e9:14.1f} {r['ratio']:6.2f} "
              f"{r['peak_rss_mib']:9,.0f}")  # fmt: skip
    return rows


def bf16_table(sizes: list[str], fp32: list[dict], kw: dict) -> list[dict]:
    rows = [child("loop", s, "128", "bf16", **kw) for s in sizes]
    print("\nbf16 autocast against fp32 (femlm's loop, 128 tokens):")
    for r in rows:
        ref = next(x for x in fp32 if x["size"] == r["size"] and x["length"] == 128)
        print(f"  {r['size']:8s} bf16 {r['tokens_per_s']:9,.0f} tokens/s = {r['tokens_per_s'] / ref['tokens_per_s']:.2f} x fp32; "
              f"bf16 matmul limit {r['matmul_flops'] / 1e9:.1f} GFLOP/s = {r['matmul_flops'] / ref['matmul_flops']:.2f} x fp32's")  # fmt: skip
    return rows


def fused_table(sizes: list[str], lengths: list[int], eager: list[dict], kw: dict) -> list[dict]:
    rows = [child("loop", s, str(n), "fused", **kw) for s in sizes for n in lengths]
    print("\nfused attention (fused_attention) against eager, femlm's loop, fp32:")
    for r in rows:
        r["ratio"] = r["achieved_flops"] / r["matmul_flops"]
        ref = next(x for x in eager if x["size"] == r["size"] and x["length"] == r["length"])
        print(f"  {r['size']:8s} {r['length']:4d}: {r['tokens_per_s']:9,.0f} tokens/s = "
              f"{r['tokens_per_s'] / ref['tokens_per_s']:.2f} x eager; {r['ratio']:.2f} of the "
              f"practical limit; peak {r['peak_rss_mib']:,.0f} MiB")  # fmt: skip
    return rows


def attention_table(size: str, lengths: list[int], kw: dict) -> list[dict]:
    rows = [child("attention", size, str(n), i, **kw) for n in lengths for i in ("eager", "sdpa")]
    print(f"\nattention on BERT-{size} (a bare fwd + bwd + AdamW step):")
    for n in lengths:
        e, s = (
            next(r for r in rows if r["length"] == n and r["attention"] == i)
            for i in ("eager", "sdpa")
        )
        print(f"  {n:4d} tokens: eager {e['tokens_per_s']:8,.0f}, sdpa {s['tokens_per_s']:8,.0f} tokens/s: sdpa / eager {s['tokens_per_s'] / e['tokens_per_s']:.2f}")  # fmt: skip
    return rows


def main() -> None:
    args = _parser().parse_args()
    if args.steps < 3:  # the median is taken after two warm-up steps
        raise SystemExit(f"limit.py: --steps must be at least 3, got {args.steps}")
    if args.child:
        print(json.dumps(_as_child(args)))
        return
    model, flags = cpu_description()
    kw = {"threads": args.threads, "steps": args.steps}
    header = {"cpu": model, "flags": flags, "threads": args.threads, "torch": torch.__version__}
    print(
        f"# {model}; flags: {' '.join(flags)}; {args.threads} thread(s), torch {torch.__version__}"
    )
    print(f"# {TOKENS_PER_STEP} tokens a step (28 x 128 or 7 x 512), rate {RATE}, vocab {VOCAB}")
    if args.fused_ab_only:
        ab = fused_ab_table(args.fused_sizes, args.lengths, kw)
        if args.json:
            Path(args.json).write_text(json.dumps({**header, "fused_ab": ab}, indent=2) + "\n")
        return
    rows = fp32_table(args.sizes, args.lengths, kw)
    bf16 = bf16_table(args.bf16_sizes if 128 in args.lengths else [], rows, kw)
    fused = fused_table(args.fused_sizes, args.lengths, rows, kw)
    ab = fused_ab_table(args.fused_sizes, args.lengths, kw)
    attn = attention_table(args.attention_size, args.lengths, kw)
    print()
    for label, table in (("(eager)", rows), ("with fused attention", fused)):
        lows = [f"{r['size']}-{r['length']}" for r in table if r["ratio"] < 0.5]
        print(f"below half of the practical limit {label}: {', '.join(lows) or 'none'}")
    if args.json:
        every = {**header, "fp32": rows, "bf16": bf16, "fused": fused, "fused_ab": ab,
                 "attention": attn}  # fmt: skip
        Path(args.json).write_text(json.dumps(every, indent=2) + "\n")


if __name__ == "__main__":
    main()
