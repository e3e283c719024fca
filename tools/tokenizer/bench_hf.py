#!/usr/bin/env python3
"""HF `tokenizers` encode throughput on the same file list as bench/tokenizer/bench_tokenizer.

  bench_hf.py --tokenizer DIR_OR_JSON --list FILES.txt [--threads 1,2] [--repeat 3]

Each thread count runs in its own process (RAYON_NUM_THREADS is read once).
Reported: encode_batch (and encode_batch_fast, which skips offsets, where the
installed version has it) in MB/s of input bytes, best of --repeat after a
warm-up, and MB per CPU-second of the process (less disturbed by other load);
with 1 thread also a plain loop of encode(). Prints the same SHA-256
over all ids as bench_tokenizer, so equal hashes mean equal ids.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import time


def child(args):
    from tokenizers import Tokenizer
    path = args.tokenizer
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    tok = Tokenizer.from_file(path)
    texts, total = [], 0
    with open(args.list) as f:
        for line in f:
            p = line.rstrip("\n")
            if not p:
                continue
            with open(p, "rb") as g:
                data = g.read()
            total += len(data)
            texts.append(data.decode("utf-8", errors="replace"))
    encs = tok.encode_batch(texts, add_special_tokens=False)  # warm-up
    if args.child_threads == 1:
        h = hashlib.sha256()
        for e in encs:
            h.update(("".join(f"{i} " for i in e.ids) + "\n").encode())
        n_ids = sum(len(e.ids) for e in encs)
        print(f"corpus: {len(texts)} files, {total / 1e6:.2f} MB, {n_ids} ids, vocab {tok.get_vocab_size()}")
        print(f"ids sha256: {h.hexdigest()}")
    modes = [("encode_batch", lambda: tok.encode_batch(texts, add_special_tokens=False))]
    if hasattr(tok, "encode_batch_fast"):
        modes.append(("encode_batch_fast", lambda: tok.encode_batch_fast(texts, add_special_tokens=False)))
    if args.child_threads == 1:
        modes.append(("encode loop", lambda: [tok.encode(t, add_special_tokens=False) for t in texts]))
    for name, fn in modes:
        best = best_cpu = 1e30
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            best_cpu = min(best_cpu, time.process_time() - c0)
            best = min(best, time.perf_counter() - t0)
        print(f"HF {name:18s} threads={args.child_threads}  {total / 1e6 / best:8.2f} MB/s  ({best:.3f} s)  "
              f"{total / 1e6 / best_cpu:8.2f} MB per CPU-s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--list", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child-threads", type=int, default=0)
    args = ap.parse_args()
    if args.child_threads:
        child(args)
        return
    import tokenizers
    print(f"tokenizers {tokenizers.__version__}")
    for t in [int(x) for x in args.threads.split(",")]:
        env = dict(os.environ, RAYON_NUM_THREADS=str(t), TOKENIZERS_PARALLELISM="true")
        subprocess.run([sys.executable, __file__, "--tokenizer", args.tokenizer, "--list", args.list,
                        "--repeat", str(args.repeat), "--child-threads", str(t)], env=env, check=True)


if __name__ == "__main__":
    main()
