#!/usr/bin/env bash
# The prepared device check (scripts/gpu_check.py): GPU-marked tests, throughput
# and MFU on small and base, the demo, and act 2's pair on small if time is left,
# all into one folder. Arguments go to it: --out DIR, --budget-s S, --dry-run.
# The device needs FEMLM_CACHE with corpora/bbc.jsonl and tasks/movies/ (no PyPI).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
exec python scripts/gpu_check.py "$@"
