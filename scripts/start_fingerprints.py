"""The step-0 fingerprint of each warm start, as a run that begins from it records it.

    python scripts/start_fingerprints.py runs/presets/tiny/seed-0/final ... > starts.json

A reference measured on a start (its probe, its fine-tuning) is the start a paired
run began from only where the two fingerprints agree (docs/protocol.md, amendment 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from femlm.data.tokenizer import load_tokenizer  # noqa: E402
from femlm.model import build_model, weights_fingerprint  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("starts", nargs="+", help="model folders")
    p.add_argument("--max-length", type=int, default=64, help="the runs' block length")
    args = p.parse_args()
    out = {}
    for start in args.starts:
        model = build_model(start, load_tokenizer(start), max_length=args.max_length)
        out[start] = weights_fingerprint(model)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
