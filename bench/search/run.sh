#!/usr/bin/env bash
# Search: against Galvatron 2.4.0 (docs/BENCHMARKS.md). LLaMA-7B, seq 2048,
# bf16, 36 GB per GPU, global batch 64, full space with Megatron-SP, TP groups
# consecutive only, 1F1B, ZeRO-2 default, on Galvatron's shipped 1x8 and 2x8
# profiles (shared/galvatron-inputs). Prints ours (galvatron-search), the best
# uniform Megatron-style 3D plan, and Galvatron's own result stored in
# bench/search/galvatron-<N>x8.json (rerun it with --galvatron: about 100 s
# per cluster; needs a venv as bench/galvatron-parity/run.sh makes).
#
#   bench/search/run.sh [--galvatron] [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rerun=0
if [ "${1:-}" = "--galvatron" ]; then rerun=1; shift; fi
build=${1:-$root/build}
inputs=${GALVATRON_INPUTS:-$root/../shared/galvatron-inputs}
venv=${VENV:-$root/build/galvatron-parity-venv}
search=$build/bin/galvatron-search
[ -x "$search" ] || search=$build/tools/galvatron-search/galvatron-search
common=(--hardware "$inputs/hardware" --gpus-per-node 8
  --computation "$inputs/llama-7b/computation_profiling_bf16_llama-7b.json"
  --memory "$inputs/llama-7b/memory_profiling_bf16_llama-7b.json"
  --batch 64 --memory-gb 36 --no-strided --top 1 --threads "${THREADS:-2}")
for n in 1 2; do
  if [ $rerun = 1 ]; then
    if [ ! -x "$venv/bin/python" ]; then
      python3 -m venv "$venv"
      "$venv/bin/pip" install -q numpy scipy tqdm pybind11 setuptools wheel
      "$venv/bin/pip" install -q --no-deps --no-build-isolation \
        hetu-galvatron==2.4.0
    fi
    "$venv/bin/python" "$here/galvatron_search.py" --inputs "$inputs" \
      --nodes $n --out "$here/galvatron-${n}x8.json" | tail -1
  fi
  echo "== ${n} node(s) x 8 GPUs: ours"
  "$search" --nodes $n "${common[@]}" --output "$here/ours-${n}x8.json"
  echo "== ${n} node(s) x 8 GPUs: uniform 3D"
  "$search" --nodes $n "${common[@]}" --uniform
  echo "== ${n} node(s) x 8 GPUs: Galvatron 2.4.0 (stored)"
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); \
print('throughput %.4f samples/s, search %.1f s' % (d['throughput'], \
d['search_seconds'])); print(json.dumps(d['config']))" \
    "$here/galvatron-${n}x8.json"
done
