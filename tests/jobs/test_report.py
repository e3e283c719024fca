"""End-to-end tests of `ringscan report` (issue 16): the page is rendered by headless
Chromium (--dump-dom gives the DOM after its scripts ran; --enable-logging=stderr gives
every console message), and what it shows is compared with the HDF5 file read by h5py.
The result files come from tools/report/make_result.py (the schema of issue 16, written
without a model) and from a real `ringscan score` run of the demo model.
"""
import html.parser
import os
import shutil
import subprocess
import sys
import unittest

import h5py
import numpy as np

import jobs_util
from jobs_util import DemoModelCase, run

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_RESULT = os.path.join(HERE, "..", "..", "tools", "report", "make_result.py")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find(self, pred):
        return [n for n in self.iter() if pred(n)]

    def by_id(self, id_):
        found = self.find(lambda n: n.attrs.get("id") == id_)
        return found[0] if found else None

    def classes(self):
        return (self.attrs.get("class") or "").split()


class TreeBuilder(html.parser.HTMLParser):
    VOID = {"meta", "br", "input", "img", "link", "hr", "option"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("#root", [], None)

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in self.VOID:
            self.cur = n

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def render(page, fragment=""):
    """(DOM tree, console messages) of the page opened at #fragment in headless Chromium."""
    profile = page + ".profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--enable-logging=stderr",
           "--v=0", "--user-data-dir=" + profile, "--dump-dom", "file://" + os.path.abspath(page) + fragment]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    shutil.rmtree(profile, ignore_errors=True)
    if p.returncode != 0 or "</html>" not in p.stdout:
        raise AssertionError(f"chromium failed ({p.returncode}): {p.stderr[-2000:]}")
    b = TreeBuilder()
    b.feed(p.stdout)
    return b.root, [line for line in p.stderr.splitlines() if ":CONSOLE" in line]


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def listed_paths(dom):
    return [n.find(lambda x: x.tag == "a")[0].text() for n in dom.find(lambda n: "data-entry" in n.attrs)]


def hidden(node):
    return "hidden" in node.attrs


def heat_lines(dom):
    """Per line of the file view: (line number, [(text, title), ...])."""
    out = []
    for line in dom.find(lambda n: n.tag == "span" and "l" in n.classes()):
        spans = [c for c in line.children if isinstance(c, Node)]
        out.append((int(spans[0].text()), [(s.text(), s.attrs.get("title", "")) for s in spans[1:]]))
    return out


def char_bytes(text, at):
    """The length of the UTF-8 character that byte `at` of text lies in."""
    while text[at] & 0xC0 == 0x80:
        at -= 1
    return 4 if text[at] >= 0xF0 else 3 if text[at] >= 0xE0 else 2 if text[at] >= 0xC0 else 1


def expected_heat(f, entry_file):
    """What the heat map of /files row `entry_file` must show, computed from the HDF5 file
    independently of ringscan: the tokens inside the file's content, a token that ends
    inside a character merged with the next ones (log-probs added), split at newlines."""
    doc = int(f["files/document"][entry_file])
    base = int(f["documents/text_offset"][doc])
    tb, te = int(f["files/text_begin"][entry_file]), int(f["files/text_end"][entry_file])
    text = f["text/utf8"][base + tb:base + te].tobytes()
    off, n = int(f["documents/token_offset"][doc]), int(f["documents/n_tokens"][doc])
    begin, end = f["tokens/text_begin"][off:off + n], f["tokens/text_end"][off:off + n]
    lp = f["tokens/logprob"][off:off + n].astype(np.float64)
    pieces, acc, acc_lp = [], b"", 0.0
    for k in range(n):
        if begin[k] >= end[k] or begin[k] < tb or end[k] > te:
            continue
        acc += text[begin[k] - tb:end[k] - tb]
        acc_lp += lp[k]
        try:
            pieces.append((acc.decode(), acc_lp))
            acc, acc_lp = b"", 0.0
        except UnicodeDecodeError:
            continue  # part of a character: wait for the rest
    lines, cur = [], []
    lines.append(cur)
    for s, v in pieces:
        for j, part in enumerate(s.split("\n")):
            if j:
                cur = []
                lines.append(cur)
            if part:
                cur.append((part, v))
    if len(lines) > 1 and not lines[-1]:
        lines.pop()
    return text.decode(), lines


class Report(DemoModelCase):
    @classmethod
    def setUpClass(cls):
        if CHROMIUM is None:  # a failure, not a skip: without it nothing here is checked
            raise RuntimeError("chromium is not installed; scripts/setup.sh installs it")
        super().setUpClass()

    @classmethod
    def make(cls, name, *args):
        out = cls.path(name)
        subprocess.run([sys.executable, MAKE_RESULT, out, *args], check=True)
        return out

    def report(self, h5, name):
        page = self.path(name)
        p = run(["report", h5, "--out", page], np_=0, check=True)
        self.assertIn("ringscan report: wrote " + page, p.stdout)
        return page

    def test_every_file_is_listed_ranked_without_console_messages(self):
        h5 = self.make("code.h5", "--files", "45", "--dropped", "3")
        page = self.report(h5, "code.html")
        dom, console = render(page, "#size=all")
        self.assertEqual(console, [])
        with h5py.File(h5) as f:
            doc = f["documents/path"].asstr()[0]
            paths = [doc + "/" + p for p in f["files/path"].asstr()[:]]
            ppl = f["files/perplexity"][:]
            status = list(f["files/status"].asstr()[:])
        shown = listed_paths(dom)
        self.assertEqual(sorted(shown), sorted(paths))
        # Ranked by perplexity, highest first; the dropped files (no perplexity) last.
        by_path = dict(zip(paths, ppl))
        values = [by_path[p] for p in shown]
        finite = [v for v in values if np.isfinite(v)]
        self.assertEqual(finite, sorted(finite, reverse=True))
        self.assertTrue(all(np.isnan(v) for v in values[len(finite):]))
        self.assertEqual(status.count("dropped"), 3)
        self.assertEqual(len(values) - len(finite), 3)
        dom, console = render(page, f"#file={status.index('dropped')}")
        self.assertEqual(console, [])
        self.assertIn("this file was dropped (beyond --max-tokens)", dom.by_id("view-code").text())
        # Pages: the second page of 10 shows the next 10 of the ranking.
        dom, _ = render(page, "#size=10&page=2")
        self.assertEqual(listed_paths(dom), shown[10:20])
        self.assertIn("page 2 of 5", dom.by_id("page-info").text())
        self.assertTrue(hidden(dom.by_id("no-text")))
        # The run's attributes.
        attrs = dom.by_id("attrs").text()
        for part in ("model", "demo", "ranks", "2", "device", "cpu", "written"):
            self.assertIn(part, attrs)

    def test_heat_map_shows_the_text_and_each_tokens_log_prob(self):
        h5 = self.make("heat.h5", "--files", "12", "--seed", "5")
        page = self.report(h5, "heat.html")
        with h5py.File(h5) as f:
            doc = f["documents/path"].asstr()[0]
            paths = [doc + "/" + p for p in f["files/path"].asstr()[:]]
            # The generator makes tokens that end inside a character (2-, 3- and 4-byte ones).
            text = f["text/utf8"][:].tobytes()
            inside = {char_bytes(text, e) for e in f["tokens/text_end"][:].tolist()
                      if e < len(text) and text[e] & 0xC0 == 0x80}
            self.assertIn(4, inside)
            self.assertTrue(inside & {2, 3}, inside)
            for i in range(len(paths)):
                text, lines = expected_heat(f, i)
                dom, console = render(page, f"#file={i}")
                self.assertEqual(console, [])
                self.assertEqual(dom.by_id("view-title").text(), paths[i])
                got = heat_lines(dom)
                self.assertEqual([n for n, _ in got], list(range(1, len(lines) + 1)))  # line numbers
                self.assertEqual("\n".join("".join(t for t, _ in spans) for _, spans in got) + "\n", text)
                self.assertEqual(len(got), len(lines))
                for (_, spans), want in zip(got, lines):
                    self.assertEqual([t for t, _ in spans], [t for t, _ in want])
                    for (t, title), (_, v) in zip(spans, want):
                        self.assertTrue(title.startswith("logprob "), title)
                        self.assertAlmostEqual(float(title.split()[1]), v, delta=0.0051, msg=t)

    def test_long_files_render_in_chunks(self):
        h5 = self.make("long.h5", "--files", "2", "--max-lines", "5000", "--seed", "3")
        page = self.report(h5, "long.html")
        with h5py.File(h5) as f:
            n_lines = [len(expected_heat(f, i)[1]) for i in range(2)]
        i = int(np.argmax(n_lines))
        self.assertGreater(n_lines[i], 2000)
        dom, console = render(page, f"#file={i}")
        self.assertEqual(console, [])
        self.assertEqual(len(heat_lines(dom)), 2000)
        more = dom.by_id("view-more")
        self.assertFalse(hidden(dom.by_id("view-more-wrap")))
        self.assertIn(f"of {n_lines[i]}", more.text())

    def test_files_without_text_render_statistics_with_a_note(self):
        h5 = self.make("old.h5", "--files", "8", "--no-text")
        page = self.report(h5, "old.html")
        dom, console = render(page, "#size=all")
        self.assertEqual(console, [])
        self.assertFalse(hidden(dom.by_id("no-text")))
        self.assertIn("No text stored", dom.by_id("no-text").text())
        self.assertEqual(len(listed_paths(dom)), 8)
        dom, console = render(page, "#file=0")
        self.assertEqual(console, [])
        self.assertIn("No text stored for this file", dom.by_id("view-code").text())

    def test_summaries_beside_their_documents(self):
        h5 = self.make("sum.h5", "--files", "6", "--mode", "file", "--summaries", "--no-text")
        page = self.report(h5, "sum.html")
        dom, console = render(page, "#size=all")
        self.assertEqual(console, [])
        self.assertFalse(hidden(dom.by_id("summary-head")))
        rows = dom.find(lambda n: "data-entry" in n.attrs)
        self.assertEqual(len(rows), 6)
        for r in rows:
            path = r.find(lambda x: x.tag == "a")[0].text()
            self.assertIn(f"Summary of {path}: it returns the value.", r.text())
        dom, _ = render(page, "#file=2")
        self.assertFalse(hidden(dom.by_id("view-summary")))
        self.assertIn("it returns the value.", dom.by_id("view-summary").text())

    def test_an_ask_files_question_above_its_answer(self):
        h5 = self.make("ask.h5", "--files", "3", "--mode", "file", "--summaries", "--questions", "--no-text")
        dom, console = render(self.report(h5, "ask.html"), "#file=1")
        self.assertEqual(console, [])
        text = dom.by_id("view-summary").text()
        path = dom.by_id("view-title").text()
        self.assertIn(f"Question\n\nWhat does {path} return?\n\nAnswer\n\nSummary of {path}: it returns", text)

    def test_paths_are_text_never_markup(self):
        h5 = self.make("evil.h5", "--files", "3")
        evil = "</script><script>document.title='owned'</script><img src=x onerror=alert(1)>.py"
        with h5py.File(h5, "r+") as f:
            paths = list(f["files/path"].asstr()[:])
            paths[1] = evil
            del f["files/path"]
            f.create_dataset("files/path", data=np.array(paths, dtype=h5py.string_dtype("utf-8")))
        page = self.report(h5, "evil.html")
        dom, console = render(page, "#size=all&file=1")
        self.assertEqual(console, [])
        self.assertTrue(any(p.endswith(evil) for p in listed_paths(dom)))
        self.assertEqual(dom.find(lambda n: n.tag == "img"), [])
        self.assertTrue(dom.find(lambda n: n.tag == "title")[0].text().startswith("ringscan report"))

    def test_the_console_check_sees_errors_and_fetches(self):
        # The check above must be able to fail: a script error and an attempted fetch
        # (which the page's Content-Security-Policy blocks) both reach the console.
        h5 = self.make("probe.h5", "--files", "2")
        page = self.report(h5, "probe.html")
        with open(page, encoding="utf-8") as f:
            text = f.read()
        self.assertNotIn("http://", text.replace("http://www.w3.org", ""))
        self.assertNotIn("https://", text)
        broken = self.path("broken.html")
        with open(broken, "w", encoding="utf-8") as f:
            f.write(text.replace("</body>", "<script>null.x;</script><img src='http://127.0.0.1:9/x.png'></body>"))
        _, console = render(broken)
        self.assertTrue(any("Uncaught TypeError" in c for c in console), console)
        self.assertTrue(any("Content Security Policy" in c for c in console), console)

    def test_a_real_score_run(self):
        corpus = self.path("code")
        os.makedirs(os.path.join(corpus, "sub"))
        files = {"a.py": jobs_util.words(1, 60) + "\n", "sub/b.c": "int café = 1; // 🙂\n" + jobs_util.words(2, 40),
                 "z.txt": "naïve 日本\n"}
        for name, body in files.items():
            jobs_util.write(os.path.join(corpus, name), body)
        h5 = self.path("real.h5")
        run(["score", "--model", self.model, "--out", h5, "--quiet", "--mode", "codebase", "--input", corpus],
            np_=1, check=True)
        page = self.report(h5, "real.html")
        dom, console = render(page, "#size=all")
        self.assertEqual(console, [])
        self.assertEqual(sorted(listed_paths(dom)), sorted(corpus + "/" + n for n in files))
        with h5py.File(h5) as f:
            rel = list(f["files/path"].asstr()[:])
            has_text = "text" in f
        for i, name in enumerate(rel):
            dom, console = render(page, f"#file={i}")
            self.assertEqual(console, [])
            if has_text:  # written by a ringscan that stores texts (issue 16)
                got = "\n".join("".join(t for t, _ in spans) for _, spans in heat_lines(dom)) + "\n"
                self.assertEqual(got, files[name] if files[name].endswith("\n") else files[name] + "\n")
            else:
                self.assertIn("No text stored for this file", dom.by_id("view-code").text())

    def test_errors_are_one_sentence(self):
        p = run(["report", self.path("missing.h5"), "--out", self.path("x.html")], np_=0)
        self.assertEqual(p.returncode, 1)
        self.assertIn("result file " + self.path("missing.h5") + " does not exist", p.stderr)
        h5 = self.make("same.h5", "--files", "2")
        p = run(["report", h5, "--out", h5], np_=0)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is the result file itself", p.stderr)
        self.assertTrue(h5py.is_hdf5(h5))
        p = run(["report", h5, "--out", self.path("no/such/dir/x.html")], np_=0)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot create", p.stderr)
        folder = self.path("a-folder")
        os.makedirs(folder)
        p = run(["report", h5, "--out", folder], np_=0)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"--out {folder} is a folder; expected the path of an .html file", p.stderr)
        # A damaged file fails before anything is written, and leaves nothing behind.
        with h5py.File(h5, "r+") as f:
            f["tokens/text_end"][3] = 10 ** 9
        before = sorted(os.listdir(self.tmp))
        p = run(["report", h5, "--out", self.path("damaged.html")], np_=0)
        self.assertEqual(p.returncode, 1)
        self.assertIn("token 3 covers bytes", p.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp)), before)
        # A page is readable by others, as files the user makes are.
        page = self.report(self.make("perm.h5", "--files", "2"), "perm.html")
        self.assertEqual(os.stat(page).st_mode & 0o777, 0o666 & ~current_umask())


if __name__ == "__main__":
    unittest.main(verbosity=2)
