#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test
# (lit + FileCheck suites and GoogleTest, all through ctest).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
cd "$build"
ctest --output-on-failure -j"$(nproc)"
