#!/usr/bin/env python3
"""Writes the tokenizer benchmark's corpus (a file list) and, optionally, a bigger tokenizer.

  make_bench_corpus.py OUT_DIR [--train-vocab 32768]

OUT_DIR/files.txt lists, one path a line:
  - OUT_DIR/generated/*.txt: ~1.5 MB of generated prose, code, other scripts and emoji
    (corpus_text.py with a seed different from the fixtures'),
  - the C++ standard library headers (/usr/include/c++/<version>/, ~13 MB of real code),
  - the Python standard library's top-level modules (/usr/lib/python3.X/*.py).
With --train-vocab N it also trains a Tekken-style tokenizer with N ids on that
corpus into OUT_DIR/tok<N>/ (same specials, regex and template as the demo),
closer to a production vocabulary (131072 ids) than the 4096-id demo.
"""

import argparse
import glob
import json
import os
import sys
import sysconfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus_text import training_corpus  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--train-vocab", type=int, default=0)
    args = ap.parse_args()
    gen = os.path.join(args.out, "generated")
    os.makedirs(gen, exist_ok=True)
    files = []
    for i, doc in enumerate(training_corpus(seed=99, n_docs=2400)):
        path = os.path.join(gen, f"doc_{i:04d}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(doc)
        files.append(path)
    cxx = sorted(glob.glob("/usr/include/c++/*/"))
    if cxx:
        for dirpath, _, names in os.walk(cxx[-1]):
            files += [os.path.join(dirpath, n) for n in sorted(names)]
    files += sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    with open(os.path.join(args.out, "files.txt"), "w") as f:
        f.write("\n".join(files) + "\n")
    total = sum(os.path.getsize(p) for p in files)
    print(f"{len(files)} files, {total / 1e6:.1f} MB listed in {args.out}/files.txt")

    if args.train_vocab:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers, Regex
        import make_fixtures as mf
        tok = Tokenizer(models.BPE(ignore_merges=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(mf.TEKKEN_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=args.train_vocab, min_frequency=2, show_progress=False,
                                      special_tokens=mf.special_tokens(),
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())

        def texts():
            for p in files:
                with open(p, "rb") as f:
                    yield f.read().decode("utf-8", errors="replace")

        tok.train_from_iterator(texts(), trainer)
        data = json.loads(tok.to_str())
        data["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
        out = os.path.join(args.out, f"tok{args.train_vocab}")
        os.makedirs(out, exist_ok=True)
        Tokenizer.from_str(json.dumps(data)).save(os.path.join(out, "tokenizer.json"))
        print(f"trained {tok.get_vocab_size()} ids into {out}/tokenizer.json")


if __name__ == "__main__":
    main()
