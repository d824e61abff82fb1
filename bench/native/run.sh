#!/usr/bin/env bash
# Native cost model against the CPU runtime: for each strategy, what
# --galv-estimate predicts (step time from the native model on this
# machine's hw.json, peak memory and bytes sent from the lowered plan) next
# to what galvatron-run measures (median ms per step over the last steps,
# the largest rank's tensor bytes, the bytes its communicator counted).
#
#   bench/native/run.sh [STEPS]
#
# The hardware of each case is a fresh `mpirun -np R galvatron-profile
# hardware --quick` at the case's rank count R (ranks share the cores, so
# the rates depend on it). Prints a Markdown table.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build}
bin=$build/bin
work=$(mktemp -d /tmp/galvatron-native-XXXXXX)
steps=${1:-30}
mpirun=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)
export OMPI_MCA_orte_tmpdir_base=$work
for r in 1 2 4; do
  "${mpirun[@]}" -np $r "$bin/galvatron-profile" hardware --quick \
    -o "$work/hw$r.json" >/dev/null 2>&1
done
fixture=$root/models/fixtures/gpt2-torchscript
"$bin/galvatron-translate" --import-onnx "$fixture/model.onnx" --batch-size 8 \
  --seq-len 32 --state-dict "$fixture/weights.safetensors" -o "$work/m.mlir"

strategies=(
  "1|"
  "1|checkpoint=1"
  "2|"
  "2|dp-type=zero2"
  "2|tp=2"
  "2|tp=2 sp=megatron vocab-tp=2"
  "2|pp=2 chunks=2 pipeline=pipedream_flush"
  "2|tp=2 sp=ulysses"
  "4|"
  "4|dp-type=zero3"
  "4|tp=2 sp=megatron"
  "4|tp=4 sp=megatron vocab-tp=4"
  "4|pp=2 tp=2 chunks=2"
  "4|tp=2 tp-consec=0 dp-type=zero2 checkpoint=1"
)
echo "| ranks | strategy | predicted ms/step | measured ms/step | time error | predicted peak bytes | measured peak bytes | bytes sent equal |"
echo "|---|---|---|---|---|---|---|---|"
for entry in "${strategies[@]}"; do
  ranks=${entry%%|*}
  flags=${entry#*|}
  tag=$work/s$RANDOM
  chunks=1
  [[ $flags =~ chunks=([0-9]+) ]] && chunks=${BASH_REMATCH[1]}
  model=$work/m.mlir
  if [ "$chunks" != 1 ]; then
    model=$work/m$chunks.mlir
    [ -f "$model" ] || "$bin/galvatron-translate" --import-onnx "$fixture/model.onnx" \
      --batch-size $((8 / chunks)) --seq-len 32 \
      --state-dict "$fixture/weights.safetensors" -o "$model"
  fi
  "$bin/galvatron-opt" "$model" --galv-apply-strategy="world-size=$ranks $flags" \
    --galv-annotate-costs="hardware=$work/hw$ranks.json" \
    --galv-estimate="out=$tag.est.json" \
    --galv-training-pipeline -o "$tag.mlir" >/dev/null
  "$bin/galvatron-translate" --emit-plan --plan-function=train_step "$tag.mlir" -o "$tag.bin"
  run=("$bin/galvatron-run" "$tag.bin" --weights "${model%.mlir}.safetensors"
       --data "$root/models/corpus/tokens.npy" --steps "$steps" --lr 1e-3 --log "$tag.jsonl")
  if [ "$ranks" = 1 ]; then "${run[@]}" >/dev/null; else "${mpirun[@]}" -np "$ranks" "${run[@]}" >/dev/null; fi
  python3 - "$tag" "$ranks" "${flags:-data parallel}" <<'PY'
import json, statistics, sys
tag, ranks, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3]
est = json.load(open(tag + ".est.json"))
logs = [[json.loads(l) for l in open(tag + (".jsonl" if r == 0 else f".rank{r}.jsonl"))]
        for r in range(ranks)]
half = len(logs[0]) // 2
measured_ms = statistics.median(x["ms_per_step"] for x in logs[0][half:])
predicted_ms = est["step_time_s"] * 1000
measured_peak = max(x["tensor_bytes"] for log in logs for x in log)
predicted_peak = max(s["peak_memory_bytes"] for s in est["stages"])
same = all(est["ranks"][r]["bytes_sent"] == logs[r][-1]["comm_bytes"] for r in range(ranks))
print(f"| {ranks} | {flags} | {predicted_ms:.3f} | {measured_ms:.3f} | "
      f"{(predicted_ms / measured_ms - 1) * 100:+.0f}% | {predicted_peak:.0f} | "
      f"{measured_peak} | {'yes' if same else 'NO'} |")
PY
done
rm -rf "$work"
