"""The variance map (issue 28): `femlm variance` across model size and block length,
each point in its own process (its peak memory measured), then the trend in words.

    python scripts/variance_map.py run  [--points tiny-64 mini-128 ...]   # measure (resumable)
    python scripts/variance_map.py fit                                   # map.json, map.md, plots

Points: the rotary presets tiny and mini as trained by configs/presets.yaml and
configs/mini-presets.yaml (BBC News, 64-token blocks: longer blocks are positions
they never trained on, which rotary encodings extrapolate to), and small and base
at initialisation, at 64, 128, 256 and 512 tokens, all on BBC News' held-out
documents (the presets' 0.05 split). FE against random-K and against one random
view at equal compute, K = 7 (rate 1/7), 8 probe sequences x 2 draws.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "results" / "variance-map"
MODELS = {
    "tiny": ("runs/presets/tiny/seed-0/final", "trained"),
    "mini": ("runs/mini-presets/mini/seed-0/final", "trained"),
    "small": ("small", "initialisation"),
    "base": ("base", "initialisation"),
}
LENGTHS = (64, 128, 256, 512)
PROBE = ["--sequences", "8", "--draws", "2", "--bootstrap", "200", "--hamming-points", "3"]
PROBE += ["--hamming-pairs", "1", "--strategies", "random", "fully-explored", "--views", "7"]
PROBE += ["--chunk-draws", "1", "--seed", "0", "--no-progress"]


def points() -> list[str]:
    return [f"{m}-{n}" for m in MODELS for n in LENGTHS]


def measure(point: str, threads: int) -> dict:
    """One `femlm variance` process; its result folder and its peak resident memory."""
    size, length = point.rsplit("-", 1)
    model, state = MODELS[size]
    out = OUT / point
    if (out / "variance.json").is_file() and (out / "point.json").is_file():
        return json.loads((out / "point.json").read_text())
    cache = os.environ.get("FEMLM_CACHE", str(Path.home() / ".cache" / "femlm"))
    args = [sys.executable, "-m", "femlm", "variance", "--model", model, *PROBE]
    args += ["--data", f"{cache}/corpora/bbc.jsonl", "--max-length", length]
    args += ["--out-dir", str(out), "--threads", str(threads)]
    if state == "initialisation":
        args += ["--tokenizer", "runs/bbc-tokenizer", "--validation-fraction", "0.05"]
    if size == "base":
        args += ["--grad-mode", "loop"]  # vmap's per-view buffers would not fit in 24 GiB
    weights = _fingerprint(model) if state == "trained" else None
    start = time.time()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    log = proc.stdout.read().decode(errors="replace")
    if status != 0:
        raise SystemExit(f"{point} failed:\n{log[-2000:]}")
    (out / "table.txt").write_text(log)
    info = {
        "point": point, "model": model, "state": state, "length": int(length),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "seconds": round(time.time() - start, 1), "threads": threads,
    }  # fmt: skip
    if weights:  # which pre-training of the preset was measured (a rerun elsewhere differs)
        info["weights"] = weights
    (out / "point.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _fingerprint(model: str) -> str:
    """The trained model's step-0 fingerprint, as a run starting from it records it."""
    out = subprocess.run(
        [sys.executable, "scripts/start_fingerprints.py", model],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout)[model]


def summarise(point: str) -> dict:
    from femlm.variance.results import VarianceResult

    info = json.loads((OUT / point / "point.json").read_text())
    result = VarianceResult.from_json(json.loads((OUT / point / "variance.json").read_text()))
    fe, c = result.terms("fully-explored"), result.comparison("fully-explored")
    est = lambda e: {"value": e.value, "low": e.low, "high": e.high}  # noqa: E731
    return info | {
        "parameters": result.setup.get("parameters"),
        "v_data": est(c.v_data), "one_view_mask_variance": est(c.sigma2),
        "fe_mask_variance": est(fe.maskvar), "fe_over_random_k": est(fe.ratio),
        "break_even_v_data": est(c.break_even_v_data),
        "fe_over_standard_step_variance": est(c.step_var_ratio),
    }  # fmt: skip


def fit(rows: list[dict], key: str) -> dict:
    """log(ratio) = a + b log(parameters) + c log(length), least squares weighted by each
    point's interval; the prediction for a BERT-base-sized encoder (110M) at 128 and 512."""
    import numpy as np

    usable = [r for r in rows if r[key]["value"] > 0 and r[key]["low"] > 0]
    if len(usable) < 4:
        return {"points": len(usable)}
    y = np.log([r[key]["value"] for r in usable])
    se = np.array([(math.log(r[key]["high"]) - math.log(r[key]["low"])) / 3.92 for r in usable])
    x = np.column_stack(
        [
            np.ones(len(usable)),
            np.log([r["parameters"] for r in usable]),
            np.log([r["length"] for r in usable]),
        ]
    )
    w = 1 / np.maximum(se, 1e-3) ** 2
    cov = np.linalg.inv(x.T @ (x * w[:, None]))
    beta = cov @ (x.T @ (w * y))
    resid = y - x @ beta
    scale = max(1.0, float((w * resid**2).sum() / max(1, len(y) - 3)))  # overdispersion
    out = {"points": len(usable), "coef": beta.tolist(), "scale": scale}
    sd_b = math.sqrt(float(cov[1, 1]) * scale)
    out["slope_params"] = {"value": float(beta[1]), "low": float(beta[1] - 1.96 * sd_b),
                           "high": float(beta[1] + 1.96 * sd_b)}  # fmt: skip
    for length in (128, 512):  # where the trend reaches 1 (FE's step variance = standard's)
        if key.endswith("step_variance") and beta[1] < 0:
            at = math.exp((-beta[0] - beta[2] * math.log(length)) / beta[1])
            out[f"crossing_params_{length}"] = at
    for length in (128, 512):
        z = np.array([1.0, math.log(110e6), math.log(length)])
        mean, sd = float(z @ beta), math.sqrt(float(z @ cov @ z) * scale)
        out[f"bert_base_{length}"] = {
            "value": math.exp(mean),
            "low": math.exp(mean - 1.96 * sd),
            "high": math.exp(mean + 1.96 * sd),
        }
    return out


def _ci(e: dict, digits: int = 3) -> str:
    return f"{e['value']:.{digits}g} [{e['low']:.{digits}g}, {e['high']:.{digits}g}]"


def table(rows: list[dict], fits: dict) -> list[str]:
    """The map as markdown: one row per point, then the fitted trend and its prediction."""
    lines = [
        "| point | model | parameters | V_data | one-view mask variance | FE mask variance "
        "| FE / random-K | break-even V_data | step FE / standard | rho = V_data / sigma2 "
        "| peak RSS MiB | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rho = r["v_data"]["value"] / r["one_view_mask_variance"]["value"]
        lines.append(
            f"| {r['point']} | {r['state']} | {r['parameters']:,} | {_ci(r['v_data'])} "
            f"| {_ci(r['one_view_mask_variance'])} | {_ci(r['fe_mask_variance'])} "
            f"| {_ci(r['fe_over_random_k'])} | {_ci(r['break_even_v_data'])} "
            f"| {_ci(r['fe_over_standard_step_variance'])} | {rho:.3f} "
            f"| {r['peak_rss_mib']:,.0f} | {r['seconds']:.0f} |"
        )
    lines.append("")
    for key, by in fits.items():
        for subset, f in by.items():
            if "coef" not in f:
                continue
            a, b, c = f["coef"]
            pred = ", ".join(f"{n} tokens {_ci(f[f'bert_base_{n}'])}" for n in (128, 512))
            cross = [f"{n}: {f[f'crossing_params_{n}']:.3g} parameters" for n in (128, 512)
                     if f"crossing_params_{n}" in f]  # fmt: skip
            lines.append(
                f"- `{key}` ({subset} points, {f['points']}): log ratio = {a:.3f} "
                f"{b:+.4f} log(parameters) {c:+.4f} log(length); slope in parameters "
                f"{_ci(f['slope_params'])}; BERT-base-sized (110M): {pred}; "
                + (
                    f"the trend reaches 1 at {'; '.join(cross)}"
                    if cross
                    else (
                        "the trend does not fall with size" if key.endswith("step_variance") else ""
                    )
                )
            )
    return lines


def plot(rows: list[dict]) -> None:
    """Each ratio against block length (one line per preset) and against parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = {"fe_over_random_k": "FE / random-K mask variance",
            "fe_over_standard_step_variance": "FE / standard step variance (equal compute)"}  # fmt: skip
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    groups = {"length": [(size, lambda r, s=size: r["point"].startswith(s + "-")) for size in MODELS],
              "parameters": [(f"{n} tokens", lambda r, n=n: r["length"] == n) for n in LENGTHS]}  # fmt: skip
    for row_axes, (key, label) in zip(axes, keys.items(), strict=True):
        for ax, x in zip(row_axes, ("length", "parameters"), strict=True):
            for name, member in groups[x]:
                pts = sorted((r for r in rows if member(r)), key=lambda r: r[x])
                if not pts:
                    continue
                ys = [r[key]["value"] for r in pts]
                err = [[y - r[key]["low"] for y, r in zip(ys, pts, strict=True)],
                       [r[key]["high"] - y for y, r in zip(ys, pts, strict=True)]]  # fmt: skip
                ax.errorbar([r[x] for r in pts], ys, yerr=err, marker="o", capsize=3, label=name)
            ax.set_xscale("log")
            ax.axhline(1.0, color="grey", lw=0.8, ls="--")
            ax.set_xlabel("block length (tokens)" if x == "length" else "parameters")
            ax.set_ylabel(label)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "map.png", dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("run", "fit"))
    p.add_argument("--points", nargs="*", default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if args.action == "run":
        for point in args.points or points():
            info = measure(point, args.threads)
            print(f"{point}: {info['seconds']} s, peak {info['peak_rss_mib']} MiB", flush=True)
        return
    done = [pt for pt in points() if (OUT / pt / "point.json").is_file()]
    rows = [summarise(pt) for pt in done]
    fits = {
        k: {"all": fit(rows, k), "trained": fit([r for r in rows if r["state"] == "trained"], k)}
        for k in ("fe_over_random_k", "fe_over_standard_step_variance")
    }
    (OUT / "map.json").write_text(json.dumps({"rows": rows, "fits": fits}, indent=2) + "\n")
    plot(rows)
    (OUT / "table.md").write_text("\n".join(table(rows, fits)) + "\n")
    for r in rows:
        step = r["fe_over_standard_step_variance"]
        print(
            f"{r['point']:10s} {r['state']:14s} P={r['parameters']:>11,} V_data {r['v_data']['value']:.3g} "
            f"sigma2 {r['one_view_mask_variance']['value']:.3g} FE/random-K {r['fe_over_random_k']['value']:.3f} "
            f"step FE/std {step['value']:.3f} [{step['low']:.3f}, {step['high']:.3f}] "
            f"peak {r['peak_rss_mib']:.0f} MiB {r['seconds']:.0f} s"
        )
    print(json.dumps(fits, indent=1))


if __name__ == "__main__":
    main()
