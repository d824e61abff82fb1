#!/usr/bin/env bash
# Training throughput on one CPU rank: galvatron-run against PyTorch eager and
# torch.compile, same model (GPT-2-small-shaped, scaled: by default 4 layers,
# hidden 256, 4 heads, vocabulary 8192), fp32, same thread count, batch x
# sequence tokens per step, AdamW. Prints ms/step, tokens/s and peak memory.
# Needs torch/transformers/safetensors (pip) to make the model once and for
# the PyTorch side; PYTHON names that interpreter (python3 by default).
#   LAYERS=8 HIDDEN=512 HEADS=8 SEQ=512 BATCH=1 bench/train/run.sh
#   PIPELINE='fused-backward=false' bench/train/run.sh   (an unfused baseline)
#   COMPILE=0 skips torch.compile (its compilation takes minutes).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build}
batch=${BATCH:-4}
seq=${SEQ:-128}
layers=${LAYERS:-4}
hidden=${HIDDEN:-256}
heads=${HEADS:-4}
steps=${STEPS:-12}
threads=${THREADS:-2}
python=${PYTHON:-python3}
bench=${BENCH_DIR:-/tmp/galvatron-bench/train-l${layers}h${hidden}-b${batch}s${seq}}
[[ -f $bench/model.onnx ]] ||
  "$python" "$root/bench/train/make_model.py" "$bench" "$batch" "$seq" \
    "$layers" "$hidden" "$heads"

"$build/bin/galvatron-translate" --import-onnx "$bench/model.onnx" \
  --batch-size "$batch" --seq-len "$seq" \
  --state-dict "$bench/weights.safetensors" -o "$bench/m.mlir"
"$build/bin/galvatron-opt" "$bench/m.mlir" \
  --galv-training-pipeline="${PIPELINE:-}" -o "$bench/t.mlir"
"$build/bin/galvatron-translate" --emit-plan --plan-function=train_step \
  "$bench/t.mlir" -o "$bench/t.bin"
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
"$build/bin/galvatron-run" "$bench/t.bin" --weights "$bench/m.safetensors" \
  --data "$bench/tokens.npy" --steps "$steps" --log "$bench/log.jsonl" > /dev/null
# Median step time after two warm-up steps; peak RSS and arena of the run.
field() { tail -n +3 "$bench/log.jsonl" | sed -E "s/.*\"$1\": ([0-9.]+).*/\\1/"; }
ours=$(field ms_per_step | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
ours_rss=$(field peak_rss_mb | sort -n | tail -1)
arena_mb=$(echo "$(field arena_bytes | tail -1) / 1048576" | bc -l)

shape=("$bench" "$batch" "$seq" "$steps" "$threads" "$layers" "$hidden" "$heads")
eager=$("$python" "$root/bench/train/pytorch_train.py" "${shape[@]}")
compiled=""
[[ ${COMPILE:-1} == 0 ]] ||
  compiled=$("$python" "$root/bench/train/pytorch_train.py" "${shape[@]}" --compile)
ms() { sed -E 's/.* ([0-9.]+) ms\/step.*/\1/' <<<"$1"; }
rss() { sed -E 's/.*peak_rss_mb ([0-9.]+).*/\1/' <<<"$1"; }
tokens=$((batch * seq))
echo "model: $layers layers, hidden $hidden, $heads heads, batch $batch x seq $seq, $threads threads"
printf '%-14s %10s %10s %12s %10s\n' system ms/step tokens/s peak_rss_mb arena_mb
printf '%-14s %10.1f %10.0f %12.0f %10.1f\n' galvatron "$ours" \
  "$(echo "$tokens / ($ours / 1000)" | bc -l)" "$ours_rss" "$arena_mb"
row() {
  printf '%-14s %10.1f %10.0f %12.0f %10s\n' "$1" "$(ms "$2")" \
    "$(echo "$tokens / ($(ms "$2") / 1000)" | bc -l)" "$(rss "$2")" -
}
row pytorch "$eager"
[[ -z $compiled ]] || row torch.compile "$compiled"
printf 'ratio (galvatron / pytorch eager tokens/s): %.3f\n' "$(echo "$(ms "$eager") / $ours" | bc -l)"
[[ -z $compiled ]] ||
  printf 'ratio (galvatron / torch.compile tokens/s): %.3f\n' "$(echo "$(ms "$compiled") / $ours" | bc -l)"
