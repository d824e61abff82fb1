#!/usr/bin/env bash
# The main job, as far as it goes today: build the toolchain, then parse and
# verify the bundled example model IR, show its layer table, and flatten it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
model=${1:-$root/models/examples/tiny-gpt.mlir}

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" galvatron-opt galvatron-translate

echo "== verify $model"
"$build/bin/galvatron-opt" "$model" -o /dev/null && echo "ok: the IR parses and verifies"
echo
echo "== layer table (galvatron-translate --galv-layer-summary)"
"$build/bin/galvatron-translate" --galv-layer-summary "$model"
echo
echo "== flattened forward graph (galvatron-opt --galv-inline-layers --canonicalize)"
"$build/bin/galvatron-opt" "$model" --galv-inline-layers --canonicalize
