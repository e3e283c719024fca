"""Hostile or mistaken inputs to the batch jobs fail with one clear sentence (issue 13).

Each case once did something else: scanned the current folder (--input ""), read
/dev/zero without end, blamed the chat template for a missing tokenizer_config.json,
or printed a garbled sentence. Runs the real binary on one rank.
"""
import os
import shutil
import unittest

from jobs_util import DemoModelCase, run


class HostileInputs(DemoModelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.doc = os.path.join(cls.tmp, "doc.txt")
        with open(cls.doc, "w") as f:
            f.write("int main() { return 0; }\n")

    def fails_with(self, args, sentence, cwd=None):
        p = run(args, np_=0, check=False, timeout=120)
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stderr.count("ringscan: error:"), 1, p.stderr)
        self.assertIn(sentence, p.stderr)
        return p

    def score(self, *extra, out="x.h5"):
        return ["score", "--model", self.model, "--out", os.path.join(self.tmp, out), "--quiet", *extra]

    def test_empty_input_is_not_the_current_folder(self):
        self.fails_with(self.score("--input", ""), 'input "" names no path; expected a file, a directory or @LIST')

    def test_device_as_list_file_is_refused(self):
        self.fails_with(self.score("--input", "@/dev/zero"),
                        "input list: /dev/zero is a device or socket; expected a regular file")

    def test_existing_non_result_output_is_named_in_a_readable_sentence(self):
        out = os.path.join(self.tmp, "not-a-result.h5")
        with open(out, "w") as f:
            f.write("my notes\n")
        self.fails_with(self.score("--input", self.doc, out="not-a-result.h5"),
                        f"output {out} exists and is not a ringscan result file; ringscan replaces only its own "
                        f"results, also with --overwrite: move it away or choose another output path")

    def test_missing_tokenizer_config_is_named_not_the_chat_template(self):
        model = os.path.join(self.tmp, "no-config-model")
        shutil.copytree(self.model, model)
        os.remove(os.path.join(model, "tokenizer_config.json"))
        self.fails_with(["summarize", "--model", model, "--input", self.doc, "--out", os.path.join(self.tmp, "s.h5"),
                         "--quiet"],
                        f"{model}/tokenizer_config.json is missing, and the prompt comes from its chat template; "
                        "add it, or give --prompt-file with --no-chat-template")

    def test_model_folder_that_is_a_file(self):
        config = os.path.join(self.model, "config.json")
        self.fails_with(["score", "--model", config, "--input", self.doc, "--out", os.path.join(self.tmp, "y.h5")],
                        f"model folder {config} is a file, not a folder")


if __name__ == "__main__":
    unittest.main(verbosity=2)
