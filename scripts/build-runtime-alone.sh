#!/usr/bin/env bash
# Builds runtime/ as a CMake project of its own, in a fresh build directory,
# with LLVM and MLIR out of CMake's sight, and proves that nothing of theirs
# gets in: the configure calls no find_package(LLVM/MLIR/Clang), no compile
# command or link line names them, and galvatron-run links neither (ldd, nm).
# Then a smoke run of the galvatron-run it built.
#
#   scripts/build-runtime-alone.sh [--make-plans BIN] [--reference-run BIN]
#
# --make-plans: galvatron-make-test-plans (from the full build), to train and
#   run the hand-built toy plans; without it the smoke run is --help only.
# --reference-run: the full build's galvatron-run; the standalone one must
#   give the same bytes and losses.
# Environment: JOBS (ninja -j, default nproc), KEEP_BUILD=1 keeps the build
# directory (printed), CXX (default g++), CUDA (default OFF: the CUDA
# backend's kernels take minutes to compile and the full build compiles
# them; CUDA=ON builds them here too).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
make_plans="" reference_run=""
while [[ $# -gt 0 ]]; do
  case $1 in
  --make-plans) make_plans=$2; shift 2 ;;
  --reference-run) reference_run=$2; shift 2 ;;
  *) echo "usage: $0 [--make-plans BIN] [--reference-run BIN]" >&2; exit 2 ;;
  esac
done

fail() {
  echo "build-runtime-alone: FAIL: $*" >&2
  exit 1
}

build=$(mktemp -d "${TMPDIR:-/tmp}/galvatron-runtime-alone.XXXXXX")
if [[ ${KEEP_BUILD:-0} == 1 ]]; then
  echo "build directory: $build"
else
  trap 'rm -rf "$build"' EXIT
fi

# Every LLVM install this machine has, hidden from find_package and
# find_program; no LLVM directory on PATH or in CMake's environment hints.
llvm_prefixes=$(ls -d /usr/lib/llvm-* /usr/local/opt/llvm* /opt/llvm* 2>/dev/null |
  tr '\n' ';' || true)
clean_path=$(echo "$PATH" | tr ':' '\n' | grep -v -i -E 'llvm|mlir' |
  paste -sd: -)
start=$(date +%s)
env -u LLVM_DIR -u MLIR_DIR -u CMAKE_PREFIX_PATH PATH="$clean_path" \
  cmake -G Ninja -S "$root/runtime" -B "$build" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="${CXX:-g++}" \
  -DCMAKE_C_COMPILER="${CC:-gcc}" \
  -DCMAKE_IGNORE_PREFIX_PATH="$llvm_prefixes" \
  -DCMAKE_DISABLE_FIND_PACKAGE_LLVM=ON -DCMAKE_DISABLE_FIND_PACKAGE_MLIR=ON \
  -DGALVATRON_CUDA="${CUDA:-OFF}" \
  --trace-format=json-v1 --trace-redirect="$build/cmake-trace.json" \
  > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log" >&2; fail "runtime/ does not configure alone"; }

# The configure looked for no LLVM, MLIR or Clang package.
python3 - "$build/cmake-trace.json" <<'EOF' || fail "the configure calls find_package for LLVM/MLIR"
import json, sys
bad = []
for line in open(sys.argv[1]):
    event = json.loads(line)
    if event.get("cmd", "").lower() == "find_package" and event["args"] and \
            event["args"][0].upper() in ("LLVM", "MLIR", "CLANG"):
        bad.append(f"{event['file']}:{event['line']}: find_package({' '.join(event['args'])})")
print("\n".join(bad), file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
# No compile command, include path, definition or link line names them.
if grep -i -n -E 'llvm|mlir' "$build/compile_commands.json" >&2; then
  fail "a compile command names LLVM/MLIR"
fi
if grep -E '^\s*(FLAGS|INCLUDES|DEFINES|LINK_FLAGS|LINK_LIBRARIES|LINK_PATH) =' \
  "$build/build.ninja" | grep -i -E 'llvm|mlir' >&2; then
  fail "a compile or link line in build.ninja names LLVM/MLIR"
fi

nice ninja -C "$build" -j"${JOBS:-$(nproc)}" galvatron-run > "$build/build.log" 2>&1 ||
  { tail -40 "$build/build.log" >&2; fail "galvatron-run does not build alone"; }
run=$build/bin/galvatron-run
if ldd "$run" | grep -i -E 'llvm|mlir' >&2; then
  fail "galvatron-run links an LLVM/MLIR library"
fi
if nm -C "$run" | grep -E '(llvm|mlir)::' | head -5 >&2; then
  fail "galvatron-run holds LLVM/MLIR symbols"
fi
echo "configured and built runtime/ alone in $(($(date +%s) - start))s"

# Smoke run: --help says how to call it; a missing plan is refused by name.
set +e
"$run" --help > "$build/help.txt" 2>&1
code=$?
set -e
[[ $code == 2 ]] && grep -q 'usage: .*galvatron-run plan.bin' "$build/help.txt" ||
  fail "galvatron-run --help: exit $code, $(head -c 300 "$build/help.txt")"
set +e
"$run" "$build/no-such-plan.bin" > "$build/missing.txt" 2>&1
code=$?
set -e
[[ $code == 1 ]] && grep -q 'no-such-plan.bin' "$build/missing.txt" ||
  fail "a missing plan: exit $code, $(head -c 300 "$build/missing.txt")"

if [[ -n $make_plans ]]; then
  data=$build/smoke
  mkdir -p "$data"
  "$make_plans" "$data"
  # Train the toy plan 6 steps with checkpoints, resume the last 3 from
  # step 3's, and run the toy forward plan.
  "$run" "$data/toy-train-1.bin" --steps 6 --data "$data/tokens.npy" \
    --lr 0.25 --log "$data/alone.jsonl" --checkpoint-dir "$data/ckpt" \
    --save-every 3 > /dev/null || fail "training the toy plan"
  grep -q '"step": 6, "loss": 19.5429688' "$data/alone.jsonl" ||
    fail "toy training: step 6's loss is not 19.5429688: $(tail -1 "$data/alone.jsonl")"
  "$run" "$data/toy-train-1.bin" --steps 6 --data "$data/tokens.npy" \
    --lr 0.25 --log "$data/resumed.jsonl" \
    --resume "$data/ckpt/step-000003" > /dev/null || fail "resuming the toy plan"
  diff <(grep -o '"step": [4-6], "loss": [-0-9.e]*' "$data/alone.jsonl") \
    <(grep -o '"step": [0-9]*, "loss": [-0-9.e]*' "$data/resumed.jsonl") >&2 ||
    fail "resumed losses differ"
  "$run" "$data/toy-forward-1.bin" --input x="$data/x.npy" \
    --output y="$data/y-alone.npy" > /dev/null || fail "the toy forward plan"
  if [[ -n $reference_run ]]; then
    "$reference_run" "$data/toy-forward-1.bin" --input x="$data/x.npy" \
      --output y="$data/y-full.npy" > /dev/null
    cmp "$data/y-alone.npy" "$data/y-full.npy" ||
      fail "the standalone and the full build's galvatron-run differ"
    "$reference_run" "$data/toy-train-1.bin" --steps 6 --data "$data/tokens.npy" \
      --lr 0.25 --log "$data/full.jsonl" > /dev/null
    diff <(grep -o '"step": [0-9]*, "loss": [-0-9.e]*' "$data/alone.jsonl") \
      <(grep -o '"step": [0-9]*, "loss": [-0-9.e]*' "$data/full.jsonl") >&2 ||
      fail "the standalone and the full build's losses differ"
  fi
  echo "smoke run: toy training, resume and forward plan: OK"
else
  echo "smoke run: --help and a missing plan: OK (no --make-plans)"
fi
echo "build-runtime-alone: PASS"
