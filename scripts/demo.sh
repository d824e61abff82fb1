#!/usr/bin/env bash
# The main job: build the toolchain; import the bundled tiny GPT-2 (a Hugging
# Face GPT-2 exported by PyTorch) from ONNX; show the layers the importer
# found; lower it to plan.bin and check its logits against PyTorch's on the
# CPU runtime. Then plan training automatically: measure this machine across
# RANKS MPI ranks (galvatron-profile), attach costs (--galv-annotate-costs),
# search the fastest strategy that fits MEMORY_GB per rank, a budget plain
# data parallelism exceeds (--galv-search, report.html), print its
# prediction (--galv-estimate), train it for 300 AdamW steps on the bundled
# corpus under mpirun and draw the loss curve (loss.svg).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
fixture=${1:-$root/models/fixtures/gpt2-torchscript}
out=${OUT_DIR:-$build/demo}

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" galvatron-opt galvatron-translate galvatron-run \
  galvatron-profile
mkdir -p "$out"

echo "== import $fixture/model.onnx"
"$build/bin/galvatron-translate" --import-onnx "$fixture/model.onnx" \
  --batch-size 2 --seq-len 8 --state-dict "$fixture/weights.safetensors" \
  -o "$out/model.mlir" --onnx-import-timing
echo
echo "== layers (galvatron-translate --galv-layer-summary)"
"$build/bin/galvatron-translate" --galv-layer-summary "$out/model.mlir"
echo
echo "== plan.bin (--galv-inference-pipeline, --emit-plan)"
"$build/bin/galvatron-opt" "$out/model.mlir" --galv-inference-pipeline \
  -o "$out/plan.mlir"
"$build/bin/galvatron-translate" --emit-plan "$out/plan.mlir" -o "$out/plan.bin"
"$build/bin/galvatron-translate" --decode-plan "$out/plan.bin" | sed -n 1,3p
echo
echo "== galvatron-run on the CPU, against PyTorch's logits"
"$build/bin/galvatron-run" "$out/plan.bin" \
  --input input_ids="$fixture/input_ids.npy" --weights "$out/model.safetensors" \
  --output "$out/logits.npy" --expect "$fixture/logits.npy" --stats
echo "wrote $out/logits.npy"
echo
ranks=${RANKS:-4}
budget=${MEMORY_GB:-0.00055}
mpirun=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)
echo "== this machine across $ranks MPI ranks (galvatron-profile hardware --quick)"
"${mpirun[@]}" -np "$ranks" "$build/bin/galvatron-profile" hardware --quick \
  -o "$out/hw.json" 2>&1 | tail -n 4
echo
echo "== the fastest plan that fits $budget GB per rank (--galv-search)"
"$build/bin/galvatron-translate" --import-onnx "$fixture/model.onnx" \
  --batch-size 8 --seq-len 32 --state-dict "$fixture/weights.safetensors" \
  -o "$out/train-model.mlir"
"$build/bin/galvatron-opt" "$out/train-model.mlir" \
  --galv-annotate-costs="hardware=$out/hw.json" \
  --galv-search="world-size=$ranks memory-gb=$budget top=20 report=$out/report.html,$out/report.md" \
  --galv-export-config="path=$out/galvatron_config_tiny-gpt2.json" \
  -o "$out/searched.mlir"
sed -n '/^## Chosen/,/^## Alternatives/p' "$out/report.md" | grep -v '^#\|^```\|^$'
grep '^| data parallel (DDP)' "$out/report.md" | awk -F'|' '{print "  plain data parallelism:" $5 "bytes per rank, " $6}'
"$build/bin/galvatron-translate" --galv-layer-summary "$out/searched.mlir"
echo "strategy (Galvatron's format): $(tr -d '\n ' < "$out/galvatron_config_tiny-gpt2.json")"
echo
echo "== its prediction (--galv-estimate) and the training plan"
"$build/bin/galvatron-opt" "$out/searched.mlir" \
  --galv-estimate="out=$out/estimate.json" --galv-training-pipeline \
  -o "$out/train.mlir"
"$build/bin/galvatron-translate" --emit-plan --plan-function=train_step \
  "$out/train.mlir" -o "$out/train.bin"
"$build/bin/galvatron-translate" --decode-plan "$out/train.bin" | sed -n 1p
echo
echo "== training on the bundled corpus on $ranks MPI ranks with the searched plan"
rm -rf "$out/checkpoint" "$out/trace"
"${mpirun[@]}" -np "$ranks" "$build/bin/galvatron-run" "$out/train.bin" \
  --weights "$out/train-model.safetensors" \
  --data "$root/models/corpus/tokens.npy" --steps 300 --lr 3e-3 --warmup 20 \
  --cosine --min-lr 3e-4 --log "$out/metrics.jsonl" --trace "$out/trace" \
  --checkpoint-dir "$out/checkpoint" --save-every 100 |
  awk 'NR <= 3 || NR % 50 == 0'
python3 "$root/scripts/loss-curve.py" "$out/metrics.jsonl" "$out/loss.svg" \
  --title "tiny GPT-2, searched plan on $ranks ranks"
echo "wrote $out/report.html (the search: plan, pipeline and memory charts,"
echo "      alternatives), $out/loss.svg (the loss curve),"
echo "wrote $out/metrics.jsonl (and metrics.rank<r>.jsonl: bytes per collective),"
echo "      $out/trace/trace-rank<r>.json (Perfetto) and the consolidated"
echo "      $out/checkpoint/latest/{model,optimizer}.safetensors (latest names"
echo "      step-000300/; each save is its own step directory with a manifest)"
