#!/usr/bin/env bash
# The package as users get it: build the sdist and the wheel, install the wheel (not
# editable) into a clean environment .venv-wheel, and run the command line and the
# interop tests against that install, from outside the source tree so that nothing
# imports the checkout by accident. Called by scripts/test.sh (FEMLM_WHEEL=0 skips it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-wheel"
dist="$(mktemp -d)"
trap 'rm -rf "$dist"' EXIT
pip=("$root/.venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install build >/dev/null
"$root/.venv/bin/python" -m build --sdist --wheel --outdir "$dist" "$root" >/dev/null
wheel=$(ls "$dist"/femlm-*.whl)
echo "test_wheel: built $(basename "$wheel") and $(basename "$(ls "$dist"/femlm-*.tar.gz)")" >&2

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
vpip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"$venv/bin/python" -c "import torch" 2>/dev/null || "${vpip[@]}" install "torch==2.13.0"
"${vpip[@]}" install "pytest>=8" "hypothesis>=6.100" "accelerate>=0.30"
"${vpip[@]}" install --force-reinstall --no-deps "$wheel"
"${vpip[@]}" install "$wheel"  # its dependencies, where missing

cd "$dist"  # nowhere near the checkout
"$venv/bin/python" - <<'PY'
import femlm, pathlib
where = pathlib.Path(femlm.__file__).resolve()
assert "site-packages" in where.parts, f"femlm imported from {where}, not the installed wheel"
print(f"test_wheel: femlm {femlm.__version__} from {where.parent}")
PY
"$venv/bin/femlm" --help >/dev/null
"$venv/bin/femlm" mask "some text" --strategy fully-explored --views 2 >/dev/null
"$venv/bin/python" -m pytest -p no:cacheprovider -q -m interop -c "$root/pyproject.toml" \
    --rootdir "$root" "$root/tests"
