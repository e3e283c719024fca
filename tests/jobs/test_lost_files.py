"""Never a lost or damaged file (project issue 13, "Lost or damaged files"), end to end.

- Disk full while the final file is written: on 1 and 2 ranks every rank stops within
  seconds with exit 1 and one sentence (no hang, no crash at exit), the parts are left
  as they were, and once there is room the same command writes the file.
- Files of the user's in `<out>.parts/` (with a subfolder too) are never deleted, with or
  without --overwrite; a file at `<out>.tmp` is never overwritten.
- --overwrite never replaces a device node (a copy of /dev/null made by mknod).
- An output inside the input tree is not a document: the rerun is "already complete",
  and --overwrite does not score it.
- A damaged part is named at the start, before anything is computed, with --repair as
  the way out; --repair computes its documents again.

The full disk is a real one where this process may mount a small tmpfs (root with the
right to mount); elsewhere the file-size limit (RLIMIT_FSIZE) makes the writes fail at
the same points (EFBIG instead of ENOSPC). Runs the real binary on the demo model.
"""
import os
import shutil
import signal
import stat
import subprocess
import sys
import unittest

import h5py
from jobs_util import BIN, MPIRUN, SHELL_RANK, DemoModelCase, docs, run, words, write


def run_bounded(args, np_, env, timeout=60, file_limit=None):
    """Runs `mpirun -np N ringscan ARGS`, each rank also printing its exit status; a run
    still going after `timeout` seconds (a hang) is killed with its process group and
    reported as returncode None. file_limit: the largest file (bytes) a rank may write."""
    limit = ""
    if file_limit is not None:
        # Only the ranks: mpirun's own shared memory files are larger. A write past the
        # limit then fails with EFBIG instead of killing the rank (SIGXFSZ ignored).
        limit = f"trap '' XFSZ; ulimit -f {max(1, file_limit // 1024)}; "
        # No shared-memory segment files either: Open MPI without its shared-memory
        # transport; MPICH without its own (NOLOCAL) and UCX's (self and TCP only).
        env = dict(env, OMPI_MCA_btl="self,tcp", MPIR_CVAR_NOLOCAL="1", UCX_TLS="self,tcp")
    cmd = MPIRUN + ["-np", str(np_), "bash", "-c",
                    limit + f'"$0" "$@"; rc=$?; echo "rank {SHELL_RANK} exit $rc"; exit $rc', BIN] + args
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return None, out, err


def listing(folder):
    """Every file and folder under `folder`, files with their bytes."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), folder)] = "<dir>"
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                out[os.path.relpath(os.path.join(root, name), folder)] = f.read()
    return out


def put(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write(path, text)


class SmallDisk:
    """A folder that runs out of room where a test says so: a tmpfs filled up to what is
    left free, or, where mounting is not allowed, a limit on the size of any file the
    ranks write (RLIMIT_FSIZE; `limit`, for run_bounded)."""

    def __init__(self, path):
        os.makedirs(path)
        self.path = path
        self.limit = None
        forced = os.environ.get("RINGSCAN_TEST_NO_MOUNT") == "1"
        p = None if forced else subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", path],
                                               capture_output=True, text=True)
        self.tmpfs = p is not None and p.returncode == 0
        self.how = ("a full tmpfs" if self.tmpfs else
                    "RLIMIT_FSIZE (mounting a tmpfs was not possible: " +
                    (p.stderr.strip() if p else "RINGSCAN_TEST_NO_MOUNT=1") + ")")
        self.no_space = "No space left on device" if self.tmpfs else "File too large"

    def room_for(self, nbytes):
        """From now on about nbytes more fit (in whole 4 KiB pages)."""
        if not self.tmpfs:
            self.limit = nbytes
            return
        self.free_all()
        st = os.statvfs(self.path)
        fill = st.f_bavail * st.f_frsize - nbytes
        with open(os.path.join(self.path, "filler"), "wb") as f:
            while fill > 0:
                n = min(fill, 1 << 20)
                f.write(b"\0" * n)
                fill -= n

    def free_all(self):
        self.limit = None
        if os.path.exists(os.path.join(self.path, "filler")):
            os.remove(os.path.join(self.path, "filler"))

    def close(self):
        if self.tmpfs and subprocess.run(["umount", self.path], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", self.path], check=False)  # still busy: detach it


class LostFiles(DemoModelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.corpus = cls.path("corpus")
        os.makedirs(cls.corpus)
        for i in range(6):  # long enough for several part files and some KiB of rows
            write(os.path.join(cls.corpus, f"f{i}.txt"), words(i, 500 + 50 * i))

    def score(self, out, extra=(), np_=1, inputs=None, env=None):
        args = ["score", "--model", self.model, "--out", out, "--quiet"]
        for i in inputs or [self.corpus]:
            args += ["--input", i]
        return run(args + list(extra), np_=np_, env=env or self.env)

    def assert_error(self, p, *needles):
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertEqual(p.stderr.count("ringscan: error:"), 1, p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)

    def crashed_run(self, out, point, np_=1, inputs=None):
        """A run killed at an io crash point, leaving its parts."""
        p = self.score(out, np_=np_, inputs=inputs, env=dict(self.env, RINGSCAN_IO_TEST_CRASH=point))
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.isdir(out + ".parts"))

    def test_disk_full_while_writing_the_final_file(self):
        for np_ in (1, 2):
            with self.subTest(ranks=np_):
                disk = SmallDisk(self.path(f"small{np_}"))
                try:
                    self.disk_full(disk, np_)
                finally:
                    disk.close()

    def disk_full(self, disk, np_):
        print(f"\n  disk full on {np_} rank(s): {disk.how}", file=sys.stderr)
        ref = self.path(f"full-ref{np_}.h5")
        self.assertEqual(self.score(ref, np_=np_).returncode, 0)
        out = os.path.join(disk.path, "out.h5")
        # Every document computed and the final file written, but killed before its rename.
        self.crashed_run(out, "final_numeric_written", np_)
        tmp = os.path.join(out + ".parts", "result.h5.tmp")
        if not os.path.exists(tmp) and os.path.exists(out + ".tmp"):
            tmp = out + ".tmp"  # where ringscan wrote it before issue 13 (to run this test on that code)
        final_bytes = os.path.getsize(tmp)
        with h5py.File(tmp) as f:  # what the rows take: the rest is the in-memory part
            rows = []
            f.visititems(lambda name, o: rows.append(o.nbytes) if isinstance(o, h5py.Dataset) and
                         o.dtype.kind in "iuf" and name != "skipped/document" else None)
        self.assertGreater(sum(rows), 16384, "too few rows for the room left below to mean anything")
        os.remove(tmp)  # what the next start does with it
        parts = listing(out + ".parts")
        args = ["score", "--model", self.model, "--input", self.corpus, "--out", out, "--quiet"]
        # Too little room for anything, then room for the file without its rows.
        for room, what in ((4096, "cannot write " + tmp), (final_bytes - sum(rows) // 2, "cannot reserve ")):
            disk.room_for(room)
            rc, stdout, stderr = run_bounded(args, np_, self.env, file_limit=disk.limit)
            self.assertIsNotNone(rc, f"{np_} rank(s) hung with {disk.how}; stderr: {stderr}")
            self.assertEqual(rc, 1, stdout + stderr)
            self.assertEqual(sorted(l for l in stdout.splitlines() if l.startswith("rank ")),
                             [f"rank {r} exit 1" for r in range(np_)], stdout + stderr)
            self.assertEqual(stderr.count("ringscan: error:"), 1, stderr)
            self.assertIn(what, stderr)
            self.assertIn(disk.no_space, stderr)
            self.assertIn(f"the results computed so far are kept in {out}.parts: free some space (or remove the "
                          f"cause) and rerun the same command to write {out}", stderr)
            self.assertNotIn("Segmentation fault", stderr)
            self.assertEqual(listing(out + ".parts"), parts, "the parts changed")
            self.assertFalse(os.path.exists(out))
        disk.free_all()
        rc, stdout, stderr = run_bounded(args, np_, self.env)
        self.assertEqual(rc, 0, stdout + stderr)
        self.assertFalse(os.path.exists(out + ".parts"))
        self.assertEqual(docs(out), docs(ref))

    def test_the_users_files_are_never_deleted(self):
        out = self.path("mine.h5")
        parts = out + ".parts"
        put(os.path.join(parts, "notes.txt"), "my notes\n")
        put(os.path.join(parts, "sub", "data.txt"), "more\n")
        write(out + ".tmp", "my draft\n")
        before = listing(parts)
        for extra in ([], ["--overwrite"]):
            p = self.score(out, extra)
            self.assert_error(p, f"{parts} is not a folder of a ringscan run (it holds notes.txt, which ringscan did "
                                 "not write); ringscan deletes only what it wrote")
            self.assertEqual(listing(parts), before)
        shutil.rmtree(parts)
        self.assertEqual(self.score(out).returncode, 0)
        with open(out + ".tmp") as f:
            self.assertEqual(f.read(), "my draft\n")

    def test_overwrite_never_replaces_a_device(self):
        dev = self.path("null")
        try:
            os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError as e:
            self.skipTest(f"mknod is not permitted here ({e}); the store test covers a FIFO")
        for extra in ([], ["--overwrite"]):
            p = self.score(dev, extra)
            self.assert_error(p, f"output {dev} is a character device, not a regular file; expected the path of an "
                                 ".h5 file")
            self.assertNotIn("--overwrite", p.stderr)
            self.assertTrue(stat.S_ISCHR(os.stat(dev).st_mode))
            self.assertFalse(os.path.exists(dev + ".lock"))

    def test_an_output_inside_the_input_tree_is_not_a_document(self):
        selfin = self.path("selfin")
        shutil.copytree(self.corpus, selfin)
        out = os.path.join(selfin, "out.h5")
        self.assertEqual(self.score(out, inputs=[selfin]).returncode, 0)
        n = len(docs(out))
        self.assertEqual(n, 6)
        p = run(["score", "--model", self.model, "--input", selfin, "--out", out], np_=1, env=self.env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("already complete", p.stderr)
        # An unfinished run inside the tree (its parts and lock there) resumes too.
        os.remove(out)
        self.crashed_run(out, "atomic_renamed:2", inputs=[selfin])
        p = run(["score", "--model", self.model, "--input", selfin, "--out", out], np_=1, env=self.env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("resuming", p.stderr)
        p = self.score(out, inputs=[selfin], extra=["--overwrite"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(docs(out)), [f"f{i}.txt" for i in range(6)])

    def test_a_damaged_part_is_named_at_the_start_and_repair_recomputes_it(self):
        ref, out = self.path("dmg-ref.h5"), self.path("dmg.h5")
        self.assertEqual(self.score(ref).returncode, 0)
        self.crashed_run(out, "atomic_renamed:2")  # run.json, then one part
        parts = sorted(n for n in os.listdir(out + ".parts") if n.startswith("part-"))
        self.assertEqual(len(parts), 1, parts)
        part = os.path.join(out + ".parts", parts[0])
        with open(part, "r+b") as f:  # one byte of a record: the header and index stay sound
            f.seek(-5, os.SEEK_END)
            b = f.read(1)
            f.seek(-5, os.SEEK_END)
            f.write(bytes([b[0] ^ 0x55]))
        p = self.score(out, np_=2)
        self.assert_error(p, f"part file {part} is damaged", "rerun with --repair to drop the damaged part file and "
                             f"compute their documents again, or delete {part} yourself")
        # Found at the start: nothing was computed (no new part), the damaged one is kept.
        self.assertEqual(sorted(n for n in os.listdir(out + ".parts") if n.startswith("part-")), parts)
        # Repaired on one rank, as the reference and the crashed run: the same numbers.
        p = run(["score", "--model", self.model, "--input", self.corpus, "--out", out, "--repair"], np_=1, env=self.env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("1 damaged part file dropped (--repair): their documents are computed again", p.stderr)
        self.assertEqual(docs(out), docs(ref))


if __name__ == "__main__":
    unittest.main(verbosity=2)
