#!/bin/bash
# usage: run_on_haswell.sh <ringscan binary>
# Runs the binary's make-model (tiny preset) and forward under qemu-x86_64 -cpu Haswell
# (AVX2, FMA, F16C; no AVX-512): a binary built with -march=native on a newer CPU dies
# here with SIGILL (exit 132). Its forward must also agree with the same binary run
# natively (to 1e-4 in each log-prob: OpenBLAS may pick other kernels on this host).
# Also the reviewer's check by hand: scripts/setup.sh installs qemu-user.
set -euo pipefail
rs=$1
command -v qemu-x86_64 >/dev/null || { echo "FAIL: qemu-x86_64 not found (scripts/setup.sh installs qemu-user)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
on_haswell() {
  local rc=0
  qemu-x86_64 -cpu Haswell "$rs" "$@" 2> >(grep -v "TCG doesn't support requested feature" >&2) || rc=$?
  if [ $rc -ne 0 ]; then
    [ $rc -eq 132 ] && echo "FAIL: illegal instruction on a Haswell CPU: ringscan $1 (built for a newer CPU?)" >&2
    echo "FAIL: ringscan $1 exited $rc under qemu-x86_64 -cpu Haswell" >&2
    exit 1
  fi
}
on_haswell make-model --preset tiny --out "$tmp/m" >/dev/null
ids=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16
on_haswell forward --model "$tmp/m" --ids $ids --device cpu > "$tmp/haswell.jsonl"
"$rs" forward --model "$tmp/m" --ids $ids --device cpu > "$tmp/native.jsonl" 2>/dev/null
python3 - "$tmp/haswell.jsonl" "$tmp/native.jsonl" <<'PY'
import json, sys
h = [json.loads(l) for l in open(sys.argv[1])]
n = [json.loads(l) for l in open(sys.argv[2])]
assert len(h) == len(n) == 16, f"FAIL: {len(h)} lines under qemu, {len(n)} natively, expected 16"
for a, b in zip(h, n):
    # The last position has no next id (logprob_next null): its top-k log-probs still count.
    x = [a["logprob_next"] or 0.0] + [lp for _, lp in a["top_k"]]
    y = [b["logprob_next"] or 0.0] + [lp for _, lp in b["top_k"]]
    if a["pos"] != b["pos"] or len(x) != len(y) or max(abs(p - q) for p, q in zip(x, y)) > 1e-4:
        sys.exit(f"FAIL: position {a['pos']}: log-probs {x} under qemu, {y} natively")
print("PASS: make-model and forward ran under qemu-x86_64 -cpu Haswell and agree with the native run")
PY
