"""Issue 16, mapping results back to the text: each document's text and each token's
bytes of it in the result file, codebase headers and the files --max-tokens cut or
dropped, the h5py recipe of docs/hdf5-schema.md run on a real result, scoring with a
sliding window, and the warning past max_position_embeddings. The real binary on the
demo model (RINGSCAN_BIN), under mpirun, results read with h5py."""
import json
import os
import re
import shutil
import subprocess
import sys
import unittest

import h5py
import numpy as np

from jobs_util import DemoModelCase, run, words, write

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BOS = 1  # the demo tokenizer's <s>


def read_result(path):
    """Per document: path, text, ids, token offsets, log-probs; and the /files rows."""
    with h5py.File(path) as f:
        d = f["documents"]
        text = f["text/utf8"][:].tobytes()
        out = []
        for i in range(len(d["path"])):
            t0, n = int(d["token_offset"][i]), int(d["n_tokens"][i])
            at, size = int(d["text_offset"][i]), int(d["text_bytes"][i])
            out.append(dict(path=d["path"].asstr()[i], text=text[at:at + size],
                            ids=f["tokens/ids"][t0:t0 + n].tolist(),
                            begin=f["tokens/text_begin"][t0:t0 + n].tolist(),
                            end=f["tokens/text_end"][t0:t0 + n].tolist(),
                            logprob=f["tokens/logprob"][t0:t0 + n]))
        fl = f["files"]
        files = [dict(document=int(fl["document"][k]), path=fl["path"].asstr()[k], status=fl["status"].asstr()[k],
                      header=fl["header"].asstr()[k], text_begin=int(fl["text_begin"][k]),
                      text_end=int(fl["text_end"][k]), token_begin=int(fl["token_begin"][k]),
                      token_end=int(fl["token_end"][k]), line_begin=int(fl["line_begin"][k]),
                      line_end=int(fl["line_end"][k]))
                 for k in range(len(fl["path"]))]
        datasets = {name: f[name][:].tobytes() if f[name].dtype.kind != "O" else list(f[name].asstr()[:])
                    for name in ["text/utf8", "documents/text_offset", "documents/text_bytes", "tokens/text_begin",
                                 "tokens/text_end", "files/status", "files/header", "files/text_begin",
                                 "files/text_end", "tokens/ids"]}
    return out, files, datasets


def recipe_source():
    """The code block of docs/hdf5-schema.md that starts with '# surprising_lines.py'."""
    with open(os.path.join(ROOT, "docs", "hdf5-schema.md"), encoding="utf-8") as f:
        doc = f.read()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    found = [b for b in blocks if b.startswith("# surprising_lines.py")]
    assert len(found) == 1, "docs/hdf5-schema.md should hold one surprising_lines.py block"
    return found[0]


class OffsetsTest(DemoModelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A codebase: multi-byte text, CRLF lines, a file without a final newline, and a
        # file long enough for the recipe's 20 lines.
        cls.cb = cls.path("cb")
        os.makedirs(os.path.join(cls.cb, "pkg"))
        cls.sources = {
            "a.py": "def f(x):\n    return x * 2  # café ☕\n\nprint(f(21))\n",
            "b.txt": "Ünïcödé line\r\nsecond line\r\n",
            "long.c": "".join(f"int v{k} = {k * 7} + {words(k, 3)};\n" for k in range(30)),
            "pkg/c.md": "# Title\n\nSome prose about 文字 and emoji 🙂.\n",
            "pkg/z.txt": "no final newline",
        }
        for name, text in cls.sources.items():
            write(os.path.join(cls.cb, name), text)
        cls.names = sorted(cls.sources)  # the codebase's file order
        cls.full = cls.path("full.h5")
        run(["score", "--model", cls.model, "--input", cls.cb, "--mode", "codebase", "--out", cls.full, "--quiet"],
            np_=1, check=True, env=cls.env)

    def test_file_mode_text_is_the_file_and_tokens_tile_it(self):
        inputs = [os.path.join(self.cb, n) for n in self.names]
        out = self.path("files.h5")
        run(["score", "--model", self.model, "--out", out, "--quiet"] + sum((["--input", p] for p in inputs), []),
            np_=2, check=True, env=self.env)
        docs, files, _ = read_result(out)
        self.assertEqual(files, [])
        self.assertEqual(len(docs), len(inputs))
        for d, p in zip(docs, inputs):
            with open(p, "rb") as f:
                self.assertEqual(d["text"], f.read(), d["path"])
            self.assertEqual((d["ids"][0], d["begin"][0], d["end"][0]), (BOS, 0, 0), "the BOS covers nothing")
            at = 0
            for t in range(1, len(d["ids"])):
                self.assertEqual(d["begin"][t], at, f"{d['path']} token {t}")
                self.assertGreater(d["end"][t], d["begin"][t], f"{d['path']} token {t}")
                at = d["end"][t]
            self.assertEqual(at, len(d["text"]), d["path"])
            # The ids are those `ringscan tokenize` gives the file.
            ids = run(["tokenize", "--tokenizer", self.model, "--input", p, "--add-special"], np_=0, check=True)
            self.assertEqual(d["ids"], [int(x) for x in ids.stdout.split()], d["path"])

    def test_codebase_headers_and_content_ranges(self):
        docs, files, _ = read_result(self.full)
        self.assertEqual(len(docs), 1)
        text = docs[0]["text"]
        self.assertEqual([f["path"] for f in files], self.names)
        at = 0
        for f in files:
            src = self.sources[f["path"]].encode()
            self.assertEqual(f["status"], "ok")
            self.assertEqual(f["header"], f"### FILE: {f['path']}\n")
            self.assertEqual(text[at:at + len(f["header"])], f["header"].encode())
            self.assertEqual(f["text_begin"], at + len(f["header"]))
            self.assertEqual(text[f["text_begin"]:f["text_end"]], src, f["path"])
            # Its lines are the document's lines [line_begin, line_end), counted independently here.
            doc_lines = text.split(b"\n")
            src_lines = src.split(b"\n")[:-1] if src.endswith(b"\n") else src.split(b"\n")
            self.assertEqual(f["line_begin"], text[:f["text_begin"]].count(b"\n") + 1, f["path"])
            self.assertEqual(f["line_end"] - f["line_begin"], len(src_lines) if src else 0, f["path"])
            self.assertEqual(doc_lines[f["line_begin"] - 1:f["line_end"] - 1], src_lines if src else [], f["path"])
            at = f["text_end"] + (0 if src.endswith(b"\n") else 1)  # the newline added to a file without one
            # The file's tokens cover its header and content, nothing else.
            b, e = f["token_begin"], f["token_end"]
            self.assertEqual(docs[0]["begin"][b], f["text_begin"] - len(f["header"]))
            self.assertEqual(docs[0]["end"][e - 1], at)
        self.assertEqual(at, len(text))

    def test_max_tokens_marks_truncated_and_dropped_files(self):
        _, files, _ = read_result(self.full)
        cut_file = self.names.index("long.c")
        f = files[cut_file]
        max_tokens = (f["token_begin"] + f["token_end"]) // 2
        out = self.path("cut.h5")
        args = ["score", "--model", self.model, "--input", self.cb, "--mode", "codebase", "--max-tokens",
                str(max_tokens)]
        p = run(args + ["--out", out], np_=1, check=True, env=self.env)
        docs, cut, _ = read_result(out)
        text = docs[0]["text"]
        want = ["ok"] * cut_file + ["truncated"] + ["dropped"] * (len(self.names) - cut_file - 1)
        self.assertEqual([c["status"] for c in cut], want)
        self.assertEqual(len(docs[0]["ids"]), max_tokens)
        self.assertEqual(len(text), docs[0]["end"][-1], "the text ends with the last kept token")
        for c, f in zip(cut, files):
            self.assertEqual(c["header"], f["header"])
            src = self.sources[c["path"]].encode()
            if c["status"] == "ok":
                self.assertEqual(text[c["text_begin"]:c["text_end"]], src)
            elif c["status"] == "truncated":
                kept = text[c["text_begin"]:c["text_end"]]
                self.assertTrue(0 < len(kept) < len(src) and src.startswith(kept), kept)
                self.assertEqual(c["token_end"], max_tokens)
                # The kept part's lines, its last one possibly cut.
                self.assertEqual(c["line_end"] - c["line_begin"], kept.count(b"\n") + (0 if kept.endswith(b"\n") else 1))
            else:
                self.assertEqual((c["text_begin"], c["text_end"]), (len(text), len(text)))
                self.assertEqual(c["line_begin"], c["line_end"])
                self.assertEqual((c["token_begin"], c["token_end"]), (max_tokens, max_tokens))
        n_dropped = len(self.names) - cut_file - 1
        self.assertIn(f"--max-tokens truncated 1 file(s) and dropped {n_dropped} (see /files/status)", p.stderr)
        # The same with --quiet (the counts are not progress), and on 2 ranks with a second
        # codebase: the same rows for this one.
        other = self.path("cb2")
        os.makedirs(other)
        write(os.path.join(other, "x.py"), words(3, 400))
        out2 = self.path("cut2.h5")
        p2 = run(args[:5] + ["--input", other] + args[5:] + ["--out", out2, "--quiet"], np_=2, check=True,
                 env=self.env)
        self.assertIn(f"--max-tokens truncated 2 file(s) and dropped {n_dropped}", p2.stderr)
        docs2, cut2, _ = read_result(out2)
        self.assertEqual(docs2[0]["text"], text)
        self.assertEqual((docs2[0]["begin"], docs2[0]["end"]), (docs[0]["begin"], docs[0]["end"]))
        self.assertEqual([c for c in cut2 if c["document"] == 0], cut)
        self.assertEqual([c["status"] for c in cut2 if c["document"] == 1], ["truncated"])

    def test_resumed_run_writes_the_same_text_and_offsets(self):
        # A run whose parts hold one of two documents (the other never flushed) finishes
        # with the bytes of an uninterrupted run.
        other = self.path("cb3")
        os.makedirs(other)
        write(os.path.join(other, "y.py"), words(9, 120))
        args = ["score", "--model", self.model, "--input", self.cb, "--input", other, "--mode", "codebase",
                "--quiet"]
        whole = self.path("whole.h5")
        run(args + ["--out", whole], np_=2, check=True, env=self.env)
        part = self.path("part.h5")
        env = dict(self.env, RINGSCAN_IO_TEST_CRASH="atomic_renamed:1")
        run(args + ["--out", part], np_=2, env=env)
        self.assertTrue(os.path.isdir(part + ".parts"), "the crash should leave the parts")
        run(args + ["--out", part], np_=1, check=True, env=self.env)
        self.assertEqual(read_result(part)[2], read_result(whole)[2])

    def test_surprising_lines_recipe_from_the_docs(self):
        script = self.path("surprising_lines.py")
        write(script, recipe_source())
        source = self.sources["long.c"]
        p = subprocess.run([sys.executable, script, self.full, "long.c"], capture_output=True, text=True,
                           check=True)
        printed = [re.match(r"^ *(\d+) +(-?[\d.]+)  (.*)$", line) for line in p.stdout.splitlines()]
        self.assertTrue(all(printed), p.stdout)
        self.assertEqual(len(printed), 20)
        lines = source.split("\n")
        numbers = [int(m.group(1)) for m in printed]
        self.assertEqual(len(set(numbers)), 20)
        for m in printed:
            self.assertEqual(m.group(3), lines[int(m.group(1)) - 1], "the printed line is the file's line")
        bits = [float(m.group(2)) for m in printed]
        self.assertEqual(bits, sorted(bits, reverse=True))
        # The top line's value, from the file's tokens that start on it.
        docs, files, _ = read_result(self.full)
        f = files[self.names.index("long.c")]
        k = numbers[0] - 1
        line_begin = f["text_begin"] + sum(len(x.encode()) + 1 for x in lines[:k])
        line_end = line_begin + len(lines[k].encode()) + 1
        d = docs[0]
        on_line = [-d["logprob"][t] for t in range(f["token_begin"], f["token_end"])
                   if line_begin <= d["begin"][t] < line_end]
        self.assertAlmostEqual(bits[0], float(np.mean(on_line)) / np.log(2), places=2)
        # A file-mode document, named by its /documents path.
        out = self.path("one.h5")
        one = os.path.join(self.cb, "pkg", "c.md")
        run(["score", "--model", self.model, "--input", one, "--out", out, "--quiet"], np_=1, check=True,
            env=self.env)
        p = subprocess.run([sys.executable, script, out, one], capture_output=True, text=True, check=True)
        got = [re.match(r"^ *(\d+) +(-?[\d.]+)  (.*)$", line) for line in p.stdout.splitlines()]
        src_lines = self.sources["pkg/c.md"].split("\n")
        self.assertEqual(sorted(int(m.group(1)) for m in got), [1, 3])  # line 2 and the last are empty
        for m in got:
            self.assertEqual(m.group(3), src_lines[int(m.group(1)) - 1])


class WindowTest(DemoModelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.doc = cls.path("doc.py")
        write(cls.doc, words(5, 150))
        cls.plain = cls.path("plain.h5")
        run(["score", "--model", cls.model, "--input", cls.doc, "--out", cls.plain, "--quiet"], np_=1, check=True,
            env=cls.env)

    def test_window_scores_each_token_once_with_the_window_context(self):
        out = self.path("win.h5")
        run(["score", "--model", self.model, "--input", self.doc, "--out", out, "--window", "32", "--stride", "8",
             "--quiet"], np_=2, check=True, env=self.env)
        plain, win = read_result(self.plain)[0][0], read_result(out)[0][0]
        self.assertEqual(plain["ids"], win["ids"])
        n = len(plain["ids"])
        self.assertGreater(n, 64)
        self.assertTrue(np.isnan(win["logprob"][0]))
        self.assertFalse(np.isnan(win["logprob"][1:]).any(), "every token after the first is scored")
        # The first window is a plain run's beginning; later tokens see at most 32 tokens.
        np.testing.assert_allclose(win["logprob"][1:32], plain["logprob"][1:32], rtol=1e-4, atol=1e-5)
        self.assertGreater(np.abs(win["logprob"][40:] - plain["logprob"][40:]).max(), 1e-4)
        with h5py.File(out) as f:
            identity = json.loads(f.attrs["run_identity"])
            self.assertEqual(identity["window"], {"window": 32, "stride": 8})
            self.assertEqual(int(f["documents/n_scored"][0]), n - 1)
        # --stride defaults to half the window.
        half = self.path("half.h5")
        run(["score", "--model", self.model, "--input", self.doc, "--out", half, "--window", "32", "--quiet"],
            np_=1, check=True, env=self.env)
        with h5py.File(half) as f:
            self.assertEqual(json.loads(f.attrs["run_identity"])["window"], {"window": 32, "stride": 16})

    def test_window_options_are_checked(self):
        out = self.path("bad.h5")
        for extra, message in [(["--window", "8", "--stride", "9"], "--stride must be between 1 and --window 8, got 9"),
                               (["--stride", "4"], "--stride 4 needs --window"),
                               (["--window", "-3"], "--window must be >= 0")]:
            p = run(["score", "--model", self.model, "--input", self.doc, "--out", out] + extra, np_=1, env=self.env)
            self.assertNotEqual(p.returncode, 0, extra)
            self.assertIn(message, p.stderr, extra)
        p = run(["embed", "--model", self.model, "--input", self.doc, "--out", out, "--window", "8"], np_=1,
                env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("window", p.stderr)

    def test_warning_past_the_trained_context(self):
        model = self.path("short_context")
        shutil.copytree(self.model, model)
        with open(os.path.join(model, "config.json")) as f:
            config = json.load(f)
        config["max_position_embeddings"] = 64
        with open(os.path.join(model, "config.json"), "w") as f:
            json.dump(config, f)
        out = self.path("ctx.h5")
        p = run(["score", "--model", model, "--input", self.doc, "--out", out], np_=2, check=True, env=self.env)
        warnings = [line for line in p.stderr.splitlines() if "max_position_embeddings" in line]
        self.assertEqual(len(warnings), 1, p.stderr)
        self.assertIn("warning: 1 document(s) are longer", warnings[0])
        self.assertIn("than the 64 tokens the model was trained on", warnings[0])
        self.assertIn("--window 64", warnings[0])
        p = run(["score", "--model", model, "--input", self.doc, "--out", self.path("ctx2.h5"), "--window", "64"],
                np_=2, check=True, env=self.env)
        self.assertNotIn("max_position_embeddings", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
