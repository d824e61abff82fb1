#!/usr/bin/env bash
# The main job, as far as it goes today: build the toolchain; import the
# bundled tiny GPT-2 (a Hugging Face GPT-2 exported by PyTorch) from ONNX;
# show the layers the importer found; lower it to plan.bin; run the plan on
# the CPU runtime and compare its logits with PyTorch's; then train it on the
# bundled corpus with AdamW on 4 MPI ranks with a hybrid strategy (RANKS and
# STRATEGY override it) and write a consolidated checkpoint.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
fixture=${1:-$root/models/fixtures/gpt2-torchscript}
out=${OUT_DIR:-$build/demo}

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" galvatron-opt galvatron-translate galvatron-run
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
echo "== training on the bundled corpus on ${RANKS:-4} MPI ranks with a hybrid strategy"
# 2-way Megatron tensor parallelism with sequence parallelism in layer 0,
# 2-way Ulysses in layer 1 (checkpointed), ZeRO-2 data parallelism over the
# other 2 ranks, and the vocabulary split 2 ways in the embedding and head.
ranks=${RANKS:-4}
strategy=${STRATEGY:-"tp=2 sp=megatron,ulysses checkpoint=0,1 dp-type=zero2 vocab-tp=2"}
"$build/bin/galvatron-translate" --import-onnx "$fixture/model.onnx" \
  --batch-size 8 --seq-len 32 --state-dict "$fixture/weights.safetensors" \
  -o "$out/train-model.mlir"
"$build/bin/galvatron-opt" "$out/train-model.mlir" \
  --galv-apply-strategy="world-size=$ranks $strategy" \
  --galv-export-config="path=$out/galvatron_config_tiny-gpt2.json" \
  --galv-training-pipeline -o "$out/train.mlir"
echo "strategy (Galvatron's format): $(tr -d '\n ' < "$out/galvatron_config_tiny-gpt2.json")"
"$build/bin/galvatron-translate" --emit-plan --plan-function=train_step \
  "$out/train.mlir" -o "$out/train.bin"
"$build/bin/galvatron-translate" --decode-plan "$out/train.bin" | sed -n 1p
mpirun=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)
rm -rf "$out/checkpoint" "$out/trace"
"${mpirun[@]}" -np "$ranks" "$build/bin/galvatron-run" "$out/train.bin" \
  --weights "$out/train-model.safetensors" \
  --data "$root/models/corpus/tokens.npy" --steps 300 --lr 3e-3 --warmup 20 \
  --cosine --min-lr 3e-4 --log "$out/metrics.jsonl" --trace "$out/trace" \
  --checkpoint-dir "$out/checkpoint" --save-every 100 |
  awk 'NR <= 3 || NR % 50 == 0'
echo "wrote $out/metrics.jsonl (and metrics.rank<r>.jsonl: bytes per collective),"
echo "      $out/trace/trace-rank<r>.json (Perfetto) and the consolidated"
echo "      $out/checkpoint/latest/{model,optimizer}.safetensors (latest names"
echo "      step-000300/; each save is its own step directory with a manifest)"
