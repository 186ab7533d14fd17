#!/usr/bin/env bash
# Create or reuse .venv and install femlm with its test tools.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${FEMLM_VENV:-$root/.venv}"
py="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating $venv" >&2
    "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# pip install, tried twice: a CI run once saw pip fail inside itself (a None version
# while reading the index) and succeed on the next try. Each caller checks the
# result explicitly, because `set -e` does not apply when this file is sourced as
# `source setup.sh && ...`, and a failed install must never write the stamp.
pip_install() {
    "${pip[@]}" install "$@" && return 0
    echo "setup: pip install $* failed; trying once more" >&2
    "${pip[@]}" install "$@"
}

# A bare `pip install torch` pulls a multi-GB CUDA build; the CPU build 2.13.0
# is what this project is tested with. Keep any torch the user already has.
if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
    echo "setup: installing torch==2.13.0 (CPU build)" >&2
    pip_install "torch==2.13.0" || { echo "setup: could not install torch" >&2; return 1 2>/dev/null || exit 1; }
fi

# FEMLM_PINS: extra requirements installed with femlm, e.g. the oldest supported
# transformers for scripts/test.sh's second environment.
pins="${FEMLM_PINS:-}"
stamp="$venv/.femlm-installed"
want="$( (cat "$root/pyproject.toml"; echo "$pins") | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing femlm and its dependencies ${pins}" >&2
    # shellcheck disable=SC2086  # pins is a space-separated list of requirements
    pip_install -e "$root[dev]" $pins || { echo "setup: could not install femlm" >&2; return 1 2>/dev/null || exit 1; }
    echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
