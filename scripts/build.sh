#!/usr/bin/env bash
# Configures (once) and builds galvatron with ninja into ./build (or $BUILD_DIR).
# A new build directory takes BUILD_TYPE (Release), SANITIZE (sanitizers for
# galvatron's own code, e.g. address,undefined) and DEBUG_FLAGS (the Debug
# build type's compiler flags, CMake's -g by default) and CUDA (OFF leaves the
# CUDA backend out even where nvcc is found).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
llvm_bin=$(llvm-config-22 --bindir 2>/dev/null || echo /usr/lib/llvm-22/bin)

if [[ ! -f $build/build.ninja ]]; then
  options=()
  [[ -n ${SANITIZE:-} ]] && options+=("-DGALVATRON_SANITIZERS=$SANITIZE")
  [[ -n ${DEBUG_FLAGS:-} ]] && options+=("-DCMAKE_CXX_FLAGS_DEBUG=$DEBUG_FLAGS")
  [[ -n ${CUDA:-} ]] && options+=("-DGALVATRON_CUDA=$CUDA")
  cmake -G Ninja -S "$root" -B "$build" \
    -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" \
    -DLLVM_EXTERNAL_LIT="$llvm_bin/lit" \
    -DCMAKE_C_COMPILER="${CC:-gcc}" -DCMAKE_CXX_COMPILER="${CXX:-g++}" \
    "${options[@]}"
fi
start=$(date +%s)
ninja -C "$build" "$@"
echo "build: $(( $(date +%s) - start ))s"
