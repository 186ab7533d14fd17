"""Stage G of docs/protocol.md: hypothesis H's prediction, written before stage E runs.

    python scripts/prediction.py tapt     # docs/results/tuned/prediction-tapt.json

H: the across-epochs gain at rate r after E epochs is c * s(r, E), with
s(r, E) = sqrt((1 - r) / (r E)) the relative spread of standard masking's
per-token prediction count (Binomial(E, r)), and 0 below one cycle (E < K).

c is fitted by least squares through the origin on stage B's four rates at 40
epochs: per rate, the mean over units 0-2 of fully-explored-epochs minus standard,
final **dev** loss (test blocks stay for verdicts), both cells at the schedule of
fully-explored-epochs' rule-B best (amendment 3). The prediction is written for
every stage-E budget at that best's rate; stage E judges it on test.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from femlm.report.runs import load_runs, variant_config  # noqa: E402
from femlm.report.tuning import (  # noqa: E402
    arms,
    cell_of,
    configured_bests,
    configured_cell,
    dev_by_seed,
)  # fmt: skip

BUDGETS = (1, 5, 10, 20, 40, 80)
EPOCHS = 40


def _units(seeds: list[int]) -> str:
    """0-2 for a run of seeds, else 0, 2, 5."""
    contiguous = seeds == list(range(seeds[0], seeds[-1] + 1))
    return f"{seeds[0]}-{seeds[-1]}" if contiguous else ", ".join(map(str, seeds))


def spread(rate: float, epochs: float) -> float:
    """Binomial(E, r)'s standard deviation over its mean."""
    return math.sqrt((1 - rate) / (rate * epochs))


def stage_b_gains(spec: dict, variants: dict) -> tuple[str, dict[float, dict]]:
    """fe-epochs' best, and per rate at its schedule: the paired mean dev difference."""
    best = configured_bests(spec)
    select = spec["tuning"]["select_seeds"]  # the units rule B chose on
    fe_arm = next(a for a in best if a != "standard")
    schedule = cell_of(spec, best[fe_arm])[1]
    rates = sorted({cell_of(spec, n)[0] for n in arms(spec, spec["runs"])[fe_arm]})
    gains = {}
    for rate in rates:
        fe = configured_cell(spec, fe_arm, (rate, schedule))
        std = configured_cell(spec, "standard", (rate, schedule))
        if fe is None or std is None:
            raise SystemExit(f"the grid has no stage-B cell of both arms at rate {rate:.3f}")
        a, b = dev_by_seed(variants.get(fe, [])), dev_by_seed(variants.get(std, []))
        if any(s not in a or s not in b for s in select):
            raise SystemExit(f"stage B is not finished for {fe} and {std}")
        gains[rate] = {
            "fe_epochs": fe, "standard": std,
            "gain": statistics.fmean(a[s] - b[s] for s in select),
        }  # fmt: skip
    return best[fe_arm], gains


def fit(gains: dict[float, dict]) -> float:
    """c minimising sum over rates of (gain - c s(r, 40))^2."""
    s = {r: spread(r, EPOCHS) for r in gains}
    return sum(g["gain"] * s[r] for r, g in gains.items()) / sum(v * v for v in s.values())


def predict(spec: dict, variants: dict) -> dict:
    best, gains = stage_b_gains(spec, variants)
    c = fit(gains)
    cfg = variant_config(spec, best)
    rate, k = cell_of(spec, best)[0], cfg.masking.views
    return {
        "hypothesis": "gain(r, E) = c * sqrt((1 - r) / (r E)) for E >= K, else 0",
        "fitted_on": f"stage B, units {_units(spec['tuning']['select_seeds'])}, final dev loss, fe-epochs minus standard",
        "best": best, "rate": rate, "K": k, "schedule": cell_of(spec, best)[1], "c": c,
        "stage_b": [
            {"rate": r, **g, "spread": spread(r, EPOCHS), "fitted": c * spread(r, EPOCHS)}
            for r, g in sorted(gains.items())
        ],
        "predicted": [
            {"epochs": e, "gain": c * spread(rate, e) if e >= k else 0.0} for e in BUDGETS
        ],
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("setting", choices=("tapt", "continual"))
    args = p.parse_args()
    spec = yaml.safe_load((ROOT / "configs" / f"tuned-{args.setting}.yaml").read_text())
    variants = load_runs(ROOT / "docs" / "results" / f"tuned-{args.setting}")
    result = predict(spec, variants)
    for row in result["stage_b"]:
        print(f"rate {row['rate']:.3f}: dev gain {row['gain']:+.4f}, H fits {row['fitted']:+.4f}")
    print(f"c = {result['c']:+.4f}; at {result['best']}'s rate {result['rate']:.3f}:")
    for row in result["predicted"]:
        print(f"  {row['epochs']:3d} epochs: predicted gain {row['gain']:+.4f}")
    out = ROOT / "docs" / "results" / "tuned" / f"prediction-{args.setting}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
