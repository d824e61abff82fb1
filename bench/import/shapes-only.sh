#!/usr/bin/env bash
# Shapes-only import benchmark: the weightless LLaMA-2-7B export (292
# initializers referencing 27 GB of external data that does not exist)
# imported with --shapes-only. Prints the import's phases, the wall time and
# the peak resident memory (/usr/bin/time -v). The export is made once by
# models/export_shapes_only.py with $PYTHON (default: the venv that script's
# header describes, /tmp/venv-export) into $SHAPES_DIR (default
# /tmp/shapes-only). Target: under 2 s and 200 MB.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build}
dir=${SHAPES_DIR:-/tmp/shapes-only}
python=${PYTHON:-/tmp/venv-export/bin/python}
model=${MODEL:-llama2-7b}
[[ -f $dir/$model/model.onnx ]] ||
  "$python" "$root/models/export_shapes_only.py" --model "$model" --out "$dir"

out=$dir/$model/out.mlir
log=$dir/$model/time.log
/usr/bin/time -v "$build/bin/galvatron-translate" --import-onnx \
  "$dir/$model/model.onnx" --shapes-only --batch-size "${BATCH:-1}" \
  --seq-len "${SEQ:-2048}" --onnx-import-timing -o "$out" 2>"$log"
grep '^import timing' "$log"
wall=$(sed -nE 's/.*Elapsed \(wall clock\) time.*: (.*)/\1/p' "$log")
rss=$(sed -nE 's/.*Maximum resident set size \(kbytes\): ([0-9]+)/\1/p' "$log")
printf '%s: %.1f MB model.onnx, wall %s, peak RSS %.0f MB, %s parameters, %s layer instances\n' \
  "$model" "$(echo "$(stat -c %s "$dir/$model/model.onnx") / 1000000" | bc -l)" "$wall" \
  "$(echo "$rss / 1024" | bc -l)" "$(grep -c 'galv.parameter @' "$out")" \
  "$(grep -c 'galv.layer @' "$out")"
