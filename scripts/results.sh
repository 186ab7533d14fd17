#!/usr/bin/env bash
# Re-creates everything behind docs/results.md: the four experiment grids
# (resumable: run it again after an interruption and finished runs are
# skipped) and their reports under docs/results/NAME/. Hours on 2 CPU cores;
# each config states its measured time. The general and domain corpora need a
# Debian host: run `femlm data fetch` once first (docs/corpora.md). Two grids at a time with one thread each
# is how the committed numbers were made (about 1.5x the throughput of one
# grid on two threads on a 2-core machine):
#   OMP_NUM_THREADS=1 bash scripts/results.sh scratch continual &
#   OMP_NUM_THREADS=1 bash scripts/results.sh ablation adaptive
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(scratch ablation adaptive continual)
for name in "${names[@]}"; do
    femlm experiment "configs/$name.yaml" --no-report
    femlm report "runs/$name" --out "docs/results/$name"
done
