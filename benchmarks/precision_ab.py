"""bf16 autocast against fp32 on this CPU, alternated step by step in one process.

    python benchmarks/precision_ab.py [--sizes tiny mini small] [--lengths 128 512]
                                      [--steps 8] [--threads 1] [--json FILE]

Whether bf16 pays on a CPU depends on the chip: with AVX512-BF16 or AMX the matrix
multiplies run natively, without them they are emulated and slower than fp32. So
this measures, never assumes. Per (preset, length), in a fresh process each:

* the training step femlm runs (forward under autocast, ``mlm_loss_sum``, backward,
  clipping, AdamW) on one pre-masked batch of 3,584 tokens, fp32 and bf16 autocast
  from the same weights, **alternated step by step** (whatever else the machine
  does slows both alike); medians after two warm-up rounds; their ratio;
* the loss of each after the same steps on the same batch (bf16's rounding shows);
* the model's own matrix-multiply limit in each dtype (benchmarks/limit.py).

First a 1024^3 matrix multiply in each dtype. Prints the CPU model, its bf16 flags
and what femlm's ``precision: auto`` would pick here.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from limit import (  # noqa: E402
    RATE,
    TOKENS_PER_STEP,
    VOCAB,
    _masked_batch,
    child,
    cpu_description,
    matmul_limit,  # noqa: E402
)


def square_matmul(dtype: torch.dtype, n: int = 1024, repeats: int = 10) -> float:
    """FLOP/s of an n x n x n matrix multiply, best of ``repeats``."""
    x, y = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(x, y)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(x, y)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def _step(model, opt, batch: dict, bf16: bool) -> tuple[float, float]:
    """One training step as femlm's loop takes it; (seconds, loss)."""
    from contextlib import nullcontext

    from femlm.model import mlm_loss_sum

    cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    t0 = time.perf_counter()
    with cast:
        loss, count = mlm_loss_sum(model, batch)
    (loss / count).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0, float(loss / count)


def precision_ab(size: str, length: int, threads: int, steps: int) -> dict:
    """fp32 and bf16 autocast steps from the same weights, alternated (a child process)."""
    from transformers import AutoModelForMaskedLM

    from femlm.model import PRESETS, preset_config

    torch.set_num_threads(threads)
    tok, batch = _masked_batch(length)
    fp32 = AutoModelForMaskedLM.from_config(preset_config(size, tok, length))
    bf16 = copy.deepcopy(fp32)
    models = {False: fp32, True: bf16}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in models.items()}
    times: dict[bool, list[float]] = {False: [], True: []}
    losses: dict[bool, float] = {}
    for _ in range(steps + 2):
        for k, m in models.items():
            seconds, losses[k] = _step(m, opts[k], batch, k)
            times[k].append(seconds)
    f, b = (statistics.median(times[k][2:]) for k in (False, True))
    p, rows = PRESETS[size], TOKENS_PER_STEP // length
    shape = (p.layers, p.hidden, p.intermediate, p.heads, length, rows, VOCAB, RATE)
    return {
        "size": size, "length": length, "steps": steps,
        "fp32_tokens_per_s": TOKENS_PER_STEP / f, "bf16_tokens_per_s": TOKENS_PER_STEP / b,
        "bf16_over_fp32": f / b, "fp32_loss": losses[False], "bf16_loss": losses[True],
        "fp32_matmul_flops": matmul_limit(*shape, dtype=torch.float32),
        "bf16_matmul_flops": matmul_limit(*shape, dtype=torch.bfloat16),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["tiny", "mini", "small"])
    p.add_argument("--lengths", nargs="+", type=int, default=[128, 512])
    p.add_argument("--steps", type=int, default=8, help="timed rounds after two warm-up rounds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write every row to this JSON file")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # precision-ab SIZE LENGTH
    args = p.parse_args()
    if args.child:
        print(json.dumps(precision_ab(args.child[1], int(args.child[2]), args.threads, args.steps)))
        return
    from femlm.train.precision import native_cpu_bf16

    torch.set_num_threads(args.threads)
    model, flags = cpu_description()
    native = native_cpu_bf16()
    print(
        f"# {model}; flags: {' '.join(flags)}; {args.threads} thread(s), torch {torch.__version__}"
    )
    print(
        f"# native bf16 matmuls: {'yes' if native else 'no'} (--auto-bf16 picks {'bf16' if native else 'fp32'})"
    )
    mm = {str(d).split(".")[1]: square_matmul(d) for d in (torch.float32, torch.bfloat16)}
    print(f"1024^3 matmul: fp32 {mm['float32'] / 1e9:,.0f} GFLOP/s, bf16 {mm['bfloat16'] / 1e9:,.0f} "
          f"GFLOP/s ({mm['bfloat16'] / mm['float32']:.2f}x)")  # fmt: skip
    print(f"\n{'preset':8s} {'len':>4s} {'fp32 tok/s':>11s} {'bf16 tok/s':>11s} {'bf16/fp32':>9s} "
          f"{'matmul bf16/fp32':>16s} {'loss fp32':>9s} {'loss bf16':>9s} {'peak MiB':>9s}")  # fmt: skip
    rows = []
    for size in args.sizes:
        for length in args.lengths:
            r = child(
                "precision-ab",
                size,
                str(length),
                threads=args.threads,
                steps=args.steps,
                script=__file__,
            )
            rows.append(r)
            print(f"{size:8s} {length:4d} {r['fp32_tokens_per_s']:11,.0f} {r['bf16_tokens_per_s']:11,.0f} "
                  f"{r['bf16_over_fp32']:9.2f} {r['bf16_matmul_flops'] / r['fp32_matmul_flops']:16.2f} "
                  f"{r['fp32_loss']:9.4f} {r['bf16_loss']:9.4f} {r['peak_rss_mib']:9,.0f}")  # fmt: skip
    if args.json:
        every = {"cpu": model, "flags": flags, "native_bf16": native, "threads": args.threads,
                 "torch": torch.__version__, "square_matmul_flops": mm, "rows": rows}  # fmt: skip
        Path(args.json).write_text(json.dumps(every, indent=2) + "\n")


if __name__ == "__main__":
    main()
