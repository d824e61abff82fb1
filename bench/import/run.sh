#!/usr/bin/env bash
# Import benchmark: a GPT-2-medium-shaped model (24 layers, 355M parameters)
# exported by the dynamo exporter, with weights in external data and inline.
# Prints one row per variant: phases of the import, total wall time and peak
# resident memory. Needs torch/transformers (pip) to make the model once;
# the exports are cached in $BENCH_DIR (default /tmp/galvatron-bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build}
bench=${BENCH_DIR:-/tmp/galvatron-bench}
[[ -f $bench/external/model.onnx ]] ||
  python3 "$root/bench/import/make_gpt2_medium.py" "$bench/external" --external
[[ -f $bench/inline/model.onnx ]] ||
  python3 "$root/bench/import/make_gpt2_medium.py" "$bench/inline"

printf '%-9s %8s %8s %8s %9s %10s %9s %10s %9s\n' variant parse_s \
  graph_s cleanup_s weights_s weight_MB wall_s peak_MB layers
for variant in external inline; do
  dir=$bench/$variant
  sync
  log=$( { /usr/bin/time -f 'WALL %e RSS %M' \
    "$build/bin/galvatron-translate" --import-onnx "$dir/model.onnx" \
    --batch-size 1 --seq-len 128 -o "$dir/out.mlir" --onnx-import-timing; } 2>&1 )
  timing=$(grep '^import timing' <<<"$log")
  num() { sed -E "s/.*$1 ([0-9.]+).*/\1/" <<<"$timing"; }
  wall=$(sed -E 's/.*WALL ([0-9.]+).*/\1/' <<<"$(grep WALL <<<"$log")")
  rss=$(sed -E 's/.*RSS ([0-9]+).*/\1/' <<<"$(grep WALL <<<"$log")")
  layers=$(grep -c 'galv.layer @' "$dir/out.mlir")
  printf '%-9s %8s %8s %8s %9s %10s %9s %10.0f %9s\n' "$variant" \
    "$(num parse)" "$(num graph)" "$(num clean-up)" "$(num 'weights written')" \
    "$(sed -E 's/.*\(([0-9.]+) MB\).*/\1/' <<<"$timing")" "$wall" \
    "$(echo "$rss / 1024" | bc -l)" "$layers"
done
