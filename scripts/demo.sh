#!/usr/bin/env bash
# The main job, as far as it goes today: build the toolchain; import the
# bundled tiny GPT-2 (a Hugging Face GPT-2 exported by PyTorch) from ONNX;
# show the layers the importer found; lower it to plan.bin; run the plan on
# the CPU runtime and compare its logits with PyTorch's.
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
