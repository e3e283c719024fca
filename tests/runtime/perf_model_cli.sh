#!/usr/bin/env bash
# `ringscan info`'s performance model from the command line: the phase table
# adds up to its total, the planned scales print, bad requests fail with one
# sentence and a non-zero exit.
set -uo pipefail
ringscan=$1
fail() { echo "perf_model_cli: FAIL: $*" >&2; exit 1; }

out=$("$ringscan" info --preset nano-4b --tokens 1048576 --ranks 8 --gpu h200 --link nvlink) || fail "info exited $?"
grep -q '^performance model: prefill of 1048576 tokens over 8 rank' <<<"$out" || fail "no prediction header: $out"
# Sum of (compute + exposed) over the phase rows = the total line.
python3 - "$out" <<'PY' || exit 1
import re, sys
text = sys.argv[1].split("performance model:")[1]
rows = [l for l in text.splitlines() if re.match(r"^  [a-z]", l) and not l.startswith("  total") and not l.startswith("  device") and not l.startswith("  link") and not l.startswith("  phase")]
s = 0.0
for l in rows:
    nums = re.findall(r"\s(\d+\.\d+)\s", l + " ")
    s += float(nums[0]) + float(nums[2])  # compute s, exposed s
total = float(re.search(r"^  total ([0-9.]+) s", text, re.M).group(1))
eff = float(re.search(r"parallel efficiency ([0-9.]+)%", text).group(1))
assert len(rows) >= 8, rows
assert abs(s - total) <= 0.002 + 1e-3 * total, (s, total)
assert 0 < eff <= 100, eff
print(f"perf_model_cli: {len(rows)} phases sum to {s:.3f} s, total {total:.3f} s, efficiency {eff}%")
PY

expect_error() {  # expected-substring, args...
  local want=$1; shift
  local err
  err=$("$ringscan" info "$@" 2>&1 >/dev/null) && fail "info $* succeeded"
  grep -q -- "$want" <<<"$err" || fail "info $*: expected '$want' in: $err"
}
expect_error 'unknown device "a100"' --preset demo --gpu a100
expect_error 'unknown link "ethernet"' --preset demo --gpu h200 --link ethernet
expect_error 'exactly one of --model FOLDER and --preset NAME' --preset demo --model /nonexistent
expect_error 'cannot read the calibration file /nonexistent.jsonl' --preset demo --calibration /nonexistent.jsonl
expect_error '--kv-bytes must be 2' --preset demo --gpu h200 --kv-bytes 3
echo "perf_model_cli: ok"
