#!/usr/bin/env bash
# The search pass at scale: shapes-only LLaMA-2-7B on 8, 64 and 512 devices,
# LLaMA-2-70B on 64 and 512, the GPT-3-175B-shaped model on 1024, each with
# the native costs of a DGX-H100 preset (bf16). Default settings are
# Galvatron's README ones: 36 GB per device, global batch 64 in 16 chunks;
# MEMORY_GB, BATCH and CHUNKS override them (apply=0: the report names the
# plan; applying it needs the module imported at batch BATCH / CHUNKS).
#
#   bench/search/scale.sh [EXPORT_DIR]
#
# EXPORT_DIR holds <model>/model.onnx from models/export_shapes_only.py
# (default /tmp/shapes-only; the script writes missing ones when
# /tmp/venv-export has torch). Prints a Markdown table.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BUILD_DIR:-$root/build}/bin
exports=${1:-/tmp/shapes-only}
work=$(mktemp -d /tmp/galvatron-scale-XXXXXX)
cases=(
  "llama2-7b 8 dgx-h100-1n"
  "llama2-7b 64 dgx-h100-8n"
  "llama2-7b 512 dgx-h100-64n"
  "llama2-70b 64 dgx-h100-8n"
  "llama2-70b 512 dgx-h100-64n"
  "gpt3-175b 1024 dgx-h100-128n"
)
echo "| model | devices | preset | import (s) | search (s) | candidates | peak RSS (MB) | chosen (pp, layer 0) | samples/s |"
echo "|---|---|---|---|---|---|---|---|---|"
for entry in "${cases[@]}"; do
  read -r model devices preset <<<"$entry"
  onnx=$exports/$model/model.onnx
  if [ ! -f "$onnx" ]; then
    /tmp/venv-export/bin/python "$root/models/export_shapes_only.py" \
      --model "$model" --out "$exports/$model" >/dev/null
  fi
  mlir=$work/$model.mlir
  start=$(date +%s.%N)
  [ -f "$mlir" ] || "$bin/galvatron-translate" --import-onnx "$onnx" --shapes-only \
    --batch-size 1 --seq-len 2048 -o "$mlir"
  imported=$(echo "$(date +%s.%N) - $start" | bc)
  /usr/bin/time -f "%M" -o "$work/rss" "$bin/galvatron-opt" "$mlir" \
    --galv-annotate-costs="hardware=preset:$preset precision=bf16" \
    --galv-search="world-size=$devices memory-gb=${MEMORY_GB:-36} global-batch=${BATCH:-64} chunks=${CHUNKS:-16} apply=0 report=$work/r.json" \
    -o /dev/null
  python3 - "$work/r.json" "$model" "$devices" "$preset" "$imported" "$(cat "$work/rss")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rss = int(sys.argv[6]) / 1024
c = r["chosen"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {float(sys.argv[5]):.2f} | "
      f"{r['search_seconds']:.3f} | {r['candidates_weighed']} | {rss:.0f} | pp {c['pp']}, "
      f"{c['layers'][0]}, {c['chunks']} chunks | {c['samples_per_s']:.1f} |")
PY
done
rm -rf "$work"
