"""Conventions users expect (issue 16): --version, --threads, --input - (stdin), JSONL
input, forward --prompt with text beside the ids, --prompt-file inside the chat
template with {question}, and messages that once read garbled. Runs the real binary."""
import json
import os
import re
import subprocess
import unittest

import h5py

from jobs_util import BIN, DemoModelCase, MPIRUN, run, write


class Conventions(DemoModelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.doc = cls.path("doc.txt")
        write(cls.doc, "int main() { return 0; }\n")

    def job(self, args, np_=0, stdin=None, check=True):
        cmd = (MPIRUN + ["-np", str(np_)] if np_ else []) + [BIN] + args
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=300, env=self.env)
        if check:
            self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def fails_with(self, args, sentence, np_=0):
        p = self.job(args, np_=np_, check=False)
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr.count("ringscan: error:"), 1, p.stderr)
        self.assertIn(sentence, p.stderr)
        return p

    def paths(self, out):
        with h5py.File(out) as f:
            return list(f["documents/path"].asstr()[:]), [int(n) for n in f["documents/n_tokens"][:]]

    def test_version_names_the_commit_and_build(self):
        p = self.job(["--version"])
        self.assertRegex(p.stdout, r"^ringscan \d+\.\d+\.\d+\n")
        src = os.path.dirname(os.path.abspath(__file__))
        commit = re.search(r"^commit (\S+)", p.stdout, re.M).group(1).removesuffix("-dirty")
        if subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, cwd=src).returncode == 0:
            # A commit of this checkout: HEAD, or before it when the binary predates the last commit.
            self.assertEqual(subprocess.run(["git", "merge-base", "--is-ancestor", commit, "HEAD"],
                                            cwd=src).returncode, 0, p.stdout)
        self.assertIn("build type", p.stdout)
        self.assertIn("CUDA backend", p.stdout)

    def test_threads_option_sets_the_threads(self):
        for n in (1, 3):
            p = self.job(["score", "--model", self.model, "--input", self.doc, "--out", self.path(f"t{n}.h5"),
                          "--threads", str(n)])
            self.assertIn(f"{n} CPU threads per rank", p.stderr)
        self.fails_with(["score", "--model", self.model, "--input", self.doc, "--out", self.path("t.h5"),
                         "--threads", "-2"], "--threads must be >= 0")

    def test_stdin_is_a_document_equal_to_the_same_file(self):
        with open(self.doc) as f:
            text = f.read()
        self.job(["score", "--model", self.model, "--input", "-", "--out", self.path("stdin.h5"), "--quiet"],
                 np_=2, stdin=text)
        self.job(["score", "--model", self.model, "--input", self.doc, "--out", self.path("file.h5"), "--quiet"])
        with h5py.File(self.path("stdin.h5")) as a, h5py.File(self.path("file.h5")) as b:
            self.assertEqual(list(a["documents/path"].asstr()[:]), ["-"])
            self.assertEqual(a["tokens/ids"][:].tolist(), b["tokens/ids"][:].tolist())
            self.assertEqual(a["tokens/logprob"][:].tobytes(), b["tokens/logprob"][:].tobytes())

    def test_jsonl_records_are_documents_with_named_fields(self):
        jl = self.path("docs.jsonl")
        write(jl, json.dumps({"name": "a", "body": "int x = 1;"}) + "\n\n" +
              json.dumps({"name": 7, "body": "the value of y"}) + "\n" + json.dumps({"body": "no name"}) + "\n")
        self.job(["score", "--model", self.model, "--input", jl, "--out", self.path("jl.h5"), "--quiet",
                  "--jsonl-id", "name", "--jsonl-text", "body"], np_=2)
        names, counts = self.paths(self.path("jl.h5"))
        self.assertEqual(sorted(names), sorted(["a", "7", f"{jl}:4"]))
        self.assertTrue(all(n > 2 for n in counts))
        # The same records on stdin with --input-format jsonl.
        with open(jl) as f:
            stdin_text = f.read()
        self.job(["score", "--model", self.model, "--input", "-", "--input-format", "jsonl", "--out",
                  self.path("jl-stdin.h5"), "--quiet", "--jsonl-id", "name", "--jsonl-text", "body"],
                 stdin=stdin_text)
        self.assertEqual(sorted(self.paths(self.path("jl-stdin.h5"))[0]), sorted(["a", "7", "-:4"]))
        self.fails_with(["score", "--model", self.model, "--input", jl, "--out", self.path("jl2.h5")],
                        f'{jl} line 1 has no "text" field; name the text field with --jsonl-text')

    def test_forward_prompt_prints_text_beside_ids(self):
        p = self.job(["forward", "--model", self.model, "--prompt", "int main() { return 0; }", "--top-k", "2",
                      "--generate", "3"])
        lines = [json.loads(x) for x in p.stdout.splitlines()]
        rows, generated = lines[:-1], lines[-1]
        self.assertEqual("".join(r["text"] for r in rows[1:]), "int main() { return 0; }")  # after BOS
        for a, b in zip(rows, rows[1:]):
            self.assertEqual(a["next_text"], b["text"])
        self.assertEqual(len(rows[0]["top_k_text"]), 2)
        self.assertEqual(len(generated["generated"]), 3)
        self.assertIsInstance(generated["generated_text"], str)
        self.fails_with(["forward", "--model", self.model, "--prompt", "x", "--ids", "1,2"],
                        "give exactly one of --ids, --ids-file and --prompt")

    def test_prompt_file_with_a_question(self):
        # Where the text goes is checked in test_prompt (jobs/prompt.h); here, the options end to end.
        tpl = self.path("ask.txt")
        write(tpl, "Question: {question}\n\n{document}\n\nAnswer briefly.")
        common = ["summarize", "--model", self.model, "--input", self.doc, "--max-new-tokens", "2", "--quiet",
                  "--prompt-file", tpl]
        self.job(common + ["--out", self.path("q.h5"), "--question", "What does it return?"])
        with h5py.File(self.path("q.h5")) as f:
            extra = json.loads(f["documents/extra"].asstr()[0])
        self.assertEqual(extra["n_generated"], 2)
        self.fails_with(common + ["--out", self.path("q2.h5")],
                        "contains \"{question}\": give the question with --question TEXT")

    def test_messages_that_once_read_garbled(self):
        # A ringscan-like result file this ringscan cannot reuse: no "it is not a ringscan result file".
        out = self.path("old.h5")
        with h5py.File(out, "w") as f:
            f.attrs["format_version"] = 1
            f.attrs["run_identity"] = "{}"
        p = self.fails_with(["score", "--model", self.model, "--input", self.doc, "--out", out],
                            f"output {out} already exists with results this ringscan cannot reuse (")
        self.assertNotIn("is not a ringscan result file", p.stderr)
        # --model naming the checkpoint's config.json: the folder is suggested.
        self.fails_with(["score", "--model", os.path.join(self.model, "config.json"), "--input", self.doc, "--out",
                         self.path("m.h5")], f"--model {self.model}")
        # --sp 2 on one rank: how to start two.
        for cmd in (["score", "--input", self.doc, "--out", self.path("sp.h5")], ["forward", "--ids", "1,2,3"]):
            self.fails_with(cmd + ["--model", self.model, "--sp", "2"],
                            "--sp 2 needs 2 ranks but this run has 1: start it with mpirun -np 2")


if __name__ == "__main__":
    unittest.main()
