"""Never a wrong or mixed result (project issue 13, first section), end to end.

- The run identity covers the weights and each document's content: another checkpoint
  (same config.json) is refused, whether the output is unfinished or complete; an edited
  document is computed again and the others are kept.
- Failed documents are tried again on a rerun, which may change the memory budget or
  the rank count; the exit status is 0 only when every document is ok, 3 when some are
  not, 1 when nothing could be done, and the same on every rank.
- NaN and absurd numbers in config.json or the options are refused; a document whose
  computed values are not finite is `failed`, never `ok`.

Runs the real binary (RINGSCAN_BIN) on the small demo model; reads results with h5py.
"""
import json
import os
import shutil
import subprocess
import unittest

import h5py
import numpy as np

from jobs_util import BIN, MPIRUN, SHELL_RANK, DemoModelCase, docs, run, set_tensor, words, write


class RunIdentity(DemoModelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model_s1 = cls.path("demo_s1")       # same config, other weights
        cls.model_f32 = cls.path("demo_f32")     # same config and seed, f32 weights
        for out, extra in ((cls.model_s1, ["--seed", "1"]), (cls.model_f32, ["--dtype", "f32"])):
            p = run(["make-model", "--preset", "demo", "--out", out] + extra, np_=0)
            assert p.returncode == 0, p.stderr
        with open(os.path.join(cls.model, "config.json")) as a, open(os.path.join(cls.model_f32, "config.json")) as b:
            assert a.read() == b.read(), "the f32 checkpoint must have the same config.json for this test"
        cls.corpus = cls.path("corpus")
        os.makedirs(cls.corpus)
        for i in range(3):
            write(os.path.join(cls.corpus, f"f{i}.txt"), words(i, 60 + 20 * i))

    def score(self, model, out, extra=(), np_=1, inputs=None, env=None):
        args = ["score", "--model", model, "--out", out]
        for i in inputs or [self.corpus]:
            args += ["--input", i]
        return run(args + list(extra), np_=np_, env=env or self.env)

    def assert_error(self, p, *needles):
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertEqual(p.stderr.count("ringscan: error:"), 1, p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)

    def test_another_checkpoint_is_refused_unfinished_or_complete(self):
        out = self.path("mix.h5")
        # A run that dies after its first part file (the io crash point of the resume tests).
        env = dict(self.env, RINGSCAN_IO_TEST_CRASH="atomic_renamed:2")
        p = self.score(self.model, out, ["--quiet", "--progress-interval", "0.01"], env=env)
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue(os.path.isdir(out + ".parts"))
        parts = sorted(os.listdir(out + ".parts"))
        p = self.score(self.model_s1, out, ["--quiet"])
        self.assert_error(p, "'weights_sha256'", "model_dir " + self.model + ";", "model_dir " + self.model_s1 + ")",
                          "--overwrite")
        self.assertEqual(sorted(os.listdir(out + ".parts")), parts)  # nothing of the first run lost
        # The first model resumes it; then its complete output refuses the f32 checkpoint too.
        p = self.score(self.model, out, ["--quiet"])
        self.assertEqual(p.returncode, 0, p.stderr)
        before = docs(out)
        p = self.score(self.model_f32, out, ["--quiet"])
        self.assert_error(p, "already exists with a different model or options", "'weights_sha256'",
                          "model_dir " + self.model_f32 + ")")
        self.assertEqual(docs(out), before)
        # The weights are hashed once per checkpoint: cached next to it, keyed by size and mtime.
        with open(os.path.join(self.model, ".ringscan-sha256.json")) as f:
            self.assertIn("model.safetensors", json.load(f)["files"])
        p = self.score(self.model, out, [])
        self.assertNotIn("hashed the weights", p.stderr)
        self.assertIn("already complete", p.stderr)

    def test_edited_document_is_computed_again_and_the_others_kept(self):
        corpus = self.path("edit-corpus")
        shutil.copytree(self.corpus, corpus)
        out = self.path("edit.h5")
        self.assertEqual(self.score(self.model, out, ["--quiet"], inputs=[corpus]).returncode, 0)
        before = docs(out)
        write(os.path.join(corpus, "f1.txt"), words(42, 70))
        p = self.score(self.model, out, [], inputs=[corpus])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("2 of 3 documents kept; 1 changed since (computed again)", p.stderr)
        after = docs(out)
        fresh = self.path("edit-fresh.h5")
        self.assertEqual(self.score(self.model, fresh, ["--quiet"], inputs=[corpus]).returncode, 0)
        self.assertNotEqual(after["f1.txt"]["ids"], before["f1.txt"]["ids"])
        self.assertEqual(after["f1.txt"]["ids"], docs(fresh)["f1.txt"]["ids"])
        for name in ("f0.txt", "f2.txt"):  # kept: the very same bytes, not recomputed
            self.assertEqual(after[name]["lp"], before[name]["lp"], name)
        # A document of a codebase edited: the codebase document is computed again.
        out2 = self.path("edit-cb.h5")
        self.assertEqual(self.score(self.model, out2, ["--quiet", "--mode", "codebase"], inputs=[corpus]).returncode, 0)
        write(os.path.join(corpus, "f2.txt"), words(43, 50))
        p = self.score(self.model, out2, ["--mode", "codebase"], inputs=[corpus])
        self.assertIn("1 changed since (computed again)", p.stderr)

    def test_failed_documents_are_tried_again_and_the_exit_status_says_so(self):
        out = self.path("retry.h5")
        cb = ["--mode", "codebase", "--quiet"]
        p = self.score(self.model, out, cb + ["--memory-per-rank", "0.004"])
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("1 of 1 documents failed", p.stderr)
        d = docs(out)[os.path.basename(self.corpus)]
        self.assertEqual(d["status"], "failed")
        self.assertIn("--memory-per-rank", d["error"])
        # The same command tries it again (and fails again); every rank exits 3.
        p = subprocess.run(MPIRUN + ["-np", "2", "bash", "-c",
                                     f'"{BIN}" score --model {self.model} --input {self.corpus} --out {out} '
                                     f'--mode codebase --quiet --memory-per-rank 0.004; '
                                     f'echo "rank {SHELL_RANK} exit $?"'],
                           capture_output=True, text=True, timeout=300, env=self.env)
        self.assertEqual(sorted(l for l in p.stdout.splitlines() if l.startswith("rank ")),
                         ["rank 0 exit 3", "rank 1 exit 3"], p.stdout + p.stderr)
        # The advice applied (a memory budget, not part of the identity): ok, exit 0.
        p = self.score(self.model, out, cb + ["--memory-per-rank", "4"], np_=2)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(docs(out)[os.path.basename(self.corpus)]["status"], "ok")
        p = self.score(self.model, out, ["--mode", "codebase"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("already complete", p.stderr)
        # Nothing could be done (bad input): 1 on every rank.
        p = subprocess.run(MPIRUN + ["-np", "2", "bash", "-c",
                                     f'"{BIN}" score --model {self.model} --input {self.path("none")} '
                                     f'--out {self.path("none.h5")}; echo "rank {SHELL_RANK} exit $?"'],
                           capture_output=True, text=True, timeout=300, env=self.env)
        self.assertEqual(sorted(l for l in p.stdout.splitlines() if l.startswith("rank ")),
                         ["rank 0 exit 1", "rank 1 exit 1"], p.stdout + p.stderr)

    def test_non_finite_and_absurd_numbers_are_refused(self):
        bad = self.path("bad-config")
        shutil.copytree(self.model, bad)
        cfg_path = os.path.join(bad, "config.json")
        with open(cfg_path) as f:
            cfg = f.read()
        for key, value in (("layer_norm_epsilon", "NaN"), ("layer_norm_epsilon", "-Infinity"),
                           ("layer_norm_epsilon", "-1e-05"), ("time_step_limit", "[NaN, NaN]"),
                           ("time_step_limit", "[5, 0.001]")):
            obj = json.loads(cfg)
            obj.pop(key, None)
            text = json.dumps(obj)[:-1] + f', "{key}": {value}}}'
            write(cfg_path, text)
            p = self.score(bad, self.path("bad.h5"), ["--quiet"])
            self.assert_error(p, key)
        obj = json.loads(cfg)
        obj.update(position_embedding_type="rope")
        for theta in ("NaN", "0"):
            write(cfg_path, json.dumps(obj)[:-1] + f', "rope_theta": {theta}}}')
            self.assert_error(self.score(bad, self.path("bad.h5"), ["--quiet"]), "rope_theta")
        for opt, value in (("--memory-per-rank", "nan"), ("--memory-per-rank", "inf"), ("--progress-interval", "nan")):
            self.assert_error(self.score(self.model, self.path("bad.h5"), [opt, value]), opt)
        for value in ("nan", "inf", "-1"):
            p = run(["summarize", "--model", self.model, "--input", self.corpus, "--out", self.path("sum.h5"),
                     "--temperature", value], env=self.env)
            self.assert_error(p, "--temperature")
        self.assertFalse(os.path.exists(self.path("bad.h5")))

    def test_non_finite_values_make_a_document_failed(self):
        broken = self.path("nan-weights")
        shutil.copytree(self.model_f32, broken)
        set_tensor(os.path.join(broken, "model.safetensors"), "backbone.norm_f.weight", float("nan"))
        out = self.path("nan.h5")
        p = self.score(broken, out, ["--quiet"])
        self.assertEqual(p.returncode, 3, p.stderr)
        for name, d in docs(out).items():
            self.assertEqual(d["status"], "failed", name)
            self.assertIn("non-finite log-probs", d["error"])
        with h5py.File(out) as f:
            self.assertTrue(np.all(np.isnan(f["documents/perplexity"][:])))
        p = run(["embed", "--model", broken, "--input", self.corpus, "--out", self.path("nan-emb.h5"), "--quiet"],
                env=self.env)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("non-finite embedding", docs(self.path("nan-emb.h5"))["f0.txt"]["error"])
        # summarize: the sampler meets non-finite logits: each document failed with the reason.
        p = run(["summarize", "--model", broken, "--input", self.corpus, "--out", self.path("nan-sum.h5"),
                 "--max-new-tokens", "3", "--quiet"], env=self.env)
        self.assertEqual(p.returncode, 3, p.stderr)
        for name, d in docs(self.path("nan-sum.h5")).items():
            self.assertEqual(d["status"], "failed", name)
            self.assertIn("non-finite logits", d["error"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
