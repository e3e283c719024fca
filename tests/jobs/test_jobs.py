"""End-to-end tests of `ringscan score` / `embed` / `inspect` (project issue 5).

Runs the real binary under mpirun on the demo model and small generated corpora,
and reads the HDF5 results with h5py only (no ringscan code).
"""
import json
import os
import signal
import subprocess
import time
import unittest

import h5py
import numpy as np

import jobs_util
from jobs_util import BIN, MPIRUN, DemoModelCase

# Text with multi-byte UTF-8 and indentation, as source files have.
TEXT_WORDS = ["int", "return", "the", "value", "for", "while", "x", "y", "=", "+", "(", ")", "{", "}", ";",
              "if", "else", "data", "é", "数据", "🙂", "\n", "    "]


def run(args, np_=1, check=True, timeout=600):
    return jobs_util.run(args, np_=np_, check=check, timeout=timeout)


def words(seed, n):
    return jobs_util.words(seed, n, TEXT_WORDS)


class Jobs(DemoModelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A corpus: small files (data parallel), one long file (sequence parallel when the
        # memory budget is small), a codebase folder, and one file of each skip kind.
        c = cls.corpus = os.path.join(cls.tmp, "corpus")
        os.makedirs(os.path.join(c, "pkg", "sub"))
        for i in range(5):
            with open(os.path.join(c, f"small{i}.txt"), "w") as f:
                f.write(words(i, 40 + 30 * i))
        with open(os.path.join(c, "long.txt"), "w") as f:
            f.write(words(99, 1500))
        with open(os.path.join(c, "pkg", "a.py"), "w") as f:
            f.write(words(7, 120))
        with open(os.path.join(c, "pkg", "sub", "b.c"), "w") as f:
            f.write(words(8, 90))
        with open(os.path.join(c, "pkg", ".gitignore"), "w") as f:
            f.write("ignored.txt\n")
        with open(os.path.join(c, "pkg", "ignored.txt"), "w") as f:
            f.write("never read")
        skips = cls.skips = os.path.join(cls.tmp, "skips")
        os.makedirs(skips)
        with open(os.path.join(skips, "binary.bin"), "wb") as f:
            f.write(b"\x00\x01\x02ELF" * 100)
        with open(os.path.join(skips, "latin1.txt"), "wb") as f:
            f.write("caf\xe9 cr\xe8me".encode("latin-1"))
        open(os.path.join(skips, "empty.txt"), "w").close()
        os.symlink("does-not-exist", os.path.join(skips, "broken"))
        os.symlink("loop2", os.path.join(skips, "loop1"))
        os.symlink("loop1", os.path.join(skips, "loop2"))
        with open(os.path.join(skips, "fine.txt"), "w") as f:
            f.write("plain text that is fine")

    def score(self, out, extra=(), np_=2, inputs=None, check=True):
        inputs = inputs or [os.path.join(self.corpus, f"small{i}.txt") for i in range(5)] + \
            [os.path.join(self.corpus, "long.txt")]
        args = ["score", "--model", self.model, "--out", out, "--quiet"]
        for i in inputs:
            args += ["--input", i]
        return run(args + list(extra), np_=np_, check=check)

    def docs(self, path):
        with h5py.File(path) as f:
            d = f["documents"]
            rows = []
            for i in range(len(d["path"])):
                off, n = int(d["token_offset"][i]), int(d["n_tokens"][i])
                rows.append(dict(path=d["path"].asstr()[i], status=d["status"].asstr()[i],
                                 error=d["error"].asstr()[i], n=n, nll=float(d["nll_sum"][i]),
                                 ppl=float(d["perplexity"][i]), truncated=bool(d["truncated"][i]),
                                 extra=json.loads(d["extra"].asstr()[i]),
                                 ids=f["tokens/ids"][off:off + n], lp=f["tokens/logprob"][off:off + n]))
            return rows

    def test_dp_and_sp_in_one_run_match_forward(self):
        out = self.path("mixed.h5")
        # ~0.03 GiB per rank: the long file exceeds one rank's budget, the small ones do not.
        self.score(out, ["--memory-per-rank", "0.03"])
        rows = self.docs(out)
        routes = {os.path.basename(r["path"]): r["extra"]["route"] for r in rows}
        self.assertEqual(routes["long.txt"], "sequence_parallel", routes)
        self.assertEqual(routes["small0.txt"], "data_parallel", routes)
        for r in rows:
            self.assertEqual(r["status"], "ok")
            self.assertTrue(np.isnan(r["lp"][0]))
            self.assertAlmostEqual(r["nll"], -float(np.sum(r["lp"][1:], dtype=np.float64)), delta=1e-3)
            self.assertAlmostEqual(r["ppl"], float(np.exp(r["nll"] / (r["n"] - 1))), delta=1e-6 * r["ppl"])
            # The per-token log-probs equal `ringscan forward` on the same ids (single rank).
            ids_file = self.path("ids.txt")
            with open(ids_file, "w") as f:
                f.write(" ".join(map(str, r["ids"])))
            fw = run(["forward", "--model", self.model, "--ids-file", ids_file, "--top-k", "0"], np_=0)
            expect = [json.loads(line)["logprob_next"] for line in fw.stdout.splitlines()][:-1]
            # fp32 with a different summation order (sequence parallel, block sizes): 1e-4.
            np.testing.assert_allclose(r["lp"][1:], np.array(expect, dtype=np.float32), atol=1e-4, rtol=0,
                                       err_msg=r["path"])

    def test_codebase_mode_per_file_rows(self):
        out = self.path("codebase.h5")
        run(["score", "--model", self.model, "--out", out, "--quiet", "--mode", "codebase",
             "--input", os.path.join(self.corpus, "pkg")], np_=2)
        with h5py.File(out) as f:
            self.assertEqual(list(f["documents/path"].asstr()[:]), [os.path.join(self.corpus, "pkg")])
            files = list(f["files/path"].asstr()[:])
            self.assertEqual(files, [".gitignore", "a.py", "sub/b.c"])  # ignored.txt left out; bytewise order
            begin, end = f["files/token_begin"][:], f["files/token_end"][:]
            lp = f["tokens/logprob"][:]
            n = int(f["documents/n_tokens"][0])
            self.assertEqual(int(end[-1]), n)
            self.assertEqual(list(begin[1:]), list(end[:-1]))
            for i in range(3):  # a file's first token is scored in the context before it
                lo = max(int(begin[i]), 1)
                nll = -float(np.sum(lp[lo:int(end[i])], dtype=np.float64))
                self.assertAlmostEqual(float(f["files/nll_sum"][i]), nll, delta=1e-3)
                self.assertAlmostEqual(float(f["files/perplexity"][i]), np.exp(nll / (int(end[i]) - lo)), delta=1e-3)
        table = run(["inspect", out, "--sort", "tokens"], np_=0).stdout
        self.assertIn("sub/b.c", table)
        self.assertIn("perplexity", table)

    def test_every_skip_reason_is_recorded(self):
        out = self.path("skips.h5")
        p = run(["score", "--model", self.model, "--out", out, "--input", self.skips], np_=2, check=False)
        self.assertEqual(p.returncode, 3, p.stderr)  # written, but some documents are not ok (docs/cli.md)
        with h5py.File(out) as f:
            reasons = dict(zip([os.path.basename(x) for x in f["skipped/path"].asstr()[:]],
                               f["skipped/reason"].asstr()[:]))
            status = dict(zip([os.path.basename(x) for x in f["documents/path"].asstr()[:]],
                              f["documents/status"].asstr()[:]))
        self.assertEqual(reasons.get("binary.bin"), "binary", reasons)
        self.assertEqual(reasons.get("latin1.txt"), "non_utf8", reasons)
        self.assertEqual(reasons.get("empty.txt"), "empty", reasons)
        self.assertEqual(reasons.get("broken"), "broken_symlink", reasons)
        self.assertIn(reasons.get("loop1"), ("symlink_loop",), reasons)
        self.assertEqual(status.get("fine.txt"), "ok", status)
        for name in ("binary.bin", "latin1.txt", "broken"):
            self.assertIn(name, p.stderr)  # one warning line each

    def test_embed_sp_equals_dp(self):
        a, b = self.path("emb-dp.h5"), self.path("emb-sp.h5")
        long_doc = [os.path.join(self.corpus, "long.txt")]
        run(["embed", "--model", self.model, "--out", a, "--quiet", "--input", long_doc[0]], np_=2)
        run(["embed", "--model", self.model, "--out", b, "--quiet", "--input", long_doc[0], "--sp", "2"], np_=2)
        with h5py.File(a) as fa, h5py.File(b) as fb:
            self.assertEqual(json.loads(fb["documents/extra"].asstr()[0])["route"], "sequence_parallel")
            for k in ("mean", "last"):
                x, y = fa[f"embeddings/{k}"][:], fb[f"embeddings/{k}"][:]
                self.assertEqual(x.shape, (1, 256))
                self.assertTrue(np.all(np.isfinite(x)))
                np.testing.assert_allclose(x, y, atol=2e-5, rtol=0)  # fp32 reassociation only

    def test_too_long_fails_alone_and_max_tokens_truncates(self):
        out = self.path("toolong.h5")
        p = self.score(out, ["--memory-per-rank", "0.0165"], check=False)  # the long file needs more than 2 ranks
        self.assertEqual(p.returncode, 3, p.stderr)
        rows = {os.path.basename(r["path"]): r for r in self.docs(out)}
        self.assertEqual(rows["long.txt"]["status"], "failed")
        self.assertIn("needs", rows["long.txt"]["error"])
        self.assertIn("ranks", rows["long.txt"]["error"])
        self.assertEqual(rows["small1.txt"]["status"], "ok")
        out2 = self.path("trunc.h5")
        self.score(out2, ["--max-tokens", "50"])
        for r in self.docs(out2):
            self.assertLessEqual(r["n"], 50)
        self.assertTrue(any(r["truncated"] for r in self.docs(out2)))

    def test_resume_after_kill_equals_uninterrupted(self):
        ref = self.path("ref.h5")
        inputs = [os.path.join(self.corpus, f"small{i}.txt") for i in range(5)] + \
            [os.path.join(self.corpus, "long.txt"), os.path.join(self.corpus, "pkg")]
        self.score(ref, inputs=inputs)
        for delay in (0.5, 1.5, 3.0):
            out = self.path(f"killed-{delay}.h5")
            args = MPIRUN + ["-np", "2", BIN, "score", "--model", self.model, "--out", out, "--quiet"]
            for i in inputs:
                args += ["--input", i]
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(delay)
            # kill -9 every process of the run: mpirun's group, and the ranks it started
            # (which may sit in another process group and would otherwise finish the run).
            os.killpg(proc.pid, signal.SIGKILL)
            subprocess.run(["pkill", "-KILL", "-f", out], check=False)
            proc.wait()
            while subprocess.run(["pgrep", "-f", out], capture_output=True).returncode == 0:
                time.sleep(0.1)
            self.score(out, inputs=inputs)
            # Same command, same bytes (the command line attribute differs only by --out).
            with h5py.File(ref) as fr, h5py.File(out) as fo:
                for ds in ("documents/path", "documents/status", "documents/n_tokens", "documents/token_offset",
                           "tokens/ids", "files/path", "files/token_begin"):
                    np.testing.assert_array_equal(fr[ds][:], fo[ds][:], err_msg=f"{ds} after kill at {delay}s")
                for ds in ("documents/nll_sum", "tokens/logprob", "files/nll_sum"):
                    np.testing.assert_array_equal(fr[ds][:], fo[ds][:], err_msg=f"{ds} after kill at {delay}s")

    def test_summarize_same_tokens_batched_alone_and_sequence_parallel(self):
        inputs = [os.path.join(self.corpus, f"small{i}.txt") for i in range(4)]
        runs = {}
        for name, extra in (("batched", ["--batch", "4"]), ("alone", ["--batch", "1"]), ("sp", ["--sp", "2"])):
            out = self.path(f"sum-{name}.h5")
            args = ["summarize", "--model", self.model, "--out", out, "--quiet", "--max-new-tokens", "6"] + extra
            for i in inputs:
                args += ["--input", i]
            run(args, np_=2)
            with h5py.File(out) as f:
                runs[name] = [json.loads(e) for e in f["documents/extra"].asstr()[:]]
        self.assertEqual({r["route"] for r in runs["sp"]}, {"sequence_parallel"})
        for name in ("alone", "sp"):
            self.assertEqual([r["generated_ids"] for r in runs[name]], [r["generated_ids"] for r in runs["batched"]], name)
        for r in runs["batched"]:
            self.assertEqual(r["n_generated"], len(r["generated_ids"]))
            self.assertIn(r["finish_reason"], ("length", "stop"))
            self.assertIsInstance(r["text"], str)
        bad = self.path("bad-prompt.txt")
        with open(bad, "w") as f:
            f.write("no placeholder here")
        p = run(["summarize", "--model", self.model, "--out", self.path("bad.h5"), "--input", inputs[0],
                 "--prompt-file", bad], np_=2, check=False, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr.count("ringscan: error:"), 1, p.stderr)
        self.assertIn("{document}", p.stderr)

    def test_second_run_on_the_same_output_is_refused_while_the_first_runs(self):
        out = self.path("locked.h5")
        # A first run that takes seconds: 3000 decode steps.
        common = ["summarize", "--model", self.model, "--out", out, "--quiet", "--max-new-tokens", "3000",
                  "--ignore-eos", "--input", os.path.join(self.corpus, "small0.txt")]
        first = subprocess.Popen(MPIRUN + ["-np", "1", BIN] + common, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while not os.path.exists(out + ".parts") and time.time() < deadline:
                time.sleep(0.05)
            second = run(common, np_=2, check=False)
            self.assertIsNone(first.poll(), "the first run ended before the second was refused: make it longer")
            self.assertNotEqual(second.returncode, 0)
            self.assertEqual(second.stderr.count("ringscan: error:"), 1, second.stderr)
            self.assertIn("another ringscan run is writing", second.stderr)
        finally:
            self.assertEqual(first.wait(), 0)
        self.assertFalse(os.path.exists(out + ".lock"))
        self.assertEqual(self.docs(out)[0]["status"], "ok")

    def test_device_is_recorded_and_cuda_without_a_gpu_fails_clearly(self):
        out = self.path("device.h5")
        p = self.score(out, ["--device", "auto"], inputs=[os.path.join(self.corpus, "small0.txt")])
        with h5py.File(out) as f:
            device = f.attrs["device"]
            device = device.decode() if isinstance(device, bytes) else str(device)
            gemm = f.attrs["gemm_inputs"]
            gemm = gemm.decode() if isinstance(gemm, bytes) else str(gemm)
        if device.startswith("cuda:"):  # a machine with a GPU: the GPU engine ran
            self.assertEqual(gemm, "bf16")
            return
        self.assertEqual(device, "cpu")
        self.assertEqual(gemm, "fp32")
        # No GPU: --device cuda is refused by one error line, on 2 ranks, before any work.
        p = self.score(self.path("device-cuda.h5"), ["--device", "cuda"], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr.count("ringscan: error:"), 1, p.stderr)
        self.assertIn("--device cuda: no usable GPU", p.stderr)
        self.assertFalse(os.path.exists(self.path("device-cuda.h5")))
        # --comm nccl needs the GPU engine: refused the same way.
        p = self.score(self.path("comm-nccl.h5"), ["--comm", "nccl"], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr.count("ringscan: error:"), 1, p.stderr)
        self.assertIn("--comm nccl needs the GPU engine", p.stderr)
        # summarize too: cuda without a GPU is refused, not run on the CPU.
        p = run(["summarize", "--model", self.model, "--out", self.path("sum-cuda.h5"), "--device", "cuda",
                 "--input", os.path.join(self.corpus, "small0.txt")], np_=2, check=False, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr.count("ringscan: error:"), 1, p.stderr)
        self.assertIn("--device cuda: no usable GPU", p.stderr)

    def test_bad_inputs_fail_clearly_on_every_rank(self):
        p = run(["score", "--model", self.path("nope"), "--input", self.corpus, "--out", self.path("x.h5")],
                np_=2, check=False, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr.count("ringscan: error:"), 1, p.stderr)
        self.assertIn("nope", p.stderr)
        p = run(["score", "--model", self.model, "--input", self.path("missing-dir"), "--out", self.path("y.h5")],
                np_=2, check=False, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr.count("ringscan: error:"), 1, p.stderr)
        p = run(["score", "--model", self.model, "--input", self.corpus, "--out", "/proc/forbidden/z.h5"],
                np_=2, check=False, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("ringscan: error:", p.stderr)
        p = run(["score", "--model", self.model, "--bogus-option"], np_=2, check=False, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr.count("ringscan: error:"), 1, p.stderr)
        # An existing output from different options is not overwritten silently.
        out = self.path("guard.h5")
        self.score(out, inputs=[os.path.join(self.corpus, "small0.txt")])
        p = self.score(out, ["--max-tokens", "10"], inputs=[os.path.join(self.corpus, "small0.txt")], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("ringscan: error:", p.stderr)
        self.score(out, ["--max-tokens", "10", "--overwrite"], inputs=[os.path.join(self.corpus, "small0.txt")])


if __name__ == "__main__":
    unittest.main(verbosity=2)
