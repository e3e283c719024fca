#!/usr/bin/env bash
# The size and render time of `ringscan report`'s page for a large codebase: a
# synthetic result of N files (tools/report/make_result.py, default 10 000 files of up to
# 40 lines), the page written by ringscan, then opened by headless Chromium three ways:
# the first page of the ranked list (what a user sees first), the whole list on one
# page (#size=all), and the largest file's heat map. The page measures itself
# (data-render-ms: from its script's start to the end of the first render;
# data-loaded-ms: from the start of loading, parsing the whole HTML included); the wall
# time adds Chromium's start and writing out the DOM.
#   bench/report/run.sh [N]      (needs build/ringscan, chromium, tools/h5check's venv)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-10000}
py=$(tools/h5check/ensure_venv.sh)
dir=$(mktemp -d /tmp/ringscan-report-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
"$py" tools/report/make_result.py "$dir/r.h5" --files "$n" --max-lines 40
start=$(date +%s.%N)
build/ringscan report "$dir/r.h5" --out "$dir/r.html"
echo "ringscan report: $(echo "$(date +%s.%N) - $start" | bc) s"
biggest=$("$py" -c "
import h5py, sys
with h5py.File(sys.argv[1]) as f:
    n = f['files/token_end'][:] - f['files/token_begin'][:]
    print(int(n.argmax()))" "$dir/r.h5")
printf '%-20s %10s %10s %8s\n' view render_ms loaded_ms wall_s
for frag in "" "#size=all" "#file=$biggest"; do
  start=$(date +%s.%N)
  chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$dir/profile" \
    --dump-dom "file://$dir/r.html$frag" > "$dir/dom.html" 2>/dev/null
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  ms=$(grep -o 'data-render-ms="[^"]*"' "$dir/dom.html" | cut -d'"' -f2)
  loaded=$(grep -o 'data-loaded-ms="[^"]*"' "$dir/dom.html" | cut -d'"' -f2)
  printf '%-20s %10s %10s %8.2f\n' "${frag:-(first page)}" "$ms" "$loaded" "$wall"
done
echo "page: $(stat -c %s "$dir/r.html") bytes for $n files, $("$py" -c "
import h5py, sys
with h5py.File(sys.argv[1]) as f: print(len(f['tokens/ids']), 'tokens,', len(f['text/utf8']), 'bytes of text')" "$dir/r.h5")"
