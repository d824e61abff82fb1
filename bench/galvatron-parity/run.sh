#!/usr/bin/env bash
# Regenerates the Galvatron parity references the cost-model unit tests read
# (test/CostModel/galvatron-parity/llama-7b.json) by calling hetu-galvatron
# 2.4.0's own cost functions; see galvatron_parity.py for the exact calls.
#
#   bench/galvatron-parity/run.sh [--per-hardware N] [--seed S]
#
# Galvatron is installed with --no-deps into a venv beside the build: its cost
# functions need only numpy and scipy (the package's own __init__, which needs
# torch and CUDA kernels, is bypassed). GALVATRON_INPUTS points at
# shared/galvatron-inputs; VENV at the venv to (re)use.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
inputs=${GALVATRON_INPUTS:-$root/../shared/galvatron-inputs}
venv=${VENV:-$root/build/galvatron-parity-venv}
out=$root/test/CostModel/galvatron-parity/llama-7b.json

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q numpy scipy tqdm pybind11 setuptools wheel
"$venv/bin/pip" install -q --no-deps --no-build-isolation hetu-galvatron==2.4.0
"$venv/bin/python" "$here/galvatron_parity.py" --inputs "$inputs" --out "$out" \
  "$@" 2>&1 | grep -v '^Fitted parameters'
