#!/usr/bin/env bash
# Builds the runtime alone with clang (libFuzzer, ASan, UBSan) in
# build-fuzz-plan/ and fuzzes plan.bin for $1 seconds (default 600): the
# reader, the verifier and rank 0's executor. Seeds: the plans the test
# suite wrote under build/ (run ./scripts/test.sh first), headers stripped.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz-plan}
seconds=${1:-600}
if [[ ! -f $build/build.ninja ]]; then
  cmake -G Ninja -S "$root/runtime" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DGALVATRON_RUNTIME_FUZZERS=ON
fi
ninja -C "$build" plan-fuzzer
corpus=$(mktemp -d)
n=0
while IFS= read -r plan; do
  tail -c +17 "$plan" > "$corpus/seed-$n" && n=$((n + 1))
done < <(find "${BUILD_DIR:-$root/build}/test" -name '*.bin' -size -512k 2>/dev/null | head -200)
echo "fuzz-plan: $n seed plans"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}
"$build/bin/plan-fuzzer" "$corpus" -max_total_time="$seconds" \
  -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1
