#!/usr/bin/env bash
# The test suite: lint, format check, then pytest. Extra arguments go to pytest.
# Then the wheel as users install it (scripts/test_wheel.sh; FEMLM_WHEEL=0 skips it).
# Then the interop tests (pytest -m interop) again on the oldest transformers that
# pyproject admits, in a second cached environment .venv-oldest (FEMLM_OLDEST=0 skips it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OLDEST_TRANSFORMERS="transformers==4.44.2"
source "$root/scripts/setup.sh"
cd "$root"
ruff check femlm tests benchmarks
ruff format --check femlm tests benchmarks
python -m pytest -p no:cacheprovider "$@"

if [ "${FEMLM_WHEEL:-1}" != "0" ]; then
    echo "test: the built wheel, installed into .venv-wheel" >&2
    bash "$root/scripts/test_wheel.sh"
fi

if [ "${FEMLM_OLDEST:-1}" != "0" ]; then
    echo "test: interop tests on $OLDEST_TRANSFORMERS (.venv-oldest)" >&2
    FEMLM_VENV="$root/.venv-oldest" FEMLM_PINS="$OLDEST_TRANSFORMERS" \
        bash -c 'source "$1/scripts/setup.sh" && python -m pytest -p no:cacheprovider -m interop' _ "$root"
fi
