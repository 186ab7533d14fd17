"""Recompute the verdicts of the committed reports under the paired-t rule.

The run folders behind docs/results/*/report.md are gone; each report keeps,
per comparison, both sides' mean, sd and seed count and the per-seed paired
difference's mean, 2 SE, seed count and seeds lower. Those are sufficient
statistics for both tests of femlm.report.stats.Verdict, so

    python scripts/recompute_verdicts.py extract   # report.md -> finals.json
    python scripts/recompute_verdicts.py render    # finals.json -> verdicts.md

writes, per grid, the numbers read from the report (``finals.json``) and the
verdicts they give under both rules (``verdicts.md``), and
docs/results/verdicts.md lists every verdict that changed. The tables keep the
report's rounding (4 decimals), which is the only loss.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from femlm.report.stats import Verdict  # noqa: E402

RESULTS = ROOT / "docs" / "results"
STATS = re.compile(r"^([\d.]+)(?: ± ([\d.]+))? \(n=(\d+)\)$")
PAIRED = re.compile(r"^([+-][\d.]+) ± ([\d.]+), lower in (\d+) of (\d+)$")
OLD = {"lower (better)": "lower", "higher (worse)": "higher"}


def _stats(cell: str) -> list[float] | None:
    m = STATS.match(cell)
    return None if m is None else [float(m[1]), float(m[2] or 0.0), int(m[3])]


def _paired(cell: str) -> list[float] | None:
    m = PAIRED.match(cell)
    return None if m is None else [float(m[1]), float(m[2]), int(m[4]), int(m[3])]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def extract(report: Path) -> dict:
    """Every verdict row of a report: comparison tables and fair pairs."""
    rows, table, reference, label = [], None, None, None
    for line in report.read_text().splitlines():
        if line.startswith("| variant |") and "2 SE" in line:
            table, label = "against", _cells(line)[1]
            reference = re.search(r"`([^`]+)`", line)[1]
        elif line.startswith("| FE variant |"):
            table, label = "pair", "final val loss"
        elif not line.startswith("|"):
            table = None
        elif table and not line.startswith("|---"):
            c = _cells(line)
            if table == "against":
                a, b, stats, old, paired = c[0], reference, (c[1], None), c[4], c[5]
            else:
                a, b, stats, old, paired = c[0], c[2], (c[1], c[3]), c[6], c[7]
            rows.append({
                "measure": label, "a": a, "b": b, "a_stats": _stats(stats[0]),
                "b_stats": _stats(stats[1]) if stats[1] else None,
                "paired": _paired(paired), "old_verdict": OLD.get(old, "tie"),
            })  # fmt: skip
    _fill_reference_stats(rows)
    return {
        "source": f"docs/results/{report.parent.name}/report.md",
        "fields": {
            "a_stats, b_stats": "mean, sd, seeds of final (or re-scored) validation loss",
            "paired": "mean of per-seed differences a - b, its 2 SE, shared seeds, seeds a lower",
        },
        "comparisons": rows,
    }


def _fill_reference_stats(rows: list[dict]) -> None:
    """A comparison table shows its reference's loss in no row of its own: take it
    from the rows where the reference is the variant, for the same measure."""
    known = {(r["measure"], r["a"]): r["a_stats"] for r in rows if r["a_stats"]}
    for r in rows:
        if r["b_stats"] is None:
            r["b_stats"] = known.get((r["measure"], r["b"]))


def verdict(row: dict) -> Verdict | None:
    p = row["paired"]
    if p is not None and p[2] >= 2:
        mean, two_se, n, lower = p
        return Verdict.paired(mean, two_se / 2 * math.sqrt(n), n, lower)
    if row["a_stats"] and row["b_stats"]:
        (ma, sa, na), (mb, sb, nb) = row["a_stats"], row["b_stats"]
        return Verdict.welch(ma, sa, int(na), mb, sb, int(nb))
    return None


def render(grid: str, data: dict) -> tuple[list[str], list[str]]:
    """``verdicts.md`` of one grid, and its changed verdicts for the summary."""
    lines = [
        f"# Verdicts of `{grid}` under the paired-t rule",
        "",
        "Recomputed by `scripts/recompute_verdicts.py` from [finals.json](finals.json), the "
        "numbers its [report](report.md) holds. Old rule: the difference of means beyond 2 SE "
        "(unpaired). New rule: the 95% t interval excludes 0, paired by seed (t, n-1 df), "
        "Welch where seeds are not shared.",
        "",
        "| measure | variant | against | new test | old verdict | new verdict | changed |",
        "|---|---|---|---|---|---|---|",
    ]
    changed = []
    for row in data["comparisons"]:
        v = verdict(row)
        new = v.outcome if v else "tie"
        text = v.text() if v else "no noise estimate (fewer than 2 seeds)"
        flag = "**yes**" if new != row["old_verdict"] else ""
        lines.append(
            f"| {row['measure']} | {row['a']} | {row['b']} | {text} | {row['old_verdict']} | "
            f"{new} | {flag} |"
        )
        if flag:
            changed.append(
                f"| {grid} | {row['measure']} | {row['a']} vs {row['b']} | {row['old_verdict']} "
                f"| {new} | {text} |"
            )
    return lines, changed


def main(argv: list[str]) -> int:
    grids = sorted(p.parent for p in RESULTS.glob("*/report.md"))
    if argv[:1] == ["extract"]:
        for g in grids:
            text = json.dumps(extract(g / "report.md"), indent=1) + "\n"
            (g / "finals.json").write_text(text)
        return 0
    if argv[:1] != ["render"]:
        print("usage: recompute_verdicts.py extract|render", file=sys.stderr)
        return 2
    summary = [
        "# Verdicts that changed under the paired-t rule",
        "",
        "Every committed report's comparisons, recomputed by `scripts/recompute_verdicts.py` "
        "(each grid's `verdicts.md` lists all of them).",
        "",
        "| grid | measure | comparison | old (2 SE) | new (95% t) | new test |",
        "|---|---|---|---|---|---|",
    ]
    for g in grids:
        lines, changed = render(g.name, json.loads((g / "finals.json").read_text()))
        (g / "verdicts.md").write_text("\n".join(lines) + "\n")
        summary += changed
    (RESULTS / "verdicts.md").write_text("\n".join(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
