#!/usr/bin/env bash
# The main job: `femlm demo`. Extra arguments go to it (e.g. --out-dir DIR).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
femlm demo "$@"
