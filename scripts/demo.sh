#!/usr/bin/env bash
# The main job. Extra arguments go to `femlm mask`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
femlm mask "$@"
