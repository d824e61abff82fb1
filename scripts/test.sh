#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test
# (lit + FileCheck suites and GoogleTest, all through ctest). Then it builds
# the whole project again in Debug (asserts on) with AddressSanitizer and
# UndefinedBehaviorSanitizer in $BUILD_DIR-asan and runs the suite there too.
# GALVATRON_SANITIZE=0 skips that second half (for quick local runs; CI runs
# it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
(cd "$build" && ctest --output-on-failure -j"$(nproc)")

if [[ ${GALVATRON_SANITIZE:-1} == 0 ]]; then
  echo "test: GALVATRON_SANITIZE=0: the sanitized Debug suite did not run"
  exit 0
fi

# Debug keeps the asserts (NDEBUG unset); -O1 as ASan's documentation
# advises, since the suite trains models and -O0 would be several times
# slower; -g1 keeps the line tables the reports print at a fraction of
# full debug information's compile and link time. Only galvatron's own code
# is instrumented: LLVM, MLIR, Open MPI and OpenBLAS are Debian's release
# libraries. The CUDA backend is left out of it: nvcc takes no sanitizer
# flags, and its kernels cannot run without a device anyway (the release
# build compiles them).
asan=$build-asan
start=$(date +%s)
BUILD_DIR=$asan BUILD_TYPE=Debug SANITIZE=address,undefined \
  DEBUG_FLAGS="-O1 -g1" CUDA=OFF "$root/scripts/build.sh"
# - detect_leaks=0: every MPI process exits with LeakSanitizer reports of
#   Open MPI's own allocations (libpmix, libopen-pal, and MCA plugins that
#   are unloaded by then, so their frames cannot be named, and so not
#   suppressed either); galvatron's code frees through owners (RAII), and
#   galvatron-opt runs report no leak.
# - allow_user_poisoning=0: LLVM's headers poison and unpoison allocator
#   memory when compiled with ASan, but libLLVM.so and libMLIR.so are not
#   instrumented, so memory they hand out would read as poisoned.
# - abort_on_error: a report ends the process with SIGABRT, not exit code 1,
#   so a test that expects a tool to fail (lit's `not`) cannot take a report
#   for the failure it wanted.
export ASAN_OPTIONS=detect_leaks=0:allow_user_poisoning=0:abort_on_error=1:${ASAN_OPTIONS:-}
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1:${UBSAN_OPTIONS:-}
(cd "$asan" && ctest --output-on-failure -j"$(nproc)")
echo "test: sanitized Debug build and suite: $(($(date +%s) - start)) s"
