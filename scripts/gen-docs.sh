#!/usr/bin/env bash
# Regenerates the dialect and pass reference in docs/ from TableGen.
# With --check, compares instead and fails when docs/ is stale.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
"$root/scripts/build.sh" mlir-doc >/dev/null

status=0
for doc in GalvDialect GalvPasses; do
  generated="$build/docs/$doc.md"
  committed="$root/docs/reference/$doc.md"
  if [[ ${1:-} == --check ]]; then
    if ! diff -u "$committed" "$generated"; then
      echo "docs/reference/$doc.md is stale: run scripts/gen-docs.sh" >&2
      status=1
    fi
  else
    mkdir -p "$root/docs/reference"
    cp "$generated" "$committed"
  fi
done
exit $status
