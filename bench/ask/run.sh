#!/usr/bin/env bash
# Prefill once, ask many (issue 18) on the demo model, against re-prefilling per question.
#   [NP=1] [THREADS=n] [REUSE=1] bench/ask/run.sh [prefix_words] [new_tokens] [questions...]
#   (defaults: 53600 200 1 16 256)
# 53600 words of the generated code make a ~64K-token prefix (65.6K) with the demo tokenizer.
# Prints, from one run (compare ratios: the machine is shared):
#   prefill      the prefix once, sequence-parallel on $NP ranks (default 1), state saved
#   ask Q        Q questions against the saved state (--ignore-eos: every answer new_tokens long)
#   short Q      the same Q questions against a ~100-token prefix: Q "independent" answers,
#                the decode cost without the long prefix
#   reprefill    one forward --generate over prefix + one question (single rank): what each
#                question costs without a saved state
# and per Q: (prefill + ask Q) / (prefill + short Q)  [issue 18's target: < 2 for Q = 256]
#            Q * reprefill / (prefill + ask Q)         [the saving]
# each from wall seconds and from CPU seconds (the jobs' own: prefill_cpu_seconds, ask's
# "cpu ..s"; the re-prefill's from /usr/bin/time): on a shared machine a one-thread
# rank's CPU time moves far less with the load than its wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
words=${1:-53600}; new=${2:-200}; shift $(( $# > 2 ? 2 : $# )) || true
qs=("$@"); [ ${#qs[@]} -gt 0 ] || qs=(1 16 256)
np=${NP:-1}; threads=${THREADS:-$((2 / np > 0 ? 2 / np : 1))}
work=build/bench-ask
model=build/bench-models/demo
mkdir -p "$work"
[ -f "$model/tokenizer.json" ] || build/ringscan make-model --preset demo --out "$model" >/dev/null 2>&1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=$threads
python3 - "$work" "$words" "${qs[@]}" <<'PY'
import json, os, random, sys
work, words, qs = sys.argv[1], int(sys.argv[2]), [int(q) for q in sys.argv[3:]]
rng = random.Random(7)
vocab = "int return the value for while x y = + ( ) { } ; if else data struct class void const auto".split()
def text(n): return " ".join(rng.choice(vocab) for _ in range(n)) + "\n"
for name, n, files in (("long", words, 16), ("short", 60, 1)):
    d = os.path.join(work, f"repo-{name}-{n}")
    os.makedirs(d, exist_ok=True)
    for i in range(files):
        open(os.path.join(d, f"f{i:02d}.c"), "w").write(text(n // files))
for q in qs:
    with open(os.path.join(work, f"q{q}.jsonl"), "w") as f:
        for i in range(q):
            f.write(json.dumps({"question": f"What does function {i} in file {i % 16} return, and why?"}) + "\n")
PY
run() { mpirun --oversubscribe --bind-to none -np "$np" build/ringscan "$@" --threads "$threads"; }
declare -A t c
# REUSE=1: keep a state this script saved before for the same prefix (its prefill time is in its manifest).
for name in long short; do
  n=$([ $name = long ] && echo "$words" || echo 60)
  if [ "${REUSE:-0}" != 1 ] || ! grep -q "repo-$name-$n\"" "$work/$name.state/manifest.json" 2>/dev/null; then
    run prefill --model "$model" --input "$work/repo-$name-$n" --out "$work/$name.state" --overwrite 2>"$work/log-prefill-$name.txt"
  fi
  t[prefill-$name]=$(python3 -c "import json;print(json.load(open('$work/$name.state/manifest.json'))['about']['prefill_seconds'])")
  c[prefill-$name]=$(python3 -c "import json;print(json.load(open('$work/$name.state/manifest.json'))['about'].get('prefill_cpu_seconds', 'nan'))")
done
prefix=$(python3 -c "import json;print(json.load(open('$work/long.state/manifest.json'))['n_tokens'])")
echo "prefix $prefix tokens, $np rank(s) x $threads thread(s), answers of $new tokens (seconds: the jobs' own timing)"
echo "prefill         ${t[prefill-long]} s (cpu ${c[prefill-long]} s)"
for q in "${qs[@]}"; do
  for name in long short; do
    rm -rf "$work/a-$name-$q.h5" "$work/a-$name-$q.h5.parts"  # a complete answers file would be kept, not recomputed
    run ask --state "$work/$name.state" --questions "$work/q$q.jsonl" --out "$work/a-$name-$q.h5" \
      --max-new-tokens "$new" --ignore-eos --batch 256 --overwrite 2>"$work/log-ask-$name-$q.txt"
    t[ask-$name-$q]=$(sed -n 's/.* tokens in \([0-9.]*\)s .*/\1/p' "$work/log-ask-$name-$q.txt")
    c[ask-$name-$q]=$(sed -n 's/.* tokens in [0-9.]*s on .* (cpu \([0-9.]*\)s on rank 0.*/\1/p' "$work/log-ask-$name-$q.txt")
  done
  echo "ask $q: ${t[ask-long-$q]} s (cpu ${c[ask-long-$q]} s)   short prefix: ${t[ask-short-$q]} s (cpu ${c[ask-short-$q]} s)"
done
# One question re-prefilled: the prefix ids + its own ids through forward --generate
# (wall time less that of a 1-token forward: process start and model load).
"$(tools/h5check/ensure_venv.sh)" - "$work" <<'PY'
import json, sys, h5py, numpy as np
work = sys.argv[1]
prefix = np.fromfile(f"{work}/long.state/ids.bin", dtype="<i4")
with h5py.File(f"{work}/a-long-1.h5") as f:  # the first question's own ids
    own = np.array(json.loads(f["documents/extra"].asstr()[0])["question_ids"], dtype="<i4")
open(f"{work}/reprefill-ids.txt", "w").write(",".join(map(str, np.concatenate([prefix, own]))))
PY
# "wall user sys" of mpirun and the rank it waited for.
timed() { /usr/bin/time -f "%e %U %S" -o "$work/time.txt" "$@" >/dev/null; cat "$work/time.txt"; }
read -r fw fu fs < <(timed mpirun -np 1 build/ringscan forward --model "$model" --ids-file "$work/reprefill-ids.txt" \
                     --generate "$new" --top-k 0 --threads "$threads")
read -r sw su ss < <(timed mpirun -np 1 build/ringscan forward --model "$model" --ids 1 --top-k 0 --threads "$threads")
t[reprefill]=$(echo "$fw - $sw" | bc)
c[reprefill]=$(echo "$fu + $fs - $su - $ss" | bc)
echo "reprefill (1 question) ${t[reprefill]} s (cpu ${c[reprefill]} s)"
for q in "${qs[@]}"; do
  for x in t c; do
    declare -n m=$x
    echo "Q=$q ($([ $x = t ] && echo wall || echo cpu)): (prefill+ask)/(prefill+short) =" \
         "$(echo "scale=2; (${m[prefill-long]} + ${m[ask-long-$q]}) / (${m[prefill-long]} + ${m[ask-short-$q]})" | bc)" \
         "  Q*reprefill/(prefill+ask) = $(echo "scale=2; $q * ${m[reprefill]} / (${m[prefill-long]} + ${m[ask-long-$q]})" | bc)"
  done
done
