"""End-to-end tests of slurm/*.sbatch on a real Slurm (project issue 8).

Starts throw-away Slurm clusters on this machine with slurm/local-cluster.sh (Debian's
slurmctld, slurmd and munge, installed by scripts/setup.sh; needs root), submits the
sbatch scripts with `sbatch`, waits for them, and reads the HDF5 they wrote with h5py
only. Every Slurm-made file is compared, dataset by dataset, with the same run made
by plain `mpirun` outside Slurm, so a wrong rank count, a lost or duplicated document
after a requeue, or a broken PMIx launch shows up as a difference.

- CPU cluster (1 node, 4 slots): cpu.sbatch uninterrupted; requeued mid-run
  (`scontrol requeue`); cancelled mid-run and submitted again (a new job id, as after
  a time limit); array.sbatch over two corpora; ask.sbatch (prefill, then ask) requeued
  mid-ask: the prefill is not run again and the answers equal plain mpirun's.
- Fake-GPU cluster (2 simulated nodes with 2 fake GPUs each; programs see no GPU and
  ringscan runs on CPU): gpu-node.sbatch and multi-node.sbatch, whose sequence-parallel
  group spans both nodes.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(os.environ.get("RINGSCAN_BIN", os.path.join(ROOT, "build", "ringscan")))
SLURM = os.path.join(ROOT, "slurm")
CLUSTER = os.path.join(SLURM, "local-cluster.sh")
JOB_TIMEOUT = 300  # seconds for one job; the machine may be busy with other tests
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE", "PREEMPTED"}
# What Slurm and Open MPI read from the environment: nothing of the caller's (e.g. when
# the tests run inside a Slurm job, or under ctest's OMPI_ALLOW_RUN_AS_ROOT) may reach
# the jobs, so that the scripts are shown to set what they need themselves.
FOREIGN_ENV = ("SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "OMPI_", "PMIX_", "PRTE_")
# Plain runs outside Slurm use the build's launcher script (cmake/RingscanMpi.cmake: the
# flags and variables of its MPI, Open MPI or MPICH), which ctest passes.
MPIEXEC = os.environ.get("RINGSCAN_MPIEXEC") or os.path.join(os.path.dirname(BIN), "mpiexec-tests")
# The PMI plugin the scripts must choose for this build's binary: Open MPI needs pmix,
# MPICH pmi2 (slurm/README.md, SRUN_MPI).
MPI_FLAVOR = os.environ.get("RINGSCAN_MPI_FLAVOR", "Open MPI")
EXPECTED_PMI = "pmi2" if MPI_FLAVOR == "MPICH" else "pmix"
LONG_DOC_ARGS = ["--memory-per-rank", "0.03"]  # the long document exceeds one rank: sequence parallel


def words(seed, n):
    rng = np.random.default_rng(seed)
    vocab = ["int", "return", "the", "value", "for", "while", "x", "y", "=", "+", "(", ")", "{", "}", ";",
             "if", "else", "data", "é", "数据", "\n", "    "]
    return " ".join(rng.choice(vocab, size=n))


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return f"({e})"


def mpirun(np_, args, cwd=None, timeout=600):
    cmd = [MPIEXEC, "-np", str(np_), BIN] + args
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    env["OMP_NUM_THREADS"] = "1"
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    if p.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")


class Fixtures:
    """The demo model, corpora and plain-mpirun reference results, made once."""
    tmp = None

    @classmethod
    def get(cls):
        if cls.tmp:
            return cls
        if not os.access(BIN, os.X_OK):
            raise RuntimeError(f"{BIN}: no ringscan binary; build the ringscan target first (or set RINGSCAN_BIN)")
        cls.tmp = tempfile.mkdtemp(prefix="ringscan-slurm-")
        os.chmod(cls.tmp, 0o755)  # munged wants every folder above its socket searchable
        cls.model = os.path.join(cls.tmp, "model")
        p = subprocess.run([BIN, "make-model", "--preset", "demo", "--out", cls.model], capture_output=True, text=True)
        if p.returncode:
            raise RuntimeError(f"make-model failed: {p.stderr}")
        # Many small documents (data parallel; enough of them that a job is still running
        # when it gets requeued) and one long one (sequence parallel over the ranks).
        cls.corpus = os.path.join(cls.tmp, "corpus")
        for i in range(36):
            write(os.path.join(cls.corpus, f"doc{i:02d}.txt"), words(i, 200 + 15 * i))
        write(os.path.join(cls.corpus, "long.txt"), words(99, 1500))
        cls.n_docs = 37
        # Two small corpora for the job array, named relative to the submission folder.
        cls.array_corpora = {"c0": 3, "c1": 2}
        for c, n in cls.array_corpora.items():
            for i in range(n):
                write(os.path.join(cls.tmp, "corpora", c, f"f{i}.txt"), words(100 + 10 * len(c) + i, 150))
        # Questions for ask.sbatch (enough, answered one at a time, that the job is still
        # asking when it gets requeued).
        cls.questions = os.path.join(cls.tmp, "questions.jsonl")
        write(cls.questions, "".join(json.dumps({"question": f"What does doc{i:02d}.txt return for x = {i}?",
                                                 "id": f"q{i:02d}"}) + "\n" for i in range(30)))
        cls.refs = {}
        return cls

    @classmethod
    def reference(cls, name, np_, args, cwd=None):
        """The result of the same run under plain mpirun, outside Slurm."""
        if name not in cls.refs:
            out = os.path.join(cls.tmp, "ref", name + ".h5")
            os.makedirs(os.path.dirname(out), exist_ok=True)
            mpirun(np_, args + ["--out", out, "--quiet"], cwd=cwd)
            cls.refs[name] = out
        return cls.refs[name]

    @classmethod
    def remove(cls):
        if cls.tmp:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            cls.tmp = None


def setUpModule():
    Fixtures.get()


def tearDownModule():
    Fixtures.remove()


class LocalCluster:
    """A cluster started by slurm/local-cluster.sh in DIR; stopped by stop() or, should
    this process die without cleaning up, by the watcher the script leaves behind."""

    def __init__(self, dir_, nodes, cpus, gpus=0):
        self.dir = dir_
        missing = [t for t in ("sbatch", "scontrol", "squeue", "slurmctld", "slurmd", "munged")
                   if not shutil.which(t)]
        if missing:
            raise RuntimeError(f"Slurm is not installed ({', '.join(missing)} not found): run scripts/setup.sh, "
                               "which installs Debian's slurmctld, slurmd, slurm-client and munge")
        if os.geteuid() != 0:
            raise RuntimeError("the Slurm tests start slurmd, which must run as root; run them as root")
        cmd = [CLUSTER, "start", dir_, "--nodes", str(nodes), "--cpus", str(cpus), "--gpus", str(gpus),
               "--watch", str(os.getpid())]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"{' '.join(cmd)} did not finish within 180 s")
        if p.returncode:
            raise RuntimeError(f"the local Slurm cluster did not start ({' '.join(cmd)}):\n{p.stdout}{p.stderr}")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
        with open(os.path.join(dir_, "env.sh")) as f:  # SLURM_CONF, and Open MPI settings for simulated nodes
            for line in f:
                if line.startswith("export "):
                    for kv in line.split()[1:]:
                        k, v = kv.split("=", 1)
                        self.env[k] = v

    def stop(self):
        p = subprocess.run([CLUSTER, "stop", self.dir], capture_output=True, text=True, timeout=180)
        if p.returncode:
            raise RuntimeError(f"stopping the cluster in {self.dir} failed:\n{p.stderr}")

    def cmd(self, args, check=True, env=None, cwd=None):
        p = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env or self.env, cwd=cwd)
        if check and p.returncode:
            raise AssertionError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        return p.stdout

    def sbatch(self, script, options, variables, cwd):
        """Submits slurm/<script> from folder cwd (the job's working folder, where its
        log goes) with the variables in its environment, as a user's
        `export VAR=...; sbatch ...` would; returns the job id."""
        env = dict(self.env, **variables)
        out = self.cmd(["sbatch", "--parsable"] + options + [os.path.join(SLURM, script)], env=env, cwd=cwd)
        return out.strip().split(";")[0]

    def jobs(self, job_id):
        """scontrol's records of a job (one per array task), as dicts."""
        p = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                           timeout=60, env=self.env)
        if p.returncode:
            return []
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in p.stdout.splitlines() if line.strip()]

    def wait(self, job_id, timeout=JOB_TIMEOUT, logs=()):
        end = time.time() + timeout
        while True:
            recs = self.jobs(job_id)
            if recs and all(r.get("JobState") in FINAL_STATES for r in recs):
                return recs
            if time.time() > end:
                states = [(r.get("JobId"), r.get("JobState"), r.get("Reason")) for r in recs]
                self.cmd(["scancel", job_id], check=False)
                raise AssertionError(f"job {job_id} did not finish within {timeout}s: {states}\n"
                                     + self.diagnostics(logs))
            time.sleep(0.5)

    def diagnostics(self, logs=()):
        parts = [f"--- {p}:\n{tail(p)}" for p in logs]
        log_dir = os.path.join(self.dir, "log")
        for name in sorted(os.listdir(log_dir)):
            parts.append(f"--- {os.path.join(log_dir, name)}:\n{tail(os.path.join(log_dir, name), 15)}")
        return "\n".join(parts)


def same_results(test, a, b):
    """Every dataset of result file a equals b's (NaN equal to NaN)."""
    names = {}
    with h5py.File(a) as fa, h5py.File(b) as fb:
        for f, key in ((fa, "a"), (fb, "b")):
            f.visititems(lambda n, o, key=key: names.setdefault(key, set()).add(n)
                         if isinstance(o, h5py.Dataset) else None)
        test.assertEqual(names["a"], names["b"], f"{a} and {b} hold different datasets")
        for n in sorted(names["a"]):
            x, y = fa[n], fb[n]
            if h5py.check_string_dtype(x.dtype):
                test.assertEqual(list(x.asstr()[...].ravel()), list(y.asstr()[...].ravel()), f"{n}: {a} vs {b}")
            else:
                np.testing.assert_array_equal(x[...], y[...], err_msg=f"{n}: {a} vs {b}")


def attrs(path):
    with h5py.File(path) as f:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


def routes(path):
    with h5py.File(path) as f:
        return {os.path.basename(p): json.loads(e) for p, e in
                zip(f["documents/path"].asstr()[:], f["documents/extra"].asstr()[:])}


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


class CpuCluster(unittest.TestCase):
    """cpu.sbatch and array.sbatch on a one-node, CPU-only cluster with 4 task slots."""

    @classmethod
    def setUpClass(cls):
        cls.fx = Fixtures.get()
        cls.cluster = LocalCluster(os.path.join(cls.fx.tmp, "cluster-cpu"), nodes=1, cpus=4)
        cls.addClassCleanup(cls.cluster.stop)
        cls.work = os.path.join(cls.fx.tmp, "work-cpu")
        os.makedirs(cls.work)
        cls.score_args = ["score", "--model", cls.fx.model, "--input", cls.fx.corpus] + LONG_DOC_ARGS

    # The script as written asks for 4 ranks x 8 threads; this 2-core machine gets 2 x 1.
    OPTIONS = ["--ntasks-per-node=2", "--cpus-per-task=1"]

    def submit_cpu(self, out):
        return self.cluster.sbatch("cpu.sbatch", self.OPTIONS, dict(
            RINGSCAN=BIN, MODEL=self.fx.model, INPUT=self.fx.corpus, OUT=out,
            RINGSCAN_ARGS=" ".join(LONG_DOC_ARGS)), cwd=self.work)

    def log(self, job_id, name="ringscan-cpu"):
        return os.path.join(self.work, f"{name}-{job_id}.log")

    def finished_ok(self, job_id, name="ringscan-cpu"):
        recs = self.cluster.wait(job_id, logs=[self.log(job_id, name)])
        self.assertEqual(len(recs), 1)
        self.assertEqual((recs[0]["JobState"], recs[0]["ExitCode"]), ("COMPLETED", "0:0"),
                         self.cluster.diagnostics([self.log(job_id, name)]))
        return recs[0]

    def wait_for_progress(self, job_id, out, name="ringscan-cpu"):
        """Waits until the running job has stored some documents (part files) but not
        all (no output yet), so stopping it now interrupts it mid-run."""
        parts = out + ".parts"
        end = time.time() + JOB_TIMEOUT
        while time.time() < end:
            if os.path.isdir(parts) and any(n.startswith("part-") and n.endswith(".bin") for n in os.listdir(parts)):
                self.assertFalse(os.path.exists(out), "the job finished before it could be interrupted; "
                                 "the corpus is too small for this machine")
                return
            recs = self.cluster.jobs(job_id)
            if recs and recs[0].get("JobState") in FINAL_STATES:
                self.fail(f"job {job_id} ended ({recs[0]['JobState']}) before storing any document\n"
                          + self.cluster.diagnostics([self.log(job_id, name)]))
            time.sleep(0.1)
        self.fail(f"job {job_id} stored no document within {JOB_TIMEOUT}s\n"
                  + self.cluster.diagnostics([self.log(job_id, name)]))

    def assert_resumed(self, log_text, out):
        m = re.search(r"resuming " + re.escape(out) + r": (\d+) of (\d+) documents already done", log_text)
        self.assertIsNotNone(m, f"the restarted run did not resume from {out}.parts:\n{log_text}")
        done, total = int(m.group(1)), int(m.group(2))
        self.assertEqual(total, self.fx.n_docs)
        self.assertTrue(0 < done < total, f"{done} of {total} documents were done when the job was stopped")

    def test_cpu_job_matches_mpirun_and_records_the_job(self):
        out = os.path.join(self.work, "plain.h5")
        job = self.submit_cpu(out)
        self.finished_ok(job)
        log = read(self.log(job))
        self.assertIn(f"ringscan-cpu: job {job} (restart 0) on node1: 2 ranks x 1 threads", log)
        self.assertIn(f"ringscan-cpu: srun --mpi={EXPECTED_PMI}\n", log)
        a = attrs(out)
        self.assertEqual(a.get("slurm_job_id"), job)
        self.assertEqual(a.get("slurm_nodelist"), "node1")
        self.assertNotIn("slurm_array_task_id", a)
        self.assertEqual(int(a["ranks"]), 2)  # srun's PMI made one MPI world of 2 ranks
        r = routes(out)
        self.assertEqual(r["long.txt"], {"route": "sequence_parallel", "ranks": 2})
        self.assertEqual(r["doc00.txt"]["route"], "data_parallel")
        same_results(self, out, self.fx.reference("np2", 2, self.score_args))

    def test_requeued_job_resumes_and_equals_uninterrupted(self):
        out = os.path.join(self.work, "requeued.h5")
        job = self.submit_cpu(out)
        self.wait_for_progress(job, out)
        self.cluster.cmd(["scontrol", "requeue", job])
        rec = self.finished_ok(job)
        self.assertEqual(rec["Restarts"], "1")
        log = read(self.log(job))  # --open-mode=append: both attempts' lines
        self.assertIn(f"ringscan-cpu: job {job} (restart 1)", log)
        self.assert_resumed(log, out)
        self.assertEqual(attrs(out).get("slurm_job_id"), job)
        self.assertFalse(os.path.exists(out + ".parts"))
        same_results(self, out, self.fx.reference("np2", 2, self.score_args))

    def test_resubmitted_job_resumes_after_being_stopped(self):
        # Like a job killed at its time limit and submitted again: a new job id, same OUT.
        out = os.path.join(self.work, "resubmitted.h5")
        first = self.submit_cpu(out)
        self.wait_for_progress(first, out)
        self.cluster.cmd(["scancel", first])
        recs = self.cluster.wait(first, logs=[self.log(first)])
        self.assertEqual(recs[0]["JobState"], "CANCELLED")
        self.assertFalse(os.path.exists(out))
        second = self.submit_cpu(out)
        self.assertNotEqual(first, second)
        self.finished_ok(second)
        self.assert_resumed(read(self.log(second)), out)
        self.assertEqual(attrs(out).get("slurm_job_id"), second)
        same_results(self, out, self.fx.reference("np2", 2, self.score_args))

    ASK_ARGS = "--max-new-tokens 12 --ignore-eos --batch 1"

    def answers(self, path):
        """ask's rows: question id -> what answers it (not its timing)."""
        with h5py.File(path) as f:
            d = f["documents"]
            rows = {}
            for p, st, e in zip(d["path"].asstr()[:], d["status"].asstr()[:], d["extra"].asstr()[:]):
                e = json.loads(e)
                rows[p] = (st, e["question_ids"], e["generated_ids"], e["text"], e["finish_reason"])
            return rows

    def test_ask_job_prefills_once_and_resumes_its_answers_after_requeue(self):
        state, out = os.path.join(self.work, "ask.state"), os.path.join(self.work, "ask.h5")
        job = self.cluster.sbatch("ask.sbatch", self.OPTIONS, dict(
            RINGSCAN=BIN, MODEL=self.fx.model, INPUT=self.fx.corpus, STATE=state, QUESTIONS=self.fx.questions,
            OUT=out, ASK_ARGS=self.ASK_ARGS), cwd=self.work)
        self.wait_for_progress(job, out, "ringscan-ask")
        self.cluster.cmd(["scontrol", "requeue", job])
        rec = self.finished_ok(job, "ringscan-ask")
        self.assertEqual(rec["Restarts"], "1")
        log = read(self.log(job, "ringscan-ask"))  # both attempts' lines
        self.assertIn(f"ringscan-ask: job {job} (restart 1)", log)
        self.assertIn(f"ringscan-ask: srun --mpi={EXPECTED_PMI}\n", log)
        # The second attempt found its state and asked only what the first had not stored.
        self.assertIn(f"{state} already holds this prefill", log)
        m = re.search(re.escape(f"resuming {out}: ") + r"(\d+) of 30 documents already done", log)
        self.assertIsNotNone(m, log)
        self.assertTrue(0 < int(m.group(1)) < 30, m.group(0))
        a = attrs(out)
        self.assertEqual((a.get("slurm_job_id"), int(a["ranks"]), a["job"]), (job, 2, "ask"))
        # The same pipeline under plain mpirun, uninterrupted.
        ref_state, ref = os.path.join(self.fx.tmp, "ref", "ask.state"), os.path.join(self.fx.tmp, "ref", "ask.h5")
        os.makedirs(os.path.dirname(ref), exist_ok=True)
        mpirun(2, ["prefill", "--model", self.fx.model, "--input", self.fx.corpus, "--mode", "codebase", "--out",
                   ref_state, "--quiet"])
        mpirun(2, ["ask", "--state", ref_state, "--questions", self.fx.questions, "--out", ref, "--quiet"]
               + self.ASK_ARGS.split())
        got, want = self.answers(out), self.answers(ref)
        self.assertEqual(sorted(got), [f"q{i:02d}" for i in range(30)])
        self.assertEqual(got, want)

    def test_array_job_writes_one_output_per_corpus(self):
        work = os.path.join(self.fx.tmp, "corpora")
        write(os.path.join(work, "list.txt"), "# corpora, one per line\nc0\n\n  c1  \n")
        job = self.cluster.sbatch("array.sbatch", ["--array=0-2"] + self.OPTIONS, dict(
            RINGSCAN=BIN, MODEL=self.fx.model, CORPORA="list.txt", OUT_DIR="out"), cwd=work)
        logs = [os.path.join(work, f"ringscan-array-{job}_{i}.log") for i in range(3)]
        recs = {r["ArrayTaskId"]: r for r in self.cluster.wait(job, logs=logs)}
        self.assertEqual(sorted(recs), ["0", "1", "2"])
        for i, corpus in ((0, "c0"), (1, "c1")):
            self.assertEqual(recs[str(i)]["JobState"], "COMPLETED", self.cluster.diagnostics(logs))
            out = os.path.join(work, "out", f"{i:04d}-{corpus}.h5")
            a = attrs(out)
            self.assertEqual(a.get("slurm_array_task_id"), str(i))
            self.assertEqual(a.get("slurm_job_id"), recs[str(i)]["JobId"])  # each task is its own job
            self.assertEqual(int(a["ranks"]), 2)
            with h5py.File(out) as f:
                self.assertEqual(list(f["documents/path"].asstr()[:]),
                                 [f"{corpus}/f{j}.txt" for j in range(self.fx.array_corpora[corpus])])
                self.assertEqual(set(f["documents/status"].asstr()[:]), {"ok"})
            # The same as mpirun from the same folder with the same (relative) input.
            same_results(self, out, self.fx.reference(f"array-{corpus}", 2, [
                "score", "--model", self.fx.model, "--input", corpus], cwd=work))
        # A task beyond the list fails with a sentence saying so.
        self.assertEqual(recs["2"]["JobState"], "FAILED")
        self.assertIn("array task 2 has no corpus: list.txt lists 2 (tasks 0-1)", read(logs[2]))


class FakeGpuCluster(unittest.TestCase):
    """gpu-node.sbatch and multi-node.sbatch on 2 simulated nodes with 2 fake GPUs each
    (Slurm schedules and binds them; ringscan finds no GPU and runs on CPU)."""

    @classmethod
    def setUpClass(cls):
        cls.fx = Fixtures.get()
        cls.cluster = LocalCluster(os.path.join(cls.fx.tmp, "cluster-gpu"), nodes=2, cpus=2, gpus=2)
        cls.addClassCleanup(cls.cluster.stop)
        cls.work = os.path.join(cls.fx.tmp, "work-gpu")
        os.makedirs(cls.work)

    def run_script(self, script, name, options, variables):
        job = self.cluster.sbatch(script, options,
                                  dict(RINGSCAN=BIN, MODEL=self.fx.model, **variables), cwd=self.work)
        log = os.path.join(self.work, f"{name}-{job}.log")
        recs = self.cluster.wait(job, logs=[log])
        return job, recs[0], log

    def rank_lines(self, log, prefix):
        return sorted(re.findall(prefix + r": rank (\d+): node (\S+), local rank (\d+), CUDA_VISIBLE_DEVICES=(\S+)",
                                 read(log)))

    def test_gpu_node_one_rank_per_gpu(self):
        out = os.path.join(self.work, "gpu-node.h5")
        job, rec, log = self.run_script("gpu-node.sbatch", "ringscan-gpu",
                                        ["--gpus-per-node=2", "--ntasks-per-node=2", "--cpus-per-task=1"],
                                        dict(INPUT=self.fx.corpus, OUT=out, RINGSCAN_ARGS=" ".join(LONG_DOC_ARGS)))
        self.assertEqual((rec["JobState"], rec["ExitCode"]), ("COMPLETED", "0:0"), self.cluster.diagnostics([log]))
        # Each rank sees both of its node's GPUs and is told its local rank (its GPU).
        self.assertEqual(self.rank_lines(log, "ringscan-gpu"),
                         [("0", rec["NodeList"], "0", "0,1"), ("1", rec["NodeList"], "1", "0,1")])
        a = attrs(out)
        self.assertEqual(a.get("slurm_job_id"), job)
        self.assertEqual(a.get("device"), "cpu")  # the GPUs are fake: never pretend
        same_results(self, out, self.fx.reference(
            "np2", 2, ["score", "--model", self.fx.model, "--input", self.fx.corpus] + LONG_DOC_ARGS))

    def test_gpu_node_refuses_ranks_not_matching_gpus(self):
        job, rec, log = self.run_script("gpu-node.sbatch", "ringscan-gpu",
                                        ["--gpus-per-node=2", "--ntasks-per-node=1", "--cpus-per-task=1"],
                                        dict(INPUT=self.fx.corpus, OUT=os.path.join(self.work, "never.h5")))
        self.assertEqual(rec["JobState"], "FAILED")
        self.assertIn("1 ranks per node but 2 GPUs per node; expected one rank per GPU", read(log))

    def test_multi_node_sequence_parallel_group_spans_nodes(self):
        out = os.path.join(self.work, "multi-node.h5")
        inputs = [os.path.join(self.fx.corpus, n) for n in ("long.txt", "doc00.txt", "doc01.txt", "doc02.txt")]
        job, rec, log = self.run_script("multi-node.sbatch", "ringscan-multinode",
                                        ["--nodes=2", "--gpus-per-node=2", "--ntasks-per-node=2", "--cpus-per-task=1"],
                                        dict(INPUT=" ".join(inputs), OUT=out, SP="4"))
        self.assertEqual((rec["JobState"], rec["ExitCode"]), ("COMPLETED", "0:0"), self.cluster.diagnostics([log]))
        self.assertEqual(self.rank_lines(log, "ringscan-multinode"),
                         [("0", "node1", "0", "0,1"), ("1", "node1", "1", "0,1"),
                          ("2", "node2", "0", "0,1"), ("3", "node2", "1", "0,1")])
        a = attrs(out)
        self.assertEqual(a.get("slurm_nodelist"), "node[1-2]")
        self.assertEqual(int(a["ranks"]), 4)
        self.assertEqual(routes(out)["long.txt"], {"route": "sequence_parallel", "ranks": 4})
        args = ["score", "--model", self.fx.model, "--sp", "4"]
        for i in inputs:
            args += ["--input", i]
        same_results(self, out, self.fx.reference("np4-sp4", 4, args))


class PmiChoice(unittest.TestCase):
    """Which PMI plugin each script gives srun, without a cluster: the script runs under
    bash with a Slurm-like environment and, first on PATH, an `srun` that lists the
    plugins it is told to and records how it was called, and (where a test needs another
    MPI than this build's) an `ldd` that reports the libraries it is told to."""

    SCRIPTS = {  # script: (its log prefix, the variables it needs besides the common ones)
        "cpu.sbatch": ("ringscan-cpu", {}),
        "gpu-node.sbatch": ("ringscan-gpu", {"SLURM_GPUS_ON_NODE": "2"}),
        "multi-node.sbatch": ("ringscan-multinode", {"SLURM_GPUS_ON_NODE": "2", "SLURM_JOB_NUM_NODES": "1"}),
        "array.sbatch": ("ringscan-array", {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_JOB_ID": "7"}),
        "ask.sbatch": ("ringscan-ask", {"STATE": "s.state", "QUESTIONS": "q.jsonl"}),
    }
    LAUNCHES = {"ask.sbatch": 2}  # prefill, then ask; every other script launches ringscan once

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ringscan-pmi-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.bin = os.path.join(self.tmp, "bin")
        os.makedirs(self.bin)
        self.calls = os.path.join(self.tmp, "srun-calls")
        write(os.path.join(self.bin, "srun"), '#!/bin/sh\n'
              'if [ "$1" = "--mpi=list" ]; then printf "MPI plugin types are...\\n\\tnone\\n%b" "$FAKE_PLUGINS"; exit 0; fi\n'
              'echo "$*" >>"$FAKE_SRUN_CALLS"\n')
        os.chmod(os.path.join(self.bin, "srun"), 0o755)
        write(os.path.join(self.tmp, "corpora.txt"), "c0\n")

    def run_script(self, script, plugins, srun_mpi=None, libs=None):
        prefix, extra = self.SCRIPTS[script]
        if libs is not None:
            write(os.path.join(self.bin, "ldd"), f"#!/bin/sh\necho '{libs}'\n")
            os.chmod(os.path.join(self.bin, "ldd"), 0o755)
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV) and k != "SRUN_MPI"}
        env.update(PATH=self.bin + os.pathsep + env["PATH"], FAKE_PLUGINS=plugins, FAKE_SRUN_CALLS=self.calls,
                   RINGSCAN=BIN, MODEL="/models/m", INPUT="/data/in", CORPORA="corpora.txt", OUT_DIR="out",
                   SLURM_JOB_ID="42", SLURM_JOB_NODELIST="node1", SLURM_NTASKS="2", SLURM_NTASKS_PER_NODE="2",
                   SLURM_CPUS_PER_TASK="1", **extra)
        if srun_mpi:
            env["SRUN_MPI"] = srun_mpi
        if os.path.exists(self.calls):
            os.remove(self.calls)
        p = subprocess.run(["bash", os.path.join(SLURM, script)], capture_output=True, text=True, env=env,
                           cwd=self.tmp, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        launches = [l for l in read(self.calls).splitlines() if BIN in l]
        self.assertEqual(len(launches), self.LAUNCHES.get(script, 1), read(self.calls))
        chosen = [re.findall(r"--mpi=(\S+)", l) for l in launches]
        self.assertTrue(all(c == chosen[0] for c in chosen), launches)  # every launch with the same plugin
        self.assertIn(f"{prefix}: srun --mpi={chosen[0][0] if chosen[0] else '?'}\n", p.stdout)
        return chosen[0]

    def test_every_script_chooses_the_plugin_of_this_builds_mpi(self):
        for script in self.SCRIPTS:
            with self.subTest(script=script):
                self.assertEqual(self.run_script(script, "\tpmi2\n\tpmix\n"), [EXPECTED_PMI])

    def test_pmi2_where_slurm_has_no_pmix(self):
        for script in self.SCRIPTS:
            with self.subTest(script=script):
                self.assertEqual(self.run_script(script, "\tpmi2\n"), ["pmi2"])

    def test_pmi2_for_an_mpich_binary_pmix_for_open_mpi(self):
        mpich = "libmpich.so.12 => /usr/lib/x86_64-linux-gnu/libmpich.so.12 (0x1)"
        intel = "libmpi.so.12 => /opt/intel/mpi/lib/release/libmpi.so.12 (0x1)"
        ompi = "libmpi.so.40 => /usr/lib/x86_64-linux-gnu/libmpi.so.40 (0x1)"
        for script in self.SCRIPTS:
            with self.subTest(script=script):
                self.assertEqual(self.run_script(script, "\tpmi2\n\tpmix\n", libs=mpich), ["pmi2"])
                self.assertEqual(self.run_script(script, "\tpmi2\n\tpmix\n", libs=intel), ["pmi2"])
                self.assertEqual(self.run_script(script, "\tpmi2\n\tpmix\n", libs=ompi), ["pmix"])

    def test_srun_mpi_forces_the_plugin(self):
        for script in self.SCRIPTS:
            with self.subTest(script=script):
                self.assertEqual(self.run_script(script, "\tpmi2\n\tpmix\n", srun_mpi="cray_shasta"), ["cray_shasta"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
