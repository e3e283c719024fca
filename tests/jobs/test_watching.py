"""Watching a long run (issue 16): progress inside one document (prefill and
generation, one rank and sequence-parallel), summarize's total counting the tokens
it generates, one large document spread over every rank by default, and an idle
rank's wait reported as waiting, not as writing. Runs the real binary."""
import json
import os
import re
import unittest

import h5py

from jobs_util import DemoModelCase, run, words, write

LINE = re.compile(r"ringscan \w+: (\d+)/(\d+) documents, (\d+)/(\d+) tokens")
TIMING = re.compile(r"compute ([0-9.]+)s \(communication [0-9.]+s\), waiting for other ranks ([0-9.]+)s, "
                    r"write ([0-9.]+)s")


def progress_lines(stderr):
    return [tuple(int(x) for x in m.groups()) for m in LINE.finditer(stderr)]


class Watching(DemoModelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.large = cls.path("large.txt")  # ~1450 tokens: a few seconds on the demo model
        write(cls.large, words(1, 1200))
        cls.medium = cls.path("medium.txt")  # ~980 tokens: below what sequence parallelism pays for on 2 ranks
        write(cls.medium, words(2, 800))
        cls.small = [cls.path(f"small{i}.txt") for i in range(4)]
        for i, p in enumerate(cls.small):
            write(p, words(10 + i, 60))

    def job(self, name, out, inputs, extra=(), np_=1):
        args = [name, "--model", self.model, "--out", self.path(out), "--progress-interval", "0.02"]
        for i in inputs:
            args += ["--input", i]
        return run(args + list(extra), np_=np_, check=True, env=self.env)

    def assert_progress_inside_the_document(self, stderr):
        lines = progress_lines(stderr)
        self.assertTrue(lines, stderr)
        total = lines[-1][3]
        inside = [t for d, _, t, _ in lines if d == 0 and 0 < t < total]
        self.assertGreaterEqual(len(inside), 2, stderr)  # several steps before the document ends
        self.assertEqual(inside, sorted(inside), stderr)

    def test_progress_inside_one_document_on_one_rank_and_sequence_parallel(self):
        for np_ in (1, 2):
            p = self.job("score", f"one-{np_}.h5", [self.large], np_=np_)
            self.assert_progress_inside_the_document(p.stderr)
            with h5py.File(self.path(f"one-{np_}.h5")) as f:
                extra = json.loads(f["documents/extra"].asstr()[0])
            # One large document on P ranks uses all P, without --sp.
            self.assertEqual((extra["route"], extra["ranks"]),
                             ("data_parallel", 1) if np_ == 1 else ("sequence_parallel", 2))

    def test_short_documents_stay_data_parallel(self):
        self.job("score", "small.h5", self.small, ["--quiet"], np_=2)
        with h5py.File(self.path("small.h5")) as f:
            routes = {json.loads(e)["route"] for e in f["documents/extra"].asstr()[:]}
        self.assertEqual(routes, {"data_parallel"})

    def test_summarize_counts_generation(self):
        new = 60
        p = self.job("summarize", "sum.h5", self.small[:2], ["--max-new-tokens", str(new), "--ignore-eos",
                                                             "--batch", "1"])
        with h5py.File(self.path("sum.h5")) as f:
            extra = [json.loads(e) for e in f["documents/extra"].asstr()[:]]
        prompts = sum(e["prompt_tokens"] for e in extra)
        lines = progress_lines(p.stderr)
        # Every line's total holds the generation budget, from the first line on.
        self.assertEqual({t for _, _, _, t in lines}, {prompts + 2 * new}, p.stderr)
        # Progress moves while the first document generates (its prompt alone is far less).
        during = [t for d, _, t, _ in lines if d == 0 and extra[0]["prompt_tokens"] + 1 < t < prompts + 2 * new]
        self.assertTrue(during, p.stderr)

    def test_summarize_total_shrinks_when_documents_stop_early(self):
        p = self.job("summarize", "stop.h5", self.small[:2], ["--max-new-tokens", "400"])
        with h5py.File(self.path("stop.h5")) as f:
            extra = [json.loads(e) for e in f["documents/extra"].asstr()[:]]
        final = progress_lines(p.stderr)[-1]
        self.assertEqual(final[2], final[3], p.stderr)  # 100% at the end
        self.assertEqual(final[3], sum(e["prompt_tokens"] + e["n_generated"] for e in extra), p.stderr)

    def test_an_idle_ranks_wait_is_waiting_not_writing(self):
        # One document kept on one rank (--sp 1): the other rank has nothing to do. Long enough
        # (~5000 tokens) that the compute it waits for dwarfs the write, even on a loaded machine.
        long_doc = self.path("long.txt")
        write(long_doc, words(3, 4000))
        p = self.job("score", "idle.h5", [long_doc], ["--sp", "1"], np_=2)
        with h5py.File(self.path("idle.h5")) as f:
            self.assertEqual(json.loads(f["documents/extra"].asstr()[0])["route"], "data_parallel")
        m = TIMING.search(p.stderr)
        self.assertIsNotNone(m, p.stderr)
        compute, waiting, write_s = (float(x) for x in m.groups())
        self.assertGreater(compute, 0.2, p.stderr)
        self.assertGreater(waiting, 0.5 * compute, p.stderr)
        self.assertLess(write_s, 0.5 * compute, p.stderr)


if __name__ == "__main__":
    unittest.main()
