"""The committed results regenerate from the committed files (docs/results)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
ALL = sorted(p.parent.name for p in RESULTS.glob("*/report.md"))
# Grids whose per-run files are committed regenerate from them; the older ones,
# whose run folders are gone, from the numbers their reports hold (finals.json).
RUN_GRIDS = [g for g in ALL if any((RESULTS / g).glob("*/seed-*/metrics.jsonl"))]
GRIDS = [g for g in ALL if g not in RUN_GRIDS]


def _script():
    spec = importlib.util.spec_from_file_location(
        "recompute_verdicts", ROOT / "scripts" / "recompute_verdicts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("grid", GRIDS)
def test_finals_json_is_what_the_report_holds_and_verdicts_follow_from_it(grid):
    script, folder = _script(), ROOT / "docs" / "results" / grid
    committed = json.loads((folder / "finals.json").read_text())
    assert script.extract(folder / "report.md") == committed
    lines, _ = script.render(grid, committed)
    assert (folder / "verdicts.md").read_text() == "\n".join(lines) + "\n"


def test_the_changed_verdicts_list_is_complete():
    script = _script()
    changed = []
    for grid in GRIDS:
        data = json.loads((ROOT / "docs" / "results" / grid / "finals.json").read_text())
        changed += script.render(grid, data)[1]
    text = (ROOT / "docs" / "results" / "verdicts.md").read_text()
    assert [line for line in text.splitlines() if line.startswith("| ") and "|---" not in line][
        1:
    ] == changed


def test_a_report_row_becomes_a_paired_verdict():
    script = _script()
    # long6k: FE vs standard, +0.5018 with paired 2 SE 0.4082 over 5 seeds: the old rule
    # (2 SE 0.4481) called it a loss; t(0.975, 4 df) = 2.776 widens it to +-0.567.
    row = {"a_stats": [5.9088, 0.3816, 5], "b_stats": [5.407, 0.3246, 5],
           "paired": [0.5018, 0.4082, 5, 1]}  # fmt: skip
    v = script.verdict(row)
    assert v.text() == "+0.5018 ± 0.5667 (paired t, 4 df), lower in 1 of 5"
    assert v.outcome == "tie"


HISTORY = RESULTS / "history.md"


def _summary_table() -> str:
    text = HISTORY.read_text()
    return text.split("## Where fully-explored masking wins, ties and loses")[1].split("\n## ")[0]


def _reports() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "docs" / "results").glob("*/report.md")))


def test_every_loss_in_the_summary_table_is_a_reports_number():
    import re

    reports = _reports()
    # unsigned: a variant's mean +- sd (signed ones are paired intervals, checked below)
    found = re.findall(r"(?<![-+\d.])(\d+\.\d{4}) \+- (\d+\.\d{4})", _summary_table())
    assert len(found) > 20
    missing = [f"{m} +- {s}" for m, s in found if f"{m} ± {s} (n=" not in reports]
    assert not missing, missing


def test_every_ratio_in_the_summary_table_is_a_reports_number():
    import re

    reports = _reports()
    found = re.findall(r"(\d+\.\d+ \[\d+\.\d+, \d+\.\d+\])", _summary_table())
    assert len(found) > 15
    missing = [x for x in found if x not in reports]
    assert not missing, missing


def test_every_changed_verdict_in_the_summary_table_matches_verdicts_md():
    import re

    # "+0.5018 +- 0.5667": each paired interval the table quotes is one the script gave.
    changed = (ROOT / "docs" / "results" / "verdicts.md").read_text()
    quoted = re.findall(r"([+-]\d\.\d{4}) \+- (\d\.\d{4})", _summary_table())
    assert len(quoted) >= 8
    for diff, half in quoted:
        # the table gives FE minus the other; verdicts.md may list the other way round
        flipped = {"+": "-", "-": "+"}[diff[0]] + diff[1:]
        assert any(f"{d} ± {half} (paired t, " in changed for d in (diff, flipped)), (diff, half)


@pytest.mark.parametrize("grid", RUN_GRIDS)
def test_reports_regenerate_from_their_committed_runs(grid, tmp_path):
    from femlm.report.writer import write_report

    write_report(RESULTS / grid, tmp_path)
    assert (tmp_path / "report.md").read_text() == (RESULTS / grid / "report.md").read_text()


def _numbers_are_in_linked_files(section: str, base: Path) -> int:
    """Every "x ± y" of a table row is in a file of the folders its links (or the last
    row's) name; returns how many numbers were checked."""
    import re

    rows = [r for r in section.splitlines() if r.startswith("| ") and "|---" not in r][1:]
    folders: list[Path] = []
    checked = 0
    for row in rows:
        links = [x for x in re.findall(r"\]\(([^)#]+)\)", row) if not x.startswith("http")]
        folders = sorted({(base / link).parent for link in links}) or folders
        committed = "".join(
            f.read_text() for d in folders for f in d.rglob("*") if f.suffix in (".md", ".json")
        )
        for number in re.findall(r"[+-]?\d+\.\d+ ± \d+\.\d+", row):
            assert number in committed, f"{number} is in no file of {folders}"
            checked += 1
    return checked


def test_the_rotary_rounds_numbers_are_in_the_files_each_row_links():
    section = HISTORY.read_text().split("## This round")[1].split("\n## ")[0]
    assert _numbers_are_in_linked_files(section, RESULTS) > 20


def test_the_summarys_numbers_are_in_the_files_each_row_links():
    text = (ROOT / "docs" / "results.md").read_text()
    assert len(text.splitlines()) <= 80, "docs/results.md is one screen; history goes to history.md"
    assert _numbers_are_in_linked_files(text, ROOT / "docs") > 5
