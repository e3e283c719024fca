"""End-to-end tests of `ringscan inspect` (issue 16): --format table|csv|jsonl, summaries,
NaN rows last, the totals line, wrapped paths, and a run in progress read from its
parts folder. Result files: tools/report/make_result.py and real runs of the demo model.
"""
import csv
import io
import json
import os
import subprocess
import sys
import unittest

import h5py
import numpy as np

import jobs_util
from jobs_util import DemoModelCase, run

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_RESULT = os.path.join(HERE, "..", "..", "tools", "report", "make_result.py")


class Inspect(DemoModelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Five documents with summaries; the third one not scored (NaN perplexity).
        cls.h5 = cls.path("docs.h5")
        subprocess.run([sys.executable, MAKE_RESULT, cls.h5, "--files", "5", "--mode", "file", "--summaries"],
                       check=True)
        with h5py.File(cls.h5, "r+") as f:
            f["documents/perplexity"][2] = np.nan
            cls.paths = list(f["documents/path"].asstr()[:])
            cls.ppl = f["documents/perplexity"][:]
            cls.tokens = f["documents/n_tokens"][:]

    def inspect(self, *args, env=None):
        p = run(["inspect", self.h5, *args], np_=0, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def test_csv_and_jsonl_hold_every_document(self):
        rows = list(csv.DictReader(io.StringIO(self.inspect("--format", "csv"))))
        self.assertEqual(sorted(r["path"] for r in rows), sorted(self.paths))
        for r in rows:
            i = self.paths.index(r["path"])
            self.assertEqual(r["kind"], "document")
            self.assertEqual(int(r["tokens"]), self.tokens[i])
            if np.isnan(self.ppl[i]):
                self.assertEqual(r["perplexity"], "")
            else:
                self.assertAlmostEqual(float(r["perplexity"]), self.ppl[i], delta=5e-4)
            self.assertEqual(r["summary"], f"Summary of {r['path']}: it returns the value.")
        lines = [json.loads(line) for line in self.inspect("--format", "jsonl").splitlines()]
        self.assertEqual(sorted(j["path"] for j in lines), sorted(self.paths))
        for j in lines:
            i = self.paths.index(j["path"])
            self.assertEqual(j["perplexity"], None if np.isnan(self.ppl[i]) else self.ppl[i])
            self.assertIn("it returns the value.", j["summary"])
        p = run(["inspect", self.h5, "--format", "xml"], np_=0)
        self.assertEqual(p.returncode, 1)
        self.assertIn('--format must be table, csv or jsonl, got "xml"', p.stderr)

    def test_nan_rows_last_in_either_direction(self):
        for direction in ([], ["--desc"]):
            rows = list(csv.DictReader(io.StringIO(self.inspect("--format", "csv", "--sort", "perplexity", *direction))))
            values = [float(r["perplexity"]) if r["perplexity"] else None for r in rows]
            self.assertIsNone(values[-1], direction)
            self.assertEqual(values[:-1], sorted(values[:-1], reverse=bool(direction)))

    def test_table_summaries_and_totals(self):
        table = self.inspect(env=dict(os.environ, COLUMNS="200"))
        for p in self.paths:
            self.assertIn(f"summary: Summary of {p}: it returns the value.", table)
        finite = self.ppl[np.isfinite(self.ppl)]
        last = table.splitlines()[-1]
        self.assertEqual(last, f"total: documents 5 (ok 5), tokens {int(self.tokens.sum())}, perplexity mean "
                               f"{np.mean(finite):.3f} median {np.median(finite):.3f} (of 4 scored)")

    def test_long_paths_wrap_inside_their_column(self):
        table = self.inspect(env=dict(os.environ, COLUMNS="64"))
        lines = table.splitlines()
        self.assertTrue(all(len(line) <= 64 for line in lines[1:-1] if not line.startswith("  summary")), table)
        header = lines[1]
        tokens_end = header.index("tokens") + len("tokens")
        # Rows start at the first column; a wrapped path continues on indented lines.
        got = []
        for line in lines[2:-1]:
            if line.startswith("  summary") or line.startswith("           "):
                continue
            if line[:1] != " ":
                self.assertEqual(len(line[:tokens_end].rstrip()), tokens_end, line)  # the column stays in place
                got.append([line.split()[0], int(line[:tokens_end].split()[-1])])
            else:
                got[-1][0] += line.strip()
        self.assertEqual(sorted(map(tuple, got)), sorted(zip(self.paths, map(int, self.tokens))))
        self.assertTrue(any(len(p) > 64 - 42 for p in self.paths))  # some did wrap

    def test_a_run_in_progress(self):
        corpus = self.path("corpus")
        os.makedirs(corpus)
        for i in range(6):
            jobs_util.write(os.path.join(corpus, f"f{i}.txt"), jobs_util.words(i, 1500))  # each document a batch of its own
        out = self.path("progress.h5")
        args = ["score", "--model", self.model, "--out", out, "--quiet", "--input", corpus]
        env = dict(self.env, RINGSCAN_IO_TEST_CRASH="atomic_renamed:3")  # dies after its second part file
        p = run(args, np_=1, env=env)
        self.assertNotEqual(p.returncode, 0)
        self.assertFalse(os.path.exists(out))
        for target in (out, out + ".parts"):
            table = run(["inspect", target], np_=0, check=True).stdout
            first = table.splitlines()[0]
            self.assertIn(": run in progress: ", first)
            done = int(first.split("run in progress: ")[1].split()[0])
            self.assertIn(f"of 6 documents done", first)
            self.assertTrue(0 < done < 6, first)
            self.assertIn("job score, model " + self.model, first)
            self.assertEqual(sum(1 for line in table.splitlines() if line.startswith(corpus)), done)
            self.assertTrue(table.splitlines()[-1].startswith(f"so far: documents {done} (ok {done})"), table)
        rows = [json.loads(line) for line in run(["inspect", out, "--format", "jsonl"], np_=0, check=True).stdout.splitlines()]
        # The same command finishes the run; its file holds what the parts showed.
        run(args, np_=1, env=self.env, check=True)
        final = {j["path"]: j for j in (json.loads(line) for line in
                 run(["inspect", out, "--format", "jsonl"], np_=0, check=True).stdout.splitlines())}
        self.assertEqual(len(final), 6)
        for j in rows:
            self.assertEqual(j, final[j["path"]])
        self.assertNotIn("in progress", run(["inspect", out], np_=0, check=True).stdout)

    def test_a_real_summarize_run(self):
        doc = self.path("note.txt")
        jobs_util.write(doc, jobs_util.words(7, 40))
        out = self.path("summaries.h5")
        run(["summarize", "--model", self.model, "--out", out, "--quiet", "--input", doc, "--max-new-tokens", "6"],
            np_=1, check=True)
        with h5py.File(out) as f:
            text = json.loads(f["documents/extra"].asstr()[0])["text"]
        rows = [json.loads(line) for line in run(["inspect", out, "--format", "jsonl"], np_=0, check=True).stdout.splitlines()]
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0].get("summary", ""), text)
        self.assertIsNone(rows[0]["perplexity"])  # summarize scores nothing
        table = run(["inspect", out], np_=0, check=True, env=dict(os.environ, COLUMNS="400")).stdout
        if text.strip():
            self.assertIn("summary: " + text.split("\n")[0].replace("\t", " ").rstrip(), table)
        self.assertIn("perplexity - (no document scored)", table.splitlines()[-1])

    def test_a_folder_that_is_not_a_parts_folder(self):
        d = self.path("not-parts")
        os.makedirs(d)
        p = run(["inspect", d], np_=0)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"{d} holds no run.json; expected the parts folder of a ringscan run", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
