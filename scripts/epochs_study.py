"""Stage E's report (docs/protocol.md): best against best at every budget, the rule of
thumb, and stage G's hypothesis H judged against its committed prediction.

    python scripts/epochs_study.py tapt      # docs/results/tuned-epochs-tapt/epochs.{md,json,png}

Reads the committed configs (configs/tuned-<setting>.yaml for stage C,
configs/tuned-epochs-<setting>.yaml for stage E), the carried runs in
docs/results/tuned-<setting> and docs/results/tuned-epochs-<setting>, and
docs/results/tuned/prediction-<setting>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from femlm.report.epochs import epochs_study, plot_study, study_json, study_lines  # noqa: E402
from femlm.report.runs import load_runs  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("setting", choices=("tapt", "continual"))
    args = p.parse_args()
    configs, results = ROOT / "configs", ROOT / "docs" / "results"
    c_config = yaml.safe_load((configs / f"tuned-{args.setting}.yaml").read_text())
    e_config = yaml.safe_load((configs / f"tuned-epochs-{args.setting}.yaml").read_text())
    out = results / f"tuned-epochs-{args.setting}"
    if not out.is_dir():
        raise SystemExit(f"no stage-E runs carried in {out.relative_to(ROOT)} yet")
    prediction = results / "tuned" / f"prediction-{args.setting}.json"
    study = epochs_study(
        c_config, load_runs(results / f"tuned-{args.setting}"), e_config, load_runs(out),
        json.loads(prediction.read_text()) if prediction.is_file() else None,
    )  # fmt: skip
    head = [f"# Epochs study (stage E) and hypothesis H (stage G): {args.setting}", ""]
    plot = plot_study(study, out)
    body = [*study_lines(study), f"![difference against epochs]({plot.name})", ""]
    (out / "epochs.md").write_text("\n".join(head + body))
    (out / "epochs.json").write_text(json.dumps(study_json(study), indent=2) + "\n")
    print("\n".join(body[:-2]))
    print(f"wrote {(out / 'epochs.md').relative_to(ROOT)}, epochs.json, epochs.png")


if __name__ == "__main__":
    main()
