#!/bin/bash
# usage: install_prefix.sh <cmake> <build dir>
# Installs into a temporary prefix and checks what a cluster user relies on: the files
# are there, the binary finds its libraries and runs, and the sbatch scripts' default
# RINGSCAN (`ringscan` on PATH) resolves to the installed binary once P/bin is on PATH.
set -euo pipefail
cmake=$1 build=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$cmake" --install "$build" --prefix "$prefix" >/dev/null
for f in bin/ringscan share/doc/ringscan/README.md share/doc/ringscan/cli.md share/doc/ringscan/hdf5-schema.md \
         share/ringscan/slurm/README.md share/ringscan/slurm/cpu.sbatch share/ringscan/slurm/gpu-node.sbatch \
         share/ringscan/slurm/multi-node.sbatch share/ringscan/slurm/array.sbatch; do
  [ -f "$prefix/$f" ] || fail "$prefix/$f was not installed"
done
[ -x "$prefix/bin/ringscan" ] || fail "$prefix/bin/ringscan is not executable"
if ldd "$prefix/bin/ringscan" | grep -q 'not found'; then
  ldd "$prefix/bin/ringscan" | grep 'not found'
  fail "the installed binary misses libraries (RPATH)"
fi

export PATH="$prefix/bin:$PATH"
for s in "$prefix"/share/ringscan/slurm/*.sbatch; do
  line=$(grep -E '^RINGSCAN=' "$s") || fail "$s sets no RINGSCAN"
  # The script's own default, evaluated as the script would with RINGSCAN unset.
  resolved=$(unset RINGSCAN; eval "${line%%#*}"; command -v "$RINGSCAN") || fail "$s: '$line' is not on PATH"
  [ "$resolved" = "$prefix/bin/ringscan" ] || fail "$s runs $resolved, not the installed $prefix/bin/ringscan"
done

ringscan --help | grep -q 'info' || fail "ringscan --help lists no commands"
ringscan make-model --preset tiny --out "$prefix/tiny" 2>/dev/null
ringscan info --model "$prefix/tiny" | grep -E '^(parameters|memory:)' || fail "installed ringscan info failed"
echo PASS
