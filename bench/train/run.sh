#!/usr/bin/env bash
# Training throughput on one CPU rank: galvatron-run against PyTorch, same
# model (GPT-2-small-shaped, scaled: 4 layers, hidden 256, vocabulary 8192),
# fp32, same thread count, batch x sequence tokens per step, AdamW.
# Needs torch/transformers/safetensors (pip) to make the model once.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build}
bench=${BENCH_DIR:-/tmp/galvatron-bench/train}
batch=${BATCH:-4}
seq=${SEQ:-128}
steps=${STEPS:-12}
threads=${THREADS:-2}
[[ -f $bench/model.onnx ]] ||
  python3 "$root/bench/train/make_model.py" "$bench" "$batch" "$seq"

"$build/bin/galvatron-translate" --import-onnx "$bench/model.onnx" \
  --batch-size "$batch" --seq-len "$seq" \
  --state-dict "$bench/weights.safetensors" -o "$bench/m.mlir"
"$build/bin/galvatron-opt" "$bench/m.mlir" --galv-training-pipeline -o "$bench/t.mlir"
"$build/bin/galvatron-translate" --emit-plan --plan-function=train_step \
  "$bench/t.mlir" -o "$bench/t.bin"
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
"$build/bin/galvatron-run" "$bench/t.bin" --weights "$bench/m.safetensors" \
  --data "$bench/tokens.npy" --steps "$steps" --log "$bench/log.jsonl" > /dev/null
ours=$(tail -n +3 "$bench/log.jsonl" | sed -E 's/.*"ms_per_step": ([0-9.]+).*/\1/' |
  sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
theirs=$(python3 "$root/bench/train/pytorch_train.py" "$bench" "$batch" "$seq" "$steps" "$threads")
pt_ms=$(sed -E 's/.* ([0-9.]+) ms\/step.*/\1/' <<<"$theirs")
tokens=$((batch * seq))
printf '%-12s %12s %12s\n' system ms/step tokens/s
printf '%-12s %12.1f %12.0f\n' galvatron "$ours" "$(echo "$tokens / ($ours / 1000)" | bc -l)"
printf '%-12s %12.1f %12.0f\n' pytorch "$pt_ms" "$(echo "$tokens / ($pt_ms / 1000)" | bc -l)"
printf 'ratio (galvatron / pytorch tokens/s): %.3f\n' "$(echo "$pt_ms / $ours" | bc -l)"
