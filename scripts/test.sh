#!/usr/bin/env bash
# The test suite: lint, format check, then pytest. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
ruff check femlm tests benchmarks
ruff format --check femlm tests benchmarks
python -m pytest -p no:cacheprovider "$@"
