#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + coverage) in build-fuzz/ and
# runs the ONNX importer fuzzer for $1 seconds (default 300) on the seed
# corpus in fuzz/corpus/onnx-import (grown in a scratch copy).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${1:-300}
if [[ ! -f $build/build.ninja ]]; then
  cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DGALVATRON_ENABLE_FUZZERS=ON \
    -DLLVM_EXTERNAL_LIT="$(llvm-config-22 --bindir)/lit"
fi
ninja -C "$build" onnx-import-fuzzer
corpus=$(mktemp -d)
cp "$root"/fuzz/corpus/onnx-import/* "$corpus"/
# LLVM's allocators poison memory in ASan builds; libMLIR.so is not
# instrumented, so that poisoning would raise false alarms.
export ASAN_OPTIONS=allow_user_poisoning=0:${ASAN_OPTIONS:-}
"$build/bin/onnx-import-fuzzer" "$corpus" -max_total_time="$seconds" \
  -max_len=4096 -rss_limit_mb=4096 -print_final_stats=1
