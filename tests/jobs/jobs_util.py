"""What the end-to-end job tests share: running the real binary (RINGSCAN_BIN) under
mpirun, generated text, reading a result's documents with h5py, and a test case with
its own temporary folder and demo model."""
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

import h5py
import numpy as np

BIN = os.environ.get("RINGSCAN_BIN", "build/ringscan")
# The build's launcher script, which ctest passes (cmake/RingscanMpi.cmake: the flags and
# variables its MPI, Open MPI or MPICH, needs); else the one next to the binary.
MPIRUN = [os.environ.get("RINGSCAN_MPIEXEC") or os.path.join(os.path.dirname(BIN), "mpiexec-tests")]
# A rank's number in a shell it runs: Open MPI's variable, else MPICH's (Hydra's PMI).
SHELL_RANK = "${OMPI_COMM_WORLD_RANK:-$PMI_RANK}"


def run(args, np_=1, check=False, timeout=600, env=None):
    """`mpirun -np np_ ringscan ARGS` (np_ 0: without mpirun); check: a non-zero exit fails."""
    cmd = (MPIRUN + ["-np", str(np_)] if np_ else []) + [BIN] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


CODE_WORDS = ["int", "return", "the", "value", "for", "x", "y", "=", "+", "(", ")", ";", "data", "\n"]


def words(seed, n, vocab=CODE_WORDS):
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(vocab, size=n))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def docs(path):
    """Per document (by file name): status, error, token ids and the log-probs' bytes."""
    with h5py.File(path) as f:
        d = f["documents"]
        out = {}
        for i in range(len(d["path"])):
            off, n = int(d["token_offset"][i]), int(d["n_tokens"][i])
            out[os.path.basename(d["path"].asstr()[i])] = dict(
                status=d["status"].asstr()[i], error=d["error"].asstr()[i],
                ids=f["tokens/ids"][off:off + n].tolist(), lp=f["tokens/logprob"][off:off + n].tobytes())
        return out


def set_tensor(path, name, value):
    """Overwrites every element of one f32 tensor of a safetensors file in place."""
    with open(path, "r+b") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_len))
        t = header[name]
        assert t["dtype"] == "F32", t
        begin, end = t["data_offsets"]
        f.seek(8 + header_len + begin)
        f.write(struct.pack("<f", value) * ((end - begin) // 4))


class DemoModelCase(unittest.TestCase):
    """A temporary folder for the class (removed after it), an environment whose weight
    digest cache lives there (`env`), and the demo model made in it (`model`)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ringscan-" + cls.__name__ + "-")
        cls.env = dict(os.environ, XDG_CACHE_HOME=os.path.join(cls.tmp, "xdg"))
        cls.model = cls.path("demo")
        run(["make-model", "--preset", "demo", "--out", cls.model], np_=0, check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def path(cls, name):
        return os.path.join(cls.tmp, name)
