#!/usr/bin/env python3
"""Writes a synthetic ringscan result file that follows docs/hdf5-schema.md exactly,
including issue 16's text and offset datasets, without a model: for tests of `ringscan
report` / `inspect` and for measuring the report of a large codebase.

Text: generated code-like lines with some multi-byte characters; tokens: words, spaces
and punctuation (a regex), with a 4-byte character split over two byte-fallback tokens
now and then; log-probs: random. Needs h5py and numpy (tools/h5check/ensure_venv.sh).

  make_result.py OUT.h5 --files 10000 [--mode codebase|file] [--no-text] [--summaries [--questions]]
                 [--dropped K] [--seed S]
"""
import argparse
import json
import re

import h5py
import numpy as np

HEADER = "### FILE: {}\n"  # docs/hdf5-schema.md, "Codebase documents"
WORDS = ["int", "return", "value", "for", "x", "y", "=", "+", "(", ")", ";", "data", "naïve", "café", "→", "日本",
         "if", "else", "self", "def", "{", "}", "🙂"]
TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def file_text(rng, lines):
    out = []
    for _ in range(lines):
        indent = " " * (4 * int(rng.integers(0, 3)))
        out.append(indent + " ".join(rng.choice(WORDS, size=int(rng.integers(1, 12)))) + "\n")
    return "".join(out)


def tokenize(text, rng):
    """(begin, end) byte offsets of each token of text. Like byte-fallback tokens, some
    tokens end inside a character: a 4-byte character is sometimes two tokens of 2 bytes,
    and a token ending in another multi-byte character sometimes leaves its last byte
    to the next token."""
    spans, pos, carry = [], 0, None
    for m in TOKEN.finditer(text):
        b = len(m.group(0).encode())
        start, carry = (pos if carry is None else carry), None
        last = len(m.group(0)[-1].encode())
        if b == 4 and last == 4 and rng.random() < 0.5:
            spans += [(start, pos + 2), (pos + 2, pos + 4)]
        elif last in (2, 3) and rng.random() < 0.3:
            spans.append((start, pos + b - 1))
            carry = pos + b - 1
        else:
            spans.append((start, pos + b))
        pos += b
    if carry is not None:
        spans.append((carry, pos))
    return spans


def build(args):
    rng = np.random.default_rng(args.seed)
    names = [f"{['src', 'lib', 'tests', 'docs/api'][i % 4]}/mod{i % 37}/file{i:05d}.py" for i in range(args.files)]
    texts = [file_text(rng, int(rng.integers(1, args.max_lines + 1))) for _ in names]
    docs, files = [], []
    if args.mode == "codebase":
        text, file_rows, spans = "", [], [(0, 0)]  # BOS covers [0, 0)
        kept = len(names) - args.dropped
        for i, (name, body) in enumerate(zip(names, texts)):
            header = HEADER.format(name)
            if i >= kept:
                end = len(text.encode())
                file_rows.append(dict(path=name, status="dropped", header=header, text=(end, end), tok=None))
                continue
            start = len(text.encode())
            hs = [(start + b, start + e) for b, e in tokenize(header, rng)]
            cstart = start + len(header.encode())
            cs = [(cstart + b, cstart + e) for b, e in tokenize(body, rng)]
            t0 = len(spans)
            spans += hs + cs
            text += header + body
            file_rows.append(dict(path=name, status="ok", header=header, text=(cstart, len(text.encode())),
                                  tok=(t0, len(spans))))
        docs.append(dict(path="/work/project", text=text, spans=spans, files=file_rows))
    else:
        for name, body in zip(names, texts):
            docs.append(dict(path="/work/project/" + name, text=body, spans=[(0, 0)] + tokenize(body, rng), files=[]))

    utf8, ids, lps, tb, te = bytearray(), [], [], [], []
    cols = {k: [] for k in ["path", "status", "error", "truncated", "n_tokens", "token_offset", "n_scored", "nll_sum",
                            "nll_mean", "perplexity", "extra", "content_sha256", "text_offset", "text_bytes"]}
    fcols = {k: [] for k in ["document", "path", "token_begin", "token_end", "n_scored", "nll_sum", "perplexity",
                             "status", "header", "text_begin", "text_end"]}
    for d_i, d in enumerate(docs):
        n = len(d["spans"])
        # A log-prob per token; files differ in how surprising they are.
        lp = -rng.gamma(2.0, 0.5 + 2.0 * rng.random(), size=n).astype(np.float32)
        lp[0] = np.nan
        tok_off = len(ids)
        ids += list(rng.integers(1000, 5000, size=n))
        lps.append(lp)
        tb += [b for b, _ in d["spans"]]
        te += [e for _, e in d["spans"]]
        nll = -float(np.sum(lp[1:], dtype=np.float64))
        cols["path"].append(d["path"]); cols["status"].append("ok"); cols["error"].append("")
        cols["truncated"].append(0); cols["n_tokens"].append(n); cols["token_offset"].append(tok_off)
        cols["n_scored"].append(n - 1); cols["nll_sum"].append(nll); cols["nll_mean"].append(nll / max(n - 1, 1))
        cols["perplexity"].append(np.exp(nll / (n - 1)) if n > 1 else np.nan)
        extra = {"route": "data_parallel"}
        if args.summaries:
            extra.update(text=f"Summary of {d['path']}: it returns the value.", finish_reason="stop")
        if args.questions:
            extra.update(question=f"What does {d['path']} return?")
        cols["extra"].append(json.dumps(extra)); cols["content_sha256"].append("")
        cols["text_offset"].append(len(utf8)); cols["text_bytes"].append(len(d["text"].encode()))
        utf8 += d["text"].encode()
        for f in d["files"]:
            b, e = f["tok"] or (n, n)
            seg = lp[max(b, 1):e]
            fn = -float(np.sum(seg, dtype=np.float64))
            fcols["document"].append(d_i); fcols["path"].append(f["path"]); fcols["token_begin"].append(b)
            fcols["token_end"].append(e); fcols["n_scored"].append(len(seg)); fcols["nll_sum"].append(fn)
            fcols["perplexity"].append(np.exp(fn / len(seg)) if len(seg) else np.nan)
            fcols["status"].append(f["status"]); fcols["header"].append(f["header"])
            fcols["text_begin"].append(f["text"][0]); fcols["text_end"].append(f["text"][1])

    s = h5py.string_dtype("utf-8")
    types = dict(path=s, status=s, error=s, extra=s, content_sha256=s, header=s, truncated=np.uint8, nll_sum=np.float64,
                 nll_mean=np.float64, perplexity=np.float64, document=np.uint64)
    with h5py.File(args.out, "w") as f:
        for k, v in cols.items():
            if args.no_text and k in ("text_offset", "text_bytes"):
                continue
            f.create_dataset("documents/" + k, data=np.array(v, dtype=types.get(k, np.uint64)))
        f.create_dataset("tokens/ids", data=np.array(ids, dtype=np.int32))
        f.create_dataset("tokens/logprob", data=np.concatenate(lps).astype(np.float32))
        for k, v in fcols.items():
            if args.no_text and k in ("status", "header", "text_begin", "text_end"):
                continue
            f.create_dataset("files/" + k, data=np.array(v, dtype=types.get(k, np.uint64)))
        if not args.no_text:
            f.create_dataset("text/utf8", data=np.frombuffer(bytes(utf8), dtype=np.uint8))
            f.create_dataset("tokens/text_begin", data=np.array(tb, dtype=np.uint64))
            f.create_dataset("tokens/text_end", data=np.array(te, dtype=np.uint64))
        f.create_dataset("skipped/document", data=np.zeros(0, dtype=np.int64))
        for k in ("path", "reason", "detail"):
            f.create_dataset("skipped/" + k, data=np.array([], dtype=s))
        f.attrs.update(format_version=np.int64(1), n_documents=np.int64(len(docs)), job="score", model_dir="demo",
                       ranks=np.int64(2), device="cpu", gemm_inputs="fp32", layout="zigzag",
                       command_line="ringscan score --model demo (synthetic: tools/report/make_result.py)",
                       run_identity="{}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--files", type=int, default=20)
    p.add_argument("--max-lines", type=int, default=40)
    p.add_argument("--mode", choices=["codebase", "file"], default="codebase")
    p.add_argument("--dropped", type=int, default=0, help="the last K files are dropped (beyond --max-tokens)")
    p.add_argument("--no-text", action="store_true", help="without issue 16's datasets (an older file)")
    p.add_argument("--summaries", action="store_true", help="a summary in /documents/extra (as summarize writes)")
    p.add_argument("--questions", action="store_true", help="with --summaries: a question too (as ask writes)")
    p.add_argument("--seed", type=int, default=1)
    build(p.parse_args())


if __name__ == "__main__":
    main()
