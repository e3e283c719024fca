"""Issue 18: `prefill` saves a sequence-parallel prefill's state, `ask` answers questions
against it with prefix-shared batched decoding. The greedy answer equals, token for
token, one `forward --generate` over prefix + question ids (P = 1..4, both layouts); a
state saved on 4 ranks answers the same on 2 and 1; damaged or mismatched states fail
with one sentence."""
import json
import os
import shutil
import unittest

import h5py
import numpy as np

from jobs_util import DemoModelCase, run, words, write

NEW = 6  # tokens per answer (--ignore-eos: every answer has them all)
QUESTIONS = ["What does the first file compute?", "Where is data returned?", "x", "Which value is the largest one?"]


class AskState(DemoModelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        repo = cls.path("repo")
        os.makedirs(os.path.join(repo, "src"))
        for i in range(3):
            write(os.path.join(repo, "src", f"f{i}.c"), words(i, 40 + 15 * i) + "\n")
        cls.repo = repo
        cls.questions = cls.path("q.jsonl")
        write(cls.questions, "".join(json.dumps({"question": q, "id": f"q{i}"}) + "\n" for i, q in enumerate(QUESTIONS)))
        cls.reference = None

    def prefill(self, np_, layout, name):
        out = self.path(name)
        run(["prefill", "--model", self.model, "--input", self.repo, "--out", out, "--layout", layout,
             "--threads", "1", "--overwrite"], np_=np_, check=True, env=self.env)
        return out

    def ask(self, np_, state, name, extra=()):
        out = self.path(name)
        p = run(["ask", "--state", state, "--questions", self.questions, "--out", out, "--max-new-tokens", str(NEW),
                 "--ignore-eos", "--threads", "1", "--overwrite", *extra], np_=np_, check=True, env=self.env)
        with h5py.File(out) as f:
            a = f["answers"]
            qo, qn = a["question_token_offset"][:], a["question_n_tokens"][:]
            ao, an = a["token_offset"][:], a["n_tokens"][:]
            rows = [dict(id=a["id"].asstr()[i], question=a["question"].asstr()[i],
                         question_ids=f["tokens/question_ids"][qo[i]:qo[i] + qn[i]].tolist(),
                         answer=f["tokens/answer_ids"][ao[i]:ao[i] + an[i]].tolist(),
                         text=a["text"].asstr()[i]) for i in range(len(a["id"]))]
            attrs = dict(f.attrs)
        return rows, attrs, p.stderr

    def prefix_ids(self, state):
        return np.fromfile(os.path.join(state, "ids.bin"), dtype="<i4").tolist()

    def forward_generate(self, ids):
        ids_file = self.path("ids.txt")
        write(ids_file, ",".join(map(str, ids)))
        p = run(["forward", "--model", self.model, "--ids-file", ids_file, "--generate", str(NEW), "--top-k", "0",
                 "--threads", "1"], np_=1, check=True, env=self.env)
        return [json.loads(l) for l in p.stdout.splitlines() if '"generated"' in l][0]["generated"]

    def expected(self, state):
        """One forward --generate per question over the saved prefix + its own ids (single rank)."""
        if AskState.reference is None:
            rows, _, _ = self.ask(1, state, "ref-answers.h5")
            prefix = self.prefix_ids(state)
            AskState.reference = {r["id"]: self.forward_generate(prefix + r["question_ids"]) for r in rows}
        return AskState.reference

    def test_answers_equal_forward_generate_for_every_P_and_layout(self):
        for layout in ("zigzag", "contiguous"):
            for np_ in (1, 2, 3, 4):
                with self.subTest(layout=layout, np=np_):
                    state = self.prefill(np_, layout, f"s-{layout}-{np_}")
                    want = self.expected(state)
                    rows, attrs, log = self.ask(np_, state, f"a-{layout}-{np_}.h5",
                                                extra=("--batch", "3") if np_ == 2 else ())
                    self.assertEqual([r["id"] for r in rows], [f"q{i}" for i in range(len(QUESTIONS))])
                    self.assertEqual([r["question"] for r in rows], QUESTIONS)
                    for r in rows:
                        self.assertEqual(len(r["answer"]), NEW)
                        self.assertEqual(r["answer"], want[r["id"]], (layout, np_, r["id"]))
                    self.assertEqual(attrs["state_ranks"], np_)
                    self.assertIn("prefill tokens avoided", log)
                    self.assertIn("tokens/s", log)

    def test_state_saved_on_4_ranks_loads_on_2_and_1(self):
        state = self.prefill(4, "zigzag", "s-four")
        want = self.expected(state)
        for np_ in (2, 1):
            with self.subTest(np=np_):
                rows, attrs, log = self.ask(np_, state, f"four-on-{np_}.h5")
                self.assertIn(f"saved on 4 rank(s), re-sharded onto {np_} rank(s)", log)
                self.assertEqual({r["id"]: r["answer"] for r in rows}, want)
                self.assertEqual(attrs["ranks"], np_)

    def test_info_prints_size_per_rank(self):
        state = self.prefill(3, "contiguous", "s-info")
        p = run(["info", "--state", state], np_=0, check=True)
        with open(os.path.join(state, "manifest.json")) as f:
            manifest = json.load(f)
        for r in range(3):
            self.assertIn(f"rank {r}", p.stdout)
        self.assertIn(f"{manifest['n_tokens']} tokens, 3 file(s)", p.stdout)
        kv = [s["bytes"] for s in manifest["kv_shards"]]
        self.assertEqual(sum(s["kv_rows"] for s in manifest["kv_shards"]), manifest["n_tokens"])
        self.assertTrue(all(b > 0 for b in kv))

    def test_damaged_or_foreign_state_fails_with_one_sentence(self):
        state = self.prefill(2, "zigzag", "s-bad")
        bad = self.path("s-bad-copy")
        shutil.copytree(state, bad)
        with open(os.path.join(bad, "kv-rank-0001.bin"), "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 1]))
        for np_ in (1, 2):
            p = run(["ask", "--state", bad, "--questions", self.questions, "--out", self.path("x.h5")], np_=np_,
                    env=self.env)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("kv-rank-0001.bin: its SHA-256 differs from manifest.json's", p.stderr)
            self.assertFalse(os.path.exists(self.path("x.h5")))
        # Another model's weights: refused by the weights hash.
        other = self.path("other")
        run(["make-model", "--preset", "demo", "--seed", "3", "--out", other], np_=0, check=True)
        p = run(["ask", "--state", state, "--model", other, "--questions", self.questions, "--out",
                 self.path("y.h5")], np_=1, env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("are not those the state", p.stderr)
        # An existing state is not replaced without --overwrite, and a half-written one is not a state.
        p = run(["prefill", "--model", self.model, "--input", self.repo, "--out", state], np_=1, env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("already exists: give --overwrite", p.stderr)
        # A question file with a line that is not a question, and inputs that are not one document.
        qbad = self.path("bad.jsonl")
        write(qbad, '{"question": "a"}\nnot json\n')
        p = run(["ask", "--state", state, "--questions", qbad, "--out", self.path("w.h5")], np_=2, env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("bad.jsonl line 2 is not a JSON object", p.stderr)
        p = run(["prefill", "--model", self.model, "--input", os.path.join(self.repo, "src"), "--mode", "file",
                 "--out", self.path("two.state")], np_=1, env=self.env)
        self.assertIn("prefill saves the state of one document, but the inputs make 3", p.stderr)
        os.remove(os.path.join(bad, "manifest.json"))
        p = run(["ask", "--state", bad, "--questions", self.questions, "--out", self.path("z.h5")], np_=1)
        self.assertIn("has no manifest.json", p.stderr)


if __name__ == "__main__":
    unittest.main()
