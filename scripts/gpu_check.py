"""The prepared device check: what CI's CPUs cannot show, in one script and one folder.

    python scripts/gpu_check.py [--out runs/gpu-check] [--budget-s 480]
    python scripts/gpu_check.py --dry-run          # every step on the CPU, tiny sizes

Steps, each timed, each run even when one before it failed, stopped at the budget:

1. ``pytest -m gpu``: training, bf16, resume and the variance probe on the device;
2. throughput of femlm's loop on ``small`` and ``base`` at 128 and 512 tokens, bf16
   autocast with and without ``torch.compile``, as model FLOP utilisation (MFU)
   against the chip's dense bf16 peak from its spec sheet (printed with its source);
3. a torchrun launch in bf16 (one process) whose saved weights must be float32;
4. ``femlm demo`` (both acts; on a GPU the runs go one after another);
5. if at least ``--pair-s`` seconds are left: act 2's across-epochs pair on the
   ``small`` preset (pre-trained on BBC News first, then standard masking against
   fully-explored-epochs, 3 paired seeds).

The device cannot reach PyPI: give it the cache's ``corpora/bbc.jsonl`` and
``tasks/movies/`` (``FEMLM_CACHE``). Everything lands in ``--out``: ``log.txt``,
``env.json``, ``throughput.json``, ``steps.json`` and the runs. About 8 minutes
of device time is the aim; on an H200 it has not yet run (no device was lent).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, from NVIDIA's data sheets.
PEAKS = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12}
PEAKS |= {"L4": 121e12, "A10": 125e12}
PEAK_SOURCE = "NVIDIA data sheets, dense BF16 tensor-core throughput without sparsity"


def spec_peak(name: str) -> float | None:
    return next((v for k, v in PEAKS.items() if k in name), None)


class Check:
    """Runs the steps, records each one's time and outcome, keeps to the budget."""

    def __init__(self, out: Path, budget: float, only: list[str] | None = None) -> None:
        self.out, self.budget, self.start, self.only = out, budget, time.time(), only
        self.steps: list[dict] = []
        out.mkdir(parents=True, exist_ok=True)
        self.log_path = out / "log.txt"

    def left(self) -> float:
        return self.budget - (time.time() - self.start)

    def say(self, text: str) -> None:
        print(text, flush=True)
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(text + "\n")

    def step(self, name: str, fn, *args) -> None:
        if self.only and not any(word in name for word in self.only):
            return
        if self.left() <= 0:
            self.steps.append({"step": name, "outcome": "skipped: budget spent"})
            self.say(f"== {name}: skipped (budget spent)")
            return
        self.say(f"\n== {name}")
        t0 = time.time()
        try:
            fn(*args)
            outcome = "ok"
        except Exception as err:  # a failed step is recorded; the next still runs
            outcome = f"FAILED: {type(err).__name__}: {err}"
        self.steps.append({"step": name, "outcome": outcome, "seconds": round(time.time() - t0, 1)})
        self.say(f"-- {name}: {outcome} ({time.time() - t0:.0f} s)")
        (self.out / "steps.json").write_text(json.dumps(self.steps, indent=2) + "\n")

    def run(self, command: list[str]) -> None:
        """A command, its output into the log; raises when it fails."""
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        self.say((proc.stdout + proc.stderr)[-4000:])
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:4])} ... exited {proc.returncode}")


def environment(check: Check, dry: bool) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not dry:
        raise SystemExit("gpu_check: no CUDA device visible (use --dry-run on a CPU)")
    name = torch.cuda.get_device_name() if cuda else "cpu (dry run)"
    env = {"device": name, "torch": torch.__version__, "cuda": torch.version.cuda}
    env |= {"peak_bf16_flops": spec_peak(name), "peak_source": PEAK_SOURCE}
    (check.out / "env.json").write_text(json.dumps(env, indent=2) + "\n")
    peak = f"{env['peak_bf16_flops'] / 1e12:.0f} TFLOP/s" if env["peak_bf16_flops"] else "unknown"
    check.say(f"device {name}, torch {torch.__version__}; spec peak {peak} ({PEAK_SOURCE})")
    return env


def throughput(check: Check, env: dict, dry: bool) -> None:
    from limit import one

    # (size, length, bf16, compile, fused attention): fused only where it could matter,
    # at 512 tokens without compile (on the CPU it was no faster: docs/benchmarks.md)
    plan = [("tiny", 32, False, False, False), ("tiny", 32, False, False, True)] if dry else [
        (size, n, True, comp, False) for size in ("small", "base") for n in (128, 512) for comp in (False, True)
    ] + [(size, 512, True, False, True) for size in ("small", "base")]  # fmt: skip
    rows = []
    for size, length, bf16, comp, fused in plan:
        device = "cpu" if dry else "cuda"
        tokens = 256 if dry else 65536
        r = one(size, length, 1, 4 if dry else 30, bf16, device, comp, tokens, fused)
        r["compile"] = comp
        r["mfu"] = r["achieved_flops"] / env["peak_bf16_flops"] if env["peak_bf16_flops"] else None
        rows.append(r)
        mfu = f"MFU {r['mfu']:.3f}" if r["mfu"] is not None else "no spec peak"
        check.say(
            f"{size:6s} {length:4d} {'bf16' if bf16 else 'fp32'}{'+compile' if comp else '':8s}"
            f"{'+fused' if fused else '':6s} "
            f"{r['tokens_per_s']:12,.0f} tokens/s {r['achieved_flops'] / 1e12:8.2f} TFLOP/s {mfu}"
        )
    (check.out / "throughput.json").write_text(json.dumps({**env, "rows": rows}, indent=2) + "\n")


def demo(check: Check, dry: bool) -> None:
    if dry:  # every step of both acts on made-up data: the demo's own test
        check.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_demo.py"]
        )
        return
    check.run([sys.executable, "-m", "femlm", "demo", "--out-dir", str(check.out / "demo")])


def torchrun(check: Check, dry: bool) -> None:
    """A torchrun launch (one process: no NCCL group, which needs two GPUs) in bf16,
    on a tokenizer trained here, and its weights saved in float32."""
    from femlm.corpora.fetch import corpus_path

    corpus, tok, out = str(corpus_path("bbc")), check.out / "tok", check.out / "ddp"
    fm = [sys.executable, "-m", "femlm"]
    check.run(
        [*fm, "tokenizer", "train", "--data", corpus, "--output", str(tok), "--vocab-size", "4000"]
    )
    device = ["--device", "cpu"] if dry else ["--device", "cuda", "--bf16"]
    check.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
               "-m", "femlm", "pretrain", "--data", corpus, "--tokenizer", str(tok), "--model", "tiny",
               "--max-length", "64", "--batch-size", "16", "--max-steps", "4" if dry else "60",
               "--eval-every", "30", "--save-every", "30", *device, "--out-dir", str(out), "--no-progress"])  # fmt: skip
    from safetensors.torch import load_file

    dtypes = {str(t.dtype) for t in load_file(out / "final" / "model.safetensors").values()}
    if dtypes != {"torch.float32"}:
        raise RuntimeError(f"saved weights are {dtypes}, not float32")


def tapt_pair(check: Check, dry: bool) -> None:
    """Act 2's pair on ``small``: a BBC pre-training, then the adaptation grid."""
    from femlm.corpora.fetch import corpus_path, task_dir
    from femlm.experiments import across_epochs
    from femlm.experiments.demo import DEMO
    from femlm.experiments.grid import Experiment, run_experiment
    from femlm.report.writer import write_report

    root = check.out / "tapt-small"
    base = {**DEMO["base"], "model": "tiny" if dry else "small", "data": [str(corpus_path("bbc"))]}
    base |= {"max_steps": 4 if dry else 3000, "progress": False}
    base.pop("threads")  # a GPU run needs no CPU thread count
    base["tokenizer"] = str(check.out / "demo" / "tokenizer")
    if dry or not Path(base["tokenizer"]).is_dir():
        base.pop("tokenizer")
        tok = {"data": base["data"], "output": str(root / "tokenizer"), "vocab_size": 8192}
    else:
        tok = None
    runs = {"standard": DEMO["runs"]["standard"]}
    source = {"name": "pretrain-small", "base": base, "runs": runs}
    pre = Experiment(
        "pretrain-small", root / "pretrain", [0], base, runs, tokenizer=tok, source=source
    )
    run_experiment(pre)
    adapt = across_epochs.adaptation_experiment(
        root / "pretrain", task_dir("movies") / "train.jsonl", None
    )
    adapt.seeds = [0, 1] if dry else [0, 1, 2]
    adapt.base |= {"max_steps": 4, "test_sequences": 8, "eval_sequences": 8} if dry else {}
    adapt.probe = None
    run_experiment(adapt)
    check.say(write_report(adapt.out_dir).read_text()[:3000])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/gpu-check")
    p.add_argument("--budget-s", type=float, default=480, help="device seconds for all steps")
    p.add_argument("--pair-s", type=float, default=150, help="seconds step 4 needs to start")
    p.add_argument("--dry-run", action="store_true", help="every step on the CPU, tiny sizes")
    p.add_argument("--only", nargs="*", help="run only the steps whose names contain these words")
    args = p.parse_args()
    # a dry run checks that every step works, so it runs them all whatever they take
    check = Check(Path(args.out), float("inf") if args.dry_run else args.budget_s, args.only)
    env = environment(check, args.dry_run)
    tests = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests"]
    check.step("GPU-marked tests", check.run, tests)
    check.step(
        "throughput (small, base; 128, 512; bf16, compile)", throughput, check, env, args.dry_run
    )
    check.step("torchrun, one process, bf16; float32 weights saved", torchrun, check, args.dry_run)
    check.step("the demo", demo, check, args.dry_run)
    if check.left() >= args.pair_s or args.dry_run:
        check.step("across-epochs pair on small", tapt_pair, check, args.dry_run)
    else:
        check.say(f"== across-epochs pair on small: skipped ({check.left():.0f} s left)")
    failed = [s["step"] for s in check.steps if s["outcome"] != "ok"]
    check.say(
        f"\ngpu_check: {'every step passed' if not failed else 'NOT passed: ' + ', '.join(failed)}"
    )
    check.say(f"results: {check.out} ({time.time() - check.start:.0f} s)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
