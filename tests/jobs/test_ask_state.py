"""Issue 18: `prefill` saves a sequence-parallel prefill's state, `ask` answers questions
against it with prefix-shared batched decoding. The greedy answer equals, token for
token, one `forward --generate` over prefix + question ids (P = 1..4, both layouts); a
state saved on 4 ranks answers the same on 2 and 1; damaged or mismatched states fail
with one sentence; the engine is chosen (--device, --comm, --gemm-inputs) and recorded;
ask and summarize --state resume after a kill. The GPU engine's answers against the
CPU's: tools/cuda_emu/jobs_check.py and tests/model_cuda/test_device_prefix_decode.cpp."""
import hashlib
import json
import os
import shutil
import unittest

import h5py
import numpy as np

from jobs_util import DemoModelCase, run, words, write

NEW = 6  # tokens per answer (--ignore-eos: every answer has them all)
QUESTIONS = ["What does the first file compute?", "Where is data returned?", "x", "Which value is the largest one?"]


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


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
        with h5py.File(out) as f:  # one /documents row per question, named by its id
            d = f["documents"]
            rows = []
            for i in range(len(d["path"])):
                e = json.loads(d["extra"].asstr()[i])
                rows.append(dict(id=d["path"].asstr()[i], question=e["question"], question_ids=e["question_ids"],
                                 answer=e["generated_ids"], text=e["text"], status=d["status"].asstr()[i]))
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
                self.assertIn("K/V float32 (memory-mapped)", log)  # pieces of several shard files, no copy
                self.assertEqual({r["id"]: r["answer"] for r in rows}, want)
                self.assertEqual(attrs["ranks"], np_)

    def summaries(self, path):
        """summarize's rows: path -> its /documents/extra (the generation)."""
        with h5py.File(path) as f:
            d = f["documents"]
            return {d["path"].asstr()[i]: dict(json.loads(d["extra"].asstr()[i]), status=d["status"].asstr()[i])
                    for i in range(len(d["path"]))}

    def test_summarize_state_equals_forward_generate_per_file(self):
        """summarize --state: each file's prompt forks the state; its greedy summary equals
        forward --generate over prefix + the prompt's ids, for P = 1 and 2."""
        template = "Summarize {file} briefly."
        want = {}
        for np_ in (1, 2):
            with self.subTest(np=np_):
                state = self.prefill(np_, "zigzag", f"s-sum-{np_}")
                with open(os.path.join(state, "manifest.json")) as f:
                    files = [e["path"] for e in json.load(f)["about"]["files"]]
                self.assertEqual(files, ["src/f0.c", "src/f1.c", "src/f2.c"])
                out = self.path(f"sum-{np_}.h5")
                p = run(["summarize", "--state", state, "--out", out, "--prompt-template", template,
                         "--max-new-tokens", str(NEW), "--ignore-eos", "--threads", "1", "--batch", "2"],
                        np_=np_, check=True, env=self.env)
                self.assertIn("prefill tokens avoided", p.stderr)
                rows = self.summaries(out)
                self.assertEqual(list(rows), files)
                if not want:  # forward --generate over prefix + the prompt's own ids (the state's template)
                    prefix = self.prefix_ids(state)
                    want = {f: self.forward_generate(prefix + rows[f]["question_ids"]) for f in files[:2]}
                for f in files[:2]:
                    self.assertEqual(rows[f]["status"], "ok")
                    self.assertEqual(rows[f]["generated_ids"], want[f], (np_, f))
                    self.assertEqual(rows[f]["prompt"], template.replace("{file}", f))
                    self.assertEqual(rows[f]["finish_reason"], "length")
                # A rerun of the same command finds the file complete; --input with --state is refused.
                p = run(["summarize", "--state", state, "--out", out, "--prompt-template", template,
                         "--max-new-tokens", str(NEW), "--ignore-eos", "--threads", "1", "--batch", "2"],
                        np_=np_, check=True, env=self.env)
                self.assertIn("already complete", p.stderr)
        p = run(["summarize", "--state", state, "--input", self.repo, "--out", self.path("no.h5")], np_=1,
                env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--input does not apply with --state", p.stderr)
        p = run(["summarize", "--state", state, "--out", self.path("no.h5"), "--prompt-template", "Summarize."],
                np_=1, env=self.env)
        self.assertIn("has no \"{file}\"", p.stderr)
        p = run(["summarize", "--model", self.model, "--input", self.repo, "--out", self.path("no.h5"),
                 "--prompt-template", "About {file}"], np_=1, env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--prompt-template applies with --state only", p.stderr)

    def test_killed_mid_decode_keeps_what_finished(self):
        """ask and summarize --state store each answer when its question finishes: a run killed
        after its first part file (the io crash point) keeps that answer, the rerun decodes only
        the other questions, and the final file equals an uninterrupted run's."""
        state = self.prefill(1, "zigzag", "s-kill")
        common = ["--max-new-tokens", str(NEW), "--ignore-eos", "--threads", "1", "--batch", "1"]
        for job, cmd, n, noun in (
                ("ask", ["ask", "--state", state, "--questions", self.questions], len(QUESTIONS), "question(s)"),
                ("summarize", ["summarize", "--state", state, "--prompt-template", "Summarize {file} briefly."], 3,
                 "file(s)")):
            with self.subTest(job=job):
                ref = self.path(f"kill-ref-{job}.h5")
                run(cmd + common + ["--out", ref], np_=1, check=True, env=self.env)
                out = self.path(f"kill-{job}.h5")
                # Batch 1: one question finishes per step; after the parts folder's run.json,
                # the second atomic rename is the first answer's part file.
                p = run(cmd + common + ["--out", out], np_=1,
                        env=dict(self.env, RINGSCAN_IO_TEST_CRASH="atomic_renamed:2"))
                self.assertNotEqual(p.returncode, 0)
                self.assertFalse(os.path.exists(out))
                p = run(cmd + common + ["--out", out, "--progress-interval", "0.001"], np_=1, check=True,
                        env=self.env)
                self.assertIn(f"resuming {out}: 1 of {n}", p.stderr)
                self.assertIn(f"{n - 1} {noun} against the state", p.stderr)
                # Progress lines (not a terminal: one per interval), the last one complete.
                self.assertRegex(p.stderr, rf"ringscan {job}: 1/{n - 1} documents, \d+/\d+ tokens")
                self.assertRegex(p.stderr, rf"ringscan {job}: {n - 1}/{n - 1} documents, (\d+)/\1 tokens \(100%\).* took")
                got, want = self.summaries(out), self.summaries(ref)
                self.assertEqual(list(got), list(want))
                for q in want:
                    self.assertEqual(got[q]["generated_ids"], want[q]["generated_ids"], q)
                    self.assertEqual(got[q]["status"], "ok")
                # The same command again: complete, nothing asked; other options: refused, not replaced.
                p = run(cmd + common + ["--out", out], np_=1, check=True, env=self.env)
                self.assertIn("already complete", p.stderr)
                self.assertNotIn("loaded in", p.stderr)  # no shard read for a complete file
                p = run(cmd + ["--max-new-tokens", "2", "--threads", "1", "--out", out], np_=1, env=self.env)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("--overwrite", p.stderr)
                self.assertEqual(self.summaries(out), got)

    def test_engine_is_chosen_recorded_and_cuda_without_a_gpu_fails_clearly(self):
        """ask and summarize --state pick the engine like the batch jobs (--device, --comm,
        --gemm-inputs): the answers file and the summaries record the device that ran."""
        state = self.prefill(2, "zigzag", "s-engine")
        rows, attrs, log = self.ask(2, state, "engine-cpu.h5", extra=("--device", "cpu"))
        self.assertEqual((attrs["device"], attrs["gemm_inputs"], attrs["comm"]), ("cpu", "fp32", "mpi"))
        self.assertIn("s on cpu (cpu ", log)
        _, auto, _ = self.ask(2, state, "engine-auto.h5")
        if str(auto["device"]).startswith("cuda:"):  # a machine with a GPU: auto took it, fp32 gives the CPU's answers
            got, a, _ = self.ask(2, state, "engine-cuda.h5", extra=("--device", "cuda", "--gemm-inputs", "fp32"))
            self.assertEqual(a["gemm_inputs"], "fp32")
            self.assertEqual([r["answer"] for r in got], [r["answer"] for r in rows])
        else:  # no GPU: --device cuda is refused by one sentence on every rank, before any answer
            self.assertEqual(auto["device"], "cpu")
            for job in (["ask", "--questions", self.questions], ["summarize"]):
                out = self.path("engine-no-gpu.h5")
                p = run(job + ["--state", state, "--out", out, "--device", "cuda"], np_=2, env=self.env)
                self.assertNotEqual(p.returncode, 0, job)
                self.assertIn("--device cuda: no usable GPU", p.stderr)
                self.assertNotIn("runs on the CPU engine only", p.stderr)
                self.assertFalse(os.path.exists(out))
        p = run(["ask", "--state", state, "--questions", self.questions, "--out", self.path("engine-gemm.h5"),
                 "--gemm-inputs", "fp16"], np_=2, env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('--gemm-inputs must be bf16 or fp32, got "fp16"', p.stderr)
        # summarize --state records its engine too; --gemm-inputs belongs to --state.
        out = self.path("engine-sum.h5")
        p = run(["summarize", "--state", state, "--out", out, "--max-new-tokens", "2", "--threads", "1",
                 "--device", "cpu", "--gemm-inputs", "fp32"], np_=2, check=True, env=self.env)
        self.assertIn("s on cpu (", p.stderr)
        with h5py.File(out) as f:
            self.assertEqual((f.attrs["device"], f.attrs["gemm_inputs"], f.attrs["comm"]), ("cpu", "fp32", "mpi"))
        p = run(["summarize", "--model", self.model, "--input", self.repo, "--out", self.path("no-state.h5"),
                 "--gemm-inputs", "fp32"], np_=1, env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--gemm-inputs applies with --state only", p.stderr)

    def test_inspect_shows_each_question_and_its_answer(self):
        state = self.prefill(1, "zigzag", "s-inspect")
        rows, _, _ = self.ask(1, state, "inspect.h5")
        out = self.path("inspect.h5")
        lines = [json.loads(l) for l in run(["inspect", out, "--format", "jsonl"], np_=0, check=True).stdout.splitlines()]
        self.assertEqual([(l["path"], l["question"], l["summary"]) for l in lines],
                         [(r["id"], r["question"], r["text"]) for r in rows])
        table = run(["inspect", out], np_=0, check=True).stdout
        self.assertIn(f"  question: {QUESTIONS[0]}\n  answer: ", table)

    def test_bf16_state_half_the_kv_bytes_and_its_answers(self):
        """--kv-dtype bf16: the K/V shards take half the bytes (manifest, info); ask uses them in
        place (memory-mapped, widened by the attention kernel), as saved and re-sharded, and
        answers exactly as the same rows widened to fp32 do (the state converted to a float32
        one). On this fixture the greedy answers also equal the fp32 state's (bf16 K/V move
        the attention's inputs by <= 2^-9 relative, far below the demo model's logit margins
        here)."""
        fp32 = self.prefill(2, "zigzag", "s-f32")
        out = self.path("s-bf16")
        run(["prefill", "--model", self.model, "--input", self.repo, "--out", out, "--kv-dtype", "bf16",
             "--threads", "1", "--overwrite"], np_=2, check=True, env=self.env)
        with open(os.path.join(out, "manifest.json")) as f:
            m16 = json.load(f)
        with open(os.path.join(fp32, "manifest.json")) as f:
            m32 = json.load(f)
        self.assertEqual((m16["kv_dtype"], m32["kv_dtype"], m16["format_version"]), ("bfloat16", "float32", 2))
        for a, b in zip(m16["kv_shards"], m32["kv_shards"]):
            self.assertEqual(2 * a["bytes"], b["bytes"])
            self.assertEqual(os.path.getsize(os.path.join(out, a["file"])), a["bytes"])
        info = run(["info", "--state", out], np_=0, check=True).stdout
        self.assertIn("bfloat16 in the file; ask maps them read-only", info)
        self.assertNotIn("as float32", info)  # no widened copy any more
        # The file's K rows are the fp32 state's rounded to bf16 (nearest even).
        k32 = np.fromfile(os.path.join(fp32, "kv-rank-0000.bin"), dtype="<f4")
        k16 = np.fromfile(os.path.join(out, "kv-rank-0000.bin"), dtype="<u2")
        b = k32.view("<u4").astype(np.uint64)
        rounded = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype("<u2")
        self.assertTrue(np.array_equal(k16, rounded))
        want, _, log32 = self.ask(2, fp32, "a-f32.h5")
        self.assertIn("K/V float32 (memory-mapped)", log32)
        # The bf16 rows widened to fp32 (exact) as a float32 state: what loading used to
        # hold in memory. Widening inside the kernel gives the same bits, so the same answers.
        widened = self.path("s-bf16-widened")
        shutil.copytree(out, widened, dirs_exist_ok=True)
        mw = json.loads(json.dumps(m16))
        mw["kv_dtype"] = "float32"
        for e in mw["kv_shards"]:
            f32 = (np.fromfile(os.path.join(out, e["file"]), dtype="<u2").astype("<u4") << 16).view("<f4")
            f32.tofile(os.path.join(widened, e["file"]))
            e["bytes"], e["sha256"] = f32.nbytes, hashlib.sha256(f32.tobytes()).hexdigest()
        write(os.path.join(widened, "manifest.json"), json.dumps(mw))
        for np_ in (2, 1):
            with self.subTest(np=np_):
                rows, _, log = self.ask(np_, out, f"a-bf16-{np_}.h5")
                self.assertIn("K/V bfloat16 (memory-mapped)", log)
                self.assertEqual({r["id"]: r["answer"] for r in rows}, {r["id"]: r["answer"] for r in want})
                wide, _, log = self.ask(np_, widened, f"a-bf16-widened-{np_}.h5")
                self.assertIn("K/V float32 (memory-mapped)", log)
                self.assertEqual([(r["answer"], r["text"]) for r in rows], [(r["answer"], r["text"]) for r in wide])
        _, _, log = self.ask(1, fp32, "a-f32-on-1.h5")  # re-sharded: in place too
        self.assertIn("saved on 2 rank(s), re-sharded onto 1 rank(s), K/V float32 (memory-mapped)", log)
        # A format-1 state (no kv_dtype: fp32) still loads; an unknown kv_dtype is named.
        v1 = self.path("s-v1")
        shutil.copytree(fp32, v1)
        del m32["kv_dtype"]
        m32["format_version"] = 1
        write(os.path.join(v1, "manifest.json"), json.dumps(m32))
        rows, _, _ = self.ask(2, v1, "a-v1.h5")
        self.assertEqual({r["id"]: r["answer"] for r in rows}, {r["id"]: r["answer"] for r in want})
        m32["kv_dtype"] = "float16"
        write(os.path.join(v1, "manifest.json"), json.dumps(m32))
        p = run(["ask", "--state", v1, "--questions", self.questions, "--out", self.path("v1-bad.h5")], np_=1,
                env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('kv_dtype "float16" is neither "float32" nor "bfloat16"', p.stderr)

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
        # The same prefill again (here on 1 rank: ranks do not count) finds its state and does
        # nothing, leaving it as it was; another prefill (other K/V dtype, other inputs) is
        # refused before it runs, without --overwrite.
        manifest = os.path.join(state, "manifest.json")
        before = (os.stat(manifest).st_mtime_ns, read_bytes(manifest))
        p = run(["prefill", "--model", self.model, "--input", self.repo, "--out", state], np_=1, check=True,
                env=self.env)
        self.assertIn(f"{state} already holds this prefill", p.stderr)
        self.assertEqual((os.stat(manifest).st_mtime_ns, read_bytes(manifest)), before)
        p = run(["prefill", "--model", self.model, "--input", self.repo, "--out", state, "--kv-dtype", "bf16"],
                np_=2, env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f"{state} already holds another prefill (its kv_dtype is \"fp32\", not \"bf16\"): give "
                      "--overwrite to replace it", p.stderr)
        p = run(["prefill", "--model", self.model, "--input", os.path.join(self.repo, "src"), "--mode", "codebase",
                 "--out", state], np_=1, env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("already holds another prefill (its prefix ids differ", p.stderr)
        self.assertEqual((os.stat(manifest).st_mtime_ns, read_bytes(manifest)), before)
        # A --gemm-inputs the GPU engine does not have: one sentence on every rank, nothing written.
        p = run(["prefill", "--model", self.model, "--input", self.repo, "--out", self.path("s-gemm"),
                 "--gemm-inputs", "fp16"], np_=2, env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('--gemm-inputs must be bf16 or fp32, got "fp16"', p.stderr)
        self.assertFalse(os.path.exists(self.path("s-gemm")))
        # A question file with a line that is not a question, and inputs that are not one document.
        qbad = self.path("bad.jsonl")
        write(qbad, '{"question": "a"}\nnot json\n')
        p = run(["ask", "--state", state, "--questions", qbad, "--out", self.path("w.h5")], np_=2, env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("bad.jsonl line 2 is not a JSON object", p.stderr)
        write(qbad, '{"question": "a", "id": "x"}\n\n{"question": "b", "id": "x"}\n')
        p = run(["ask", "--state", state, "--questions", qbad, "--out", self.path("w.h5")], np_=2, env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('bad.jsonl line 3 repeats the id "x" of line 1', p.stderr)
        p = run(["prefill", "--model", self.model, "--input", os.path.join(self.repo, "src"), "--mode", "file",
                 "--out", self.path("two.state")], np_=1, env=self.env)
        self.assertIn("prefill saves the state of one document, but the inputs make 3", p.stderr)
        os.remove(os.path.join(bad, "manifest.json"))
        p = run(["ask", "--state", bad, "--questions", self.questions, "--out", self.path("z.h5")], np_=1)
        self.assertIn("has no manifest.json", p.stderr)


if __name__ == "__main__":
    unittest.main()
