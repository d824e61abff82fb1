#!/usr/bin/env bash
# The CUDA backend's checks and benchmark, in one call on a GPU machine.
#
#   scripts/gpu-check.sh prepare   # here: build, compile the plans, gather
#                                  # everything into gpu-check/ (< 64 MiB)
#   scripts/gpu-check.sh           # there, from the repository root with
#                                  # gpu-check/ carried: run it all
#
# The GPU machine has CUDA, PyTorch and transformers but not LLVM/MLIR, so
# the compiler runs here: `prepare` builds galvatron-run, the CUDA plugin
# and the CUDA kernel tests (for sm_80 and sm_90; galvatron-run from the
# runtime project alone, without MPI, in build-gpu/), copies them with the
# shared libraries they need that a CUDA image lacks (OpenBLAS),
# and compiles every plan the checks run, with their references: PyTorch's
# logits (fp32) and autocast logits (bf16) of the fixtures, and the CPU
# backend's 20 training losses of each fixture plan. It also compiles a
# GPT-2-124M bf16 training step (batch 8, sequence 1024); its weights are
# made there by bench/gpu/torch_gpt2.py (same seed and names), not carried.
# `prepare` needs torch and transformers (PYTHON, default /tmp/venv-export's).
#
# On the GPU machine the script runs, in this order, and prints one table:
# every CUDA kernel against the CPU kernels (GalvatronCudaTests), every
# fixture's logits on --backend cuda (fp32 within 1e-4 of PyTorch, bf16
# within 2e-2 of autocast), 20 training steps against the CPU backend's
# losses (fp32 1e-4, bf16 2%), then GPT-2-124M's tokens/s and MFU beside
# PyTorch eager and torch.compile (bf16, SDPA) on the same card. It keeps
# going past a failure so that one call reports everything, and exits
# non-zero if any check failed.
#
# GPU_CHECK_BACKEND=cpu runs the same checks on the CPU backend (a dry run
# of the script and its plans where there is no GPU; the benchmark is left
# out).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${GPU_CHECK_DIR:-$root/gpu-check}
backend=${GPU_CHECK_BACKEND:-cuda}

prepare() {
  set -e
  local build=${BUILD_DIR:-$root/build}
  local python=${PYTHON:-/tmp/venv-export/bin/python}
  "$root/scripts/build.sh" galvatron-run galvatron-cuda GalvatronCudaTests \
    galvatron-opt galvatron-translate
  [[ -f $build/lib/libgalvatron-cuda.so ]] ||
    { echo "gpu-check: the build has no CUDA backend (nvcc?)" >&2; exit 1; }
  # galvatron-run for the GPU machine: the runtime project alone, without
  # MPI (one GPU runs one-rank plans; Open MPI's singleton start would need
  # its plugins there), for sm_80 and sm_90.
  local gpubuild=${GPU_BUILD_DIR:-$root/build-gpu}
  cmake -G Ninja -S "$root/runtime" -B "$gpubuild" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON -DGALVATRON_CUDA=ON >/dev/null
  ninja -C "$gpubuild" galvatron-run galvatron-cuda
  rm -rf "$out" && mkdir -p "$out"/{bin,lib,plans}
  cp "$gpubuild/bin/galvatron-run" "$build/bin/GalvatronCudaTests" "$out/bin/"
  cp "$gpubuild/lib/libgalvatron-cuda.so" "$out/lib/"
  # The libraries a CUDA image may lack; CUDA's own come from the machine.
  for f in "$out"/bin/* "$out"/lib/*.so; do ldd "$f"; done |
    awk '/=> \// {print $3}' | sort -u |
    grep -E 'libopenblas|libgfortran|libquadmath|libmpi|libopen-|libhwloc|libevent|libgomp|libudev|libz\.' |
    while read -r lib; do cp -L "$lib" "$out/lib/"; done

  local tr="$build/bin/galvatron-translate" opt="$build/bin/galvatron-opt"
  local run="$build/bin/galvatron-run" p="$out/plans"
  for m in gpt2-torchscript llama-dynamo bert-torchscript t5-torchscript; do
    local d=$root/models/fixtures/$m
    mkdir -p "$p/$m"
    cp "$d"/*.npy "$p/$m/"
    "$tr" --import-onnx "$d/model.onnx" --batch-size 2 --seq-len 8 \
      --state-dict "$d/weights.safetensors" -o "$p/$m/model.mlir"
    "$opt" "$p/$m/model.mlir" --galv-inference-pipeline -o "$p/$m/fp32.mlir"
    "$tr" --emit-plan "$p/$m/fp32.mlir" -o "$p/$m/fp32.bin"
    [[ -f $d/autocast_bf16_logits.npy ]] || continue
    "$opt" "$p/$m/model.mlir" '--galv-inference-pipeline=precision=bf16' \
      -o "$p/$m/bf16.mlir"
    "$tr" --emit-plan "$p/$m/bf16.mlir" -o "$p/$m/bf16.bin"
    local ins=""
    for f in input_ids attention_mask token_type_ids; do
      [[ -f $d/$f.npy ]] && ins="$ins --input $f=$d/$f.npy"
    done
    for prec in fp32 bf16; do
      "$opt" "$p/$m/model.mlir" "--galv-training-pipeline=precision=$prec" \
        -o "$p/$m/train-$prec.mlir"
      "$tr" --emit-plan --plan-function=train_step "$p/$m/train-$prec.mlir" \
        -o "$p/$m/train-$prec.bin"
      # shellcheck disable=SC2086
      "$run" "$p/$m/train-$prec.bin" --weights "$p/$m/model.safetensors" \
        --steps 20 $ins --backend cpu --log "$p/$m/cpu-$prec.jsonl" >/dev/null
      python3 "$root/bench/hf-matrix/run.py" --log-to-npy \
        "$p/$m/cpu-$prec.jsonl" "$p/$m/cpu-$prec.npy"
    done
    rm -f "$p/$m"/*.mlir "$p/$m"/*.jsonl
  done
  rm -f "$p"/*/*.mlir

  local tmp
  tmp=$(mktemp -d)
  "$python" "$root/bench/gpu/export_gpt2.py" "$tmp/model.onnx" >/dev/null 2>&1
  "$python" "$root/bench/gpu/torch_gpt2.py" --write-weights "$tmp/w.safetensors"
  "$tr" --import-onnx "$tmp/model.onnx" --state-dict "$tmp/w.safetensors" \
    --batch-size 8 --seq-len 1024 -o "$tmp/g.mlir"
  "$opt" "$tmp/g.mlir" '--galv-training-pipeline=precision=bf16' \
    -o "$tmp/train.mlir"
  "$tr" --emit-plan --plan-function=train_step "$tmp/train.mlir" \
    -o "$p/gpt2-124m-bf16.bin"
  "$python" "$root/bench/gpu/torch_gpt2.py" --flops-per-token \
    >"$p/gpt2-124m-flops-per-token.txt"
  rm -rf "$tmp"
  du -sh "$out"
  echo "gpu-check: ready; run scripts/gpu-check.sh on the GPU machine with" \
    "gpu-check/ carried"
}

results=()
failed=0
record() { # check, PASS/FAIL/-, detail
  results+=("$(printf '%-52s %-5s %s' "$1" "$2" "$3")")
  [[ $2 == FAIL ]] && failed=1
  return 0
}

check_logits() { # label plan refname rtol dir
  local line
  line=$("$out/bin/galvatron-run" "$2" $ins \
    --weights "$5/model.safetensors" --backend "$backend" \
    --expect "logits=$5/$3.npy" --rtol "$4" 2>&1 | tail -1)
  record "$1" "$([[ $line == *PASS ]] && echo PASS || echo FAIL)" \
    "$(sed -E 's/.*relative ([0-9.e+-]+).*/rel \1/' <<<"$line")"
}

check_training() { # label plan reference rtol dir
  local line
  line=$("$out/bin/galvatron-run" "$2" --weights "$5/model.safetensors" \
    --steps 20 $ins --backend "$backend" --expect-losses "$3" --rtol "$4" 2>&1 |
    tail -1)
  record "$1" "$([[ $line == *PASS ]] && echo PASS || echo FAIL)" \
    "$(sed -E 's/.*worst relative error ([0-9.e+-]+).*/worst rel \1/' <<<"$line")"
}

run_checks() {
  [[ -x $out/bin/galvatron-run ]] ||
    { echo "gpu-check: no $out/bin/galvatron-run: run 'scripts/gpu-check.sh prepare' where the compiler builds, and carry gpu-check/" >&2; exit 2; }
  local nccl
  nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null || true)
  export LD_LIBRARY_PATH="$out/lib:${nccl}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  local start=$SECONDS
  local card=cpu
  if [[ $backend == cuda ]]; then
    card=$(nvidia-smi --query-gpu=name,memory.total,driver_version \
      --format=csv,noheader | head -1)
  fi
  echo "gpu-check on: $card"
  if ! "$out/bin/galvatron-run" --help >/dev/null 2>&1 && ! ldd "$out/bin/galvatron-run" >/dev/null; then
    ldd "$out/bin/galvatron-run" "$out/lib/libgalvatron-cuda.so"
  fi

  local log=$out/cuda-kernels.log
  "$out/bin/GalvatronCudaTests" >"$log" 2>&1
  local rc=$?
  local verdict=FAIL
  [[ $rc == 0 ]] && verdict=PASS
  [[ $rc == 77 ]] && verdict=SKIP
  record "CUDA kernels vs CPU kernels" "$verdict" \
    "$(grep -E '^\[  (PASSED|FAILED) |^skipped' "$log" | tr '\n' ' ')"
  grep -E '^\[  FAILED  \]|Failure' -A3 "$log" | head -40

  for m in gpt2-torchscript llama-dynamo bert-torchscript t5-torchscript; do
    local d=$out/plans/$m
    ins=""
    for f in input_ids attention_mask token_type_ids decoder_input_ids; do
      [[ -f $d/$f.npy ]] && ins="$ins --input $f=$d/$f.npy"
    done
    check_logits "$m logits fp32 (PyTorch, 1e-4)" "$d/fp32.bin" logits 1e-4 "$d"
    [[ -f $d/bf16.bin ]] || continue
    check_logits "$m logits bf16 (autocast, 2e-2)" "$d/bf16.bin" \
      autocast_bf16_logits 2e-2 "$d"
    check_training "$m 20 steps fp32 (CPU backend, 1e-4)" "$d/train-fp32.bin" \
      "$d/cpu-fp32.npy" 1e-4 "$d"
    check_training "$m 20 steps bf16 (CPU backend, 2%)" "$d/train-bf16.bin" \
      "$d/cpu-bf16.npy" 2e-2 "$d"
  done

  [[ $backend == cuda ]] && benchmark
  echo
  printf '%-52s %-5s %s\n' check result detail
  printf '%s\n' "${results[@]}"
  echo "gpu-check: $((SECONDS - start)) s on $card"
  exit "$failed"
}

benchmark() {
  local w=/tmp/gpt2-124m.safetensors p=$out/plans/gpt2-124m-bf16.bin
  local fpt
  fpt=$(cat "$out/plans/gpt2-124m-flops-per-token.txt")
  python3 "$root/bench/gpu/torch_gpt2.py" --write-weights "$w" || return
  local tokens=$root/models/corpus/tokens.npy
  if "$out/bin/galvatron-run" "$p" --weights "$w" --steps 12 --data "$tokens" \
    --backend cuda --log "$out/gpt2-124m.jsonl" >"$out/gpt2-124m.txt" 2>&1; then
    local ms
    ms=$(python3 - "$out/gpt2-124m.jsonl" <<'PY'
import json, sys
steps = [json.loads(l)["ms_per_step"] for l in open(sys.argv[1])][2:]
print(sorted(steps)[len(steps) // 2])
PY
)
    record "GPT-2-124M galvatron (bf16, B8 S1024)" - \
      "$(python3 -c "ms=$ms; t=8*1024/(ms/1e3); print(f'{ms:.1f} ms/step, {t:.0f} tokens/s, MFU {$fpt*t/989e12:.3f}')")"
  else
    record "GPT-2-124M galvatron (bf16, B8 S1024)" FAIL "$(tail -1 "$out/gpt2-124m.txt")"
  fi
  python3 "$root/bench/gpu/torch_gpt2.py" --batch 8 --seq 1024 --steps 10 \
    >"$out/torch.jsonl" 2>"$out/torch.err"
  while read -r line; do
    record "GPT-2-124M PyTorch $(python3 -c "import json; print(json.loads('$line')['mode'])")" - \
      "$(python3 -c "import json; r=json.loads('$line'); print(f\"{r['ms_per_step']:.1f} ms/step, {r['tokens_per_s']:.0f} tokens/s, MFU {r['mfu']:.3f}\")")"
  done <"$out/torch.jsonl"
}

case ${1:-run} in
prepare) prepare ;;
run) run_checks ;;
*) echo "usage: $0 [prepare|run]" >&2; exit 2 ;;
esac
