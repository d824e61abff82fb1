#!/usr/bin/env bash
# The main job, as far as it goes today: build the toolchain, import the
# bundled GPT-2 (a tiny Hugging Face GPT-2 exported by PyTorch) from ONNX into
# galv IR with its weights, and show the layer structure the importer found.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
model=${1:-$root/models/fixtures/gpt2-torchscript/model.onnx}
out=${OUT_DIR:-$build/demo}

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" galvatron-opt galvatron-translate
mkdir -p "$out"

echo "== import $model"
"$build/bin/galvatron-translate" --import-onnx "$model" --batch-size 2 \
  --seq-len 8 -o "$out/model.mlir" --onnx-import-timing
echo "wrote $out/model.mlir and $out/model.safetensors"
echo
echo "== layer table (galvatron-translate --galv-layer-summary)"
"$build/bin/galvatron-translate" --galv-layer-summary "$out/model.mlir"
echo
echo "== the outlined Transformer block"
sed -n '/galv.layer_type/,/galv.return/p' "$out/model.mlir" | cut -c1-160
