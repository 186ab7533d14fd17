"""Stage D's starts (docs/protocol.md): each `mini` preset must end at least 1 nat below
its unigram baseline on hidden tokens, else it is extended by 1000 steps at its
constant rate (`femlm pretrain --resume --max-steps N+1000`) until it does.

    python scripts/mini_starts.py                   # check, extend where short, summarise
    python scripts/mini_starts.py --check-only      # only say where each start stands

Writes docs/results/tuned-mini/starts.json: per seed, the steps run, the final
hidden-token dev loss, the unigram baseline and the distance below it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from femlm.runs import ExperimentDir, read_metrics  # noqa: E402

TARGET = 1.0  # nats below the unigram baseline
EXTENSION = 1000  # steps a short start is extended by
FOLDER = ROOT / "runs" / "mini-presets"
SEEDS = (0, 1, 2)


def standing(metrics: Path) -> dict:
    """The run's last evaluation against its unigram baseline."""
    rows, _ = read_metrics(metrics)
    evals = [r for r in rows if "eval_loss" in r]
    unigram = next((r["unigram_loss"] for r in rows if "unigram_loss" in r), None)
    if not evals or unigram is None:
        raise SystemExit(f"{metrics} has no evaluation or no unigram baseline yet")
    last = evals[-1]
    below = unigram - last["eval_loss"]
    return {
        "steps": last["step"], "dev_loss": last["eval_loss"], "unigram": unigram,
        "below_unigram": below, "reached": below >= TARGET,
    }  # fmt: skip


def extend(seed: int, steps: int) -> None:
    run = ExperimentDir(FOLDER).run("mini", seed).root
    command = [sys.executable, "-m", "femlm", "pretrain", "--out-dir", str(run), "--resume"]
    command += ["--max-steps", str(steps + EXTENSION), "--threads", "1", "--no-progress"]
    print(
        f"seed {seed}: {TARGET} nat not reached at {steps} steps; extending to {steps + EXTENSION}"
    )
    subprocess.run(command, check=True, cwd=ROOT)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check-only", action="store_true", help="report, extend nothing")
    args = p.parse_args()
    summary = {}
    for seed in SEEDS:
        metrics = ExperimentDir(FOLDER).run("mini", seed).metrics
        if not metrics.is_file():
            raise SystemExit(
                f"no mini start {seed}: run femlm experiment configs/mini-presets.yaml"
            )
        now = standing(metrics)
        while not now["reached"] and not args.check_only:
            extend(seed, now["steps"])
            now = standing(metrics)
        summary[seed] = now
        print(
            f"seed {seed}: {now['steps']} steps, dev {now['dev_loss']:.4f}, "
            f"{now['below_unigram']:.3f} nats below the unigram {now['unigram']:.4f}"
        )
    if not args.check_only:
        out = ROOT / "docs" / "results" / "tuned-mini" / "starts.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
