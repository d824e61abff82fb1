#!/usr/bin/env bash
# Memory and communication per rank of hybrid strategies on 4 MPI ranks, for
# the GPT-2-small-shaped benchmark model (4 layers, hidden 256, vocabulary
# 8192; bench/train/make_model.py, needs torch once). Its ONNX export has a
# static batch of 4 x 128 tokens: every row runs that batch, the pipeline
# rows 4 of them per step (chunks=4, 16 samples). Per strategy, the
# largest rank's optimizer state (parameters + Adam moments, bytes bound as
# inputs), its arena (the memory planner's peak for activations, gradients
# and new state), the bytes it hands to collectives per step (its log), and
# the step time. fp32 on the CPU backend; 4 ranks share this machine's
# cores, so the times compare strategies only roughly.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build}
bench=${BENCH_DIR:-/tmp/galvatron-bench/train}
work=${WORK_DIR:-/tmp/galvatron-bench/parallel}
seq=${SEQ:-128}
steps=${STEPS:-6}
[[ -f $bench/model.onnx ]] ||
  python3 "$root/bench/train/make_model.py" "$bench" 4 128
mkdir -p "$work"
mpirun=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)

strategies=(
  "1|world-size=1"
  "4|world-size=4"
  "4|world-size=4 dp-type=zero2"
  "4|world-size=4 dp-type=zero3"
  "4|world-size=4 tp=4 vocab-tp=4"
  "4|world-size=4 tp=2"
  "4|world-size=4 tp=2 sp=megatron vocab-tp=2"
  "4|world-size=4 tp=2 sp=ulysses"
  "4|world-size=4 tp=2 checkpoint=1"
  "4|world-size=4 pp=2 chunks=4"
  "4|world-size=4 pp=2 chunks=4 pipeline=pipedream_flush"
)
printf '%-52s %12s %12s %14s %10s\n' strategy state_MB arena_MB comm_MB/step ms/step
for entry in "${strategies[@]}"; do
  ranks=${entry%%|*}
  flags=${entry#*|}
  model=$work/m
  [[ -f $model.mlir ]] ||
    "$build/bin/galvatron-translate" --import-onnx "$bench/model.onnx" \
      --seq-len "$seq" -o "$model.mlir"
  plan=$work/plan
  "$build/bin/galvatron-opt" "$model.mlir" --galv-apply-strategy="$flags" \
    --galv-training-pipeline -o "$plan.mlir"
  "$build/bin/galvatron-translate" --emit-plan --plan-function=train_step \
    "$plan.mlir" -o "$plan.bin"
  # Per rank: state bytes (inputs whose role is Parameter, AdamM or AdamV)
  # and arena; keep the largest.
  read -r state arena < <("$build/bin/galvatron-translate" --decode-plan "$plan.bin" |
    awk '/^rank/ { if (s > ms) ms = s; s = 0; if ($4 > ma) ma = $4 }
         / Input / && / (Parameter|AdamM|AdamV)\(/ && match($0, /\([0-9]+ bytes\)/) {
           s += substr($0, RSTART + 1, RLENGTH - 8) }
         END { if (s > ms) ms = s; print ms, ma }')
  rm -f "$work"/log*.jsonl
  launch=()
  [[ $ranks -gt 1 ]] && launch=("${mpirun[@]}" -np "$ranks")
  "${launch[@]}" "$build/bin/galvatron-run" "$plan.bin" --weights "$model.safetensors" \
    --steps "$steps" --data "$root/models/corpus/tokens.npy" --log "$work/log.jsonl" > /dev/null
  comm=$(cat "$work"/log*.jsonl | python3 -c '
import json, sys
worst = 0
for line in sys.stdin:
    worst = max(worst, sum(json.loads(line)["comm_bytes"].values()))
print(worst)')
  ms=$(tail -n +3 "$work/log.jsonl" | sed -E 's/.*"ms_per_step": ([0-9.]+).*/\1/' |
    sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  printf '%-52s %12.2f %12.2f %14.2f %10.1f\n' "$flags" "$(bc -l <<<"$state / 1000000")" \
    "$(bc -l <<<"$arena / 1000000")" "$(bc -l <<<"$comm / 1000000")" "$ms"
done
