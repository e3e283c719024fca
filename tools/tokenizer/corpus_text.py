"""Deterministic text for the tokenizer fixtures: a training corpus and a test corpus.

Everything is written here or generated from seeded random choices, so rerunning
make_fixtures.py reproduces the committed fixtures byte for byte (same Python
minor version and `tokenizers` version, see requirements.txt).

Random code points are drawn only from characters assigned in Python's
unicodedata (Unicode 14.0 for Python 3.11): both HF's Oniguruma (Unicode 16) and
Debian 12's PCRE2 10.42 (Unicode 15.0) classify those identically, so the
fixtures test ringscan's code, not the difference between Unicode versions
(see docs/tokenizer.md, "Known differences").
"""

import random
import unicodedata

WORDS = """the of and to in is was that for it with as on be by this are from at or have an
they which one you had not but what all were when we there can been has more if will who
would their so out about up into them some could time only other then its over these two
may first new like any after also most made many well where people through back much before
between because each those both under while three last during long great same state since
against another number world year work system program data file value function return error
memory thread process build test model token layer state cache vector matrix kernel device
rank segment document sequence attention memory scan prefix length window batch output input
parse write read open close start stop begin end result config option command line path
small large fast slow simple clear quick brown fox jumps lazy dog river mountain city market
garden winter summer autumn spring morning evening history science music language paper
question answer reason example problem solution method theory practice student teacher
""".split()

CODE_WORDS = """get set add remove update create delete find load save parse encode decode
init reset flush merge split join count index offset size len buf ptr node tree list map
key val item elem arr vec str text name path file dir conf opts args ctx req resp msg err
user client server handle token rank vocab cache table query row col id tmp out res""".split()

# Hand-written text in several scripts (not translations of each other).
MULTILINGUAL = [
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Москва — столица России.",
    "Программист написал функцию, которая читает файл и возвращает список строк.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο. Καλημέρα σας!",
    "我们在图书馆里读书，外面下着大雨。北京是中国的首都，人口超过两千万。",
    "这个程序把文本切分成词元，然后计算每个词元的概率。",
    "吾輩は猫である。名前はまだ無い。東京タワーは高さ三百三十三メートルです。",
    "カタカナとひらがなと漢字を混ぜて書きます。コンピューターでテキストを処理する。",
    "다람쥐 헌 쳇바퀴에 타고파. 서울은 대한민국의 수도입니다. 한국어 문장을 토큰으로 나눕니다.",
    "مرحبا بالعالم! اللغة العربية تكتب من اليمين إلى اليسار. هذا نص تجريبي للاختبار.",
    "שלום עולם! עברית נכתבת מימין לשמאל, והמספרים 123 נכתבים משמאל לימין.",
    "नमस्ते दुनिया! हिन्दी देवनागरी लिपि में लिखी जाती है। यह एक परीक्षण वाक्य है।",
    "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ สวัสดีครับ ยินดีต้อนรับ",
    "Tiếng Việt có nhiều dấu thanh: à, á, ả, ã, ạ. Hà Nội là thủ đô của Việt Nam.",
    "Straße, Größe, Fußgänger, Äpfel und Öl. Ĳssel, Œuvre, æsthetic, ﬁnancial ﬂow.",
    "İstanbul'da ılık bir akşam; Iğdır ve Şırnak. ǅemal ǈubica ǋiva (titlecase digraphs).",
    "Français: « Où est la bibliothèque ? » — Elle est là-bas, près de l'église.",
    "Español: ¿Dónde está el niño? ¡Qué día tan bonito! Año nuevo, vida nueva.",
    "Polski: Zażółć gęślą jaźń. Čeština: Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Ελληνικά με τόνους: ά έ ή ί ό ύ ώ ϊ ϋ ΐ ΰ. Modifier letters: ʰ ʲ ʷ ˀ ˁ ᵃ ᵇ.",
    "Ⅻ Ⅳ ⅷ ½ ¾ ⅓ ² ³ ¹ ٣٤٥ ३४५ ๓๔๕ １２３ 𝟙𝟚𝟛 ① ② ③",
    "Math: ∀x∈ℝ, ∃y: x² + y² ≥ 0; ∑ᵢ aᵢ ≈ ∫₀^∞ f(t) dt; α→β, ¬(p ∧ q) ⇔ ¬p ∨ ¬q.",
    "𝔾𝕠𝕠𝕕 𝕞𝕠𝕣𝕟𝕚𝕟𝕘 𝐁𝐨𝐥𝐝 𝑰𝒕𝒂𝒍𝒊𝒄 — mathematical alphanumerics.",
]

EMOJI = [
    "😀", "😂", "🥲", "👍", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵", "❤️", "✨",
    "🚀", "🔥", "1️⃣", "#️⃣", "🧑🏿‍🔬", "🐍", "🦀", "☕", "⚠️", "✅", "❌",
]


def _ident(rng, style):
    parts = [rng.choice(CODE_WORDS) for _ in range(rng.randint(1, 3))]
    if style == "snake":
        return "_".join(parts)
    if style == "camel":
        return parts[0] + "".join(p.capitalize() for p in parts[1:])
    if style == "pascal":
        return "".join(p.capitalize() for p in parts)
    return "_".join(p.upper() for p in parts)


def english_paragraph(rng, sentences=5):
    out = []
    for _ in range(sentences):
        n = rng.randint(5, 18)
        words = [rng.choice(WORDS) for _ in range(n)]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(
                ["don't", "it's", "we'll", "they've", "I'm", "you'd", "O'Neil's", "isn't"]))
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 100000)))
        if rng.random() < 0.15:
            words.insert(rng.randrange(len(words)), rng.choice(
                ["NASA", "HTTP", "JSONParser", "iPhone", "McDonald", "XMLHttpRequest", "GPUs"]))
        s = " ".join(words)
        s = s[0].upper() + s[1:]
        if rng.random() < 0.2:
            s = s.replace(" ", ", ", 1)
        out.append(s + rng.choice([".", ".", ".", "!", "?", "...", ";", " —"]))
    return " ".join(out)


def python_snippet(rng):
    f, a, b = _ident(rng, "snake"), _ident(rng, "snake"), _ident(rng, "snake")
    c = _ident(rng, "pascal")
    return (
        f"class {c}:\n"
        f"    \"\"\"{english_paragraph(rng, 1)}\"\"\"\n\n"
        f"    def __init__(self, {a}: int = {rng.randint(0, 999)}) -> None:\n"
        f"        self.{a} = {a}\n"
        f"        self._{b} = {{}}\n\n"
        f"    def {f}(self, {b}):\n"
        f"        for i in range(len({b})):\n"
        f"            if {b}[i] % 2 == 0 and i != {rng.randint(1, 50)}:\n"
        f"                yield {b}[i] ** 2  # {rng.choice(WORDS)}\n"
        f"        return None\n\n"
        f"print(f\"{{{a}=}} -> {{{f}!r}}\")\n"
    )


def c_snippet(rng):
    f, a, b = _ident(rng, "snake"), _ident(rng, "snake"), _ident(rng, "camel")
    t = rng.choice(["int", "size_t", "uint64_t", "float", "double", "char*"])
    return (
        f"#include <stdio.h>\n#include <stdlib.h>\n\n"
        f"static {t} {f}(const {t}* {a}, size_t n) {{\n"
        f"\t{t} {b} = 0;\n"
        f"\tfor (size_t i = 0; i < n; ++i) {{\n"
        f"\t\t{b} += {a}[i] * {rng.randint(2, 99)};  /* {rng.choice(WORDS)} */\n"
        f"\t}}\n"
        f"\treturn {b};\n"
        f"}}\n\n"
        f"int main(int argc, char** argv) {{\n"
        f"    if (argc < 2) {{ fprintf(stderr, \"usage: %s FILE\\n\", argv[0]); return 1; }}\n"
        f"    printf(\"%d\\n\", (int){f}(NULL, 0));\n"
        f"    return 0;\n}}\n"
    )


def cpp_snippet(rng):
    c, m, v = _ident(rng, "pascal"), _ident(rng, "snake"), _ident(rng, "snake")
    return (
        f"namespace ringscan::{rng.choice(CODE_WORDS)} {{\n\n"
        f"template <typename T>\nclass {c} {{\n public:\n"
        f"  explicit {c}(std::vector<T> {v}) : {v}_(std::move({v})) {{}}\n"
        f"  [[nodiscard]] std::optional<T> {m}(std::size_t i) const noexcept {{\n"
        f"    return i < {v}_.size() ? std::optional<T>{{{v}_[i]}} : std::nullopt;\n  }}\n\n"
        f" private:\n  std::vector<T> {v}_;\n}};\n\n"
        f"auto lambda = [&](const auto& x) -> decltype(auto) {{ return x->{m}(0x{rng.randint(0, 65535):04X}u); }};\n"
        f"}}  // namespace\n"
    )


def rust_snippet(rng):
    f, s, a = _ident(rng, "snake"), _ident(rng, "pascal"), _ident(rng, "snake")
    return (
        f"#[derive(Debug, Clone, PartialEq)]\npub struct {s} {{\n    pub {a}: Vec<u32>,\n}}\n\n"
        f"impl {s} {{\n    pub fn {f}(&self) -> Result<usize, Box<dyn std::error::Error>> {{\n"
        f"        let total: usize = self.{a}.iter().map(|&x| x as usize).sum();\n"
        f"        match total {{\n            0 => Err(\"empty\".into()),\n"
        f"            n if n > {rng.randint(10, 9999)} => Ok(n / 2),\n            n => Ok(n),\n        }}\n    }}\n}}\n"
    )


def js_snippet(rng):
    f, a = _ident(rng, "camel"), _ident(rng, "camel")
    return (
        f"export async function {f}({a} = {{}}) {{\n"
        f"  const res = await fetch(`https://api.example.com/v{rng.randint(1, 3)}/${{{a}.id}}?q=${{encodeURIComponent('{rng.choice(WORDS)}')}}`);\n"
        f"  if (!res.ok) throw new Error(`HTTP ${{res.status}}`);\n"
        f"  return (await res.json()).items?.filter((x) => x !== null && x.{a} >= {rng.randint(0, 100)}) ?? [];\n}}\n"
    )


def go_snippet(rng):
    f, s = _ident(rng, "pascal"), _ident(rng, "pascal")
    return (
        f"package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\n"
        f"type {s} struct {{\n\tName  string `json:\"name\"`\n\tCount int    `json:\"count\"`\n}}\n\n"
        f"func {f}(items []{s}) (int, error) {{\n\ttotal := 0\n\tfor _, it := range items {{\n"
        f"\t\ttotal += it.Count\n\t}}\n\tif total == 0 {{\n\t\treturn 0, fmt.Errorf(\"no items in %v\", os.Args)\n\t}}\n\treturn total, nil\n}}\n"
    )


def shell_snippet(rng):
    d = rng.choice(CODE_WORDS)
    return (
        f"#!/usr/bin/env bash\nset -euo pipefail\nDIR=\"${{1:-/tmp/{d}}}\"\n"
        f"for f in \"$DIR\"/*.txt; do\n  wc -l \"$f\" | awk '{{print $1}}' >> /var/log/{d}.log 2>&1\ndone\n"
        f"mpirun -np {rng.randint(1, 8)} --oversubscribe ./ringscan score --model ./demo-model --input \"$DIR\"\n"
    )


def sql_snippet(rng):
    t, c = _ident(rng, "snake"), _ident(rng, "snake")
    return (
        f"SELECT u.id, u.name, COUNT(o.{c}) AS n_{c}\nFROM users AS u\n"
        f"LEFT JOIN {t} o ON o.user_id = u.id\nWHERE u.created_at >= '2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}'\n"
        f"GROUP BY u.id, u.name\nHAVING COUNT(o.{c}) > {rng.randint(1, 20)}\nORDER BY n_{c} DESC;\n"
    )


def html_snippet(rng):
    w = rng.choice(WORDS)
    return (
        f"<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{w.title()}</title>\n"
        f"<style>body {{ font-family: sans-serif; margin: 0 auto; max-width: {rng.randint(600, 1200)}px; }}\n"
        f".{w}-box > p:first-child::before {{ content: \"→ \"; color: #{rng.randint(0, 0xFFFFFF):06x}; }}</style></head>\n"
        f"<body><div class=\"{w}-box\"><p>{english_paragraph(rng, 1)}</p><a href=\"/docs/{w}.html\">&laquo;more&raquo;</a></div></body>\n</html>\n"
    )


def json_snippet(rng):
    k = _ident(rng, "snake")
    return (
        "{\n" f"  \"{k}\": {rng.randint(-1000, 1000)},\n"
        f"  \"ratio\": {rng.random():.6f},\n  \"tags\": [\"{rng.choice(WORDS)}\", \"{rng.choice(WORDS)}\"],\n"
        f"  \"nested\": {{\"ok\": true, \"none\": null, \"path\": \"C:\\\\Users\\\\{rng.choice(WORDS)}\"}}\n}}\n"
    )


def yaml_md_snippet(rng):
    w = rng.choice(WORDS)
    return (
        f"# {w.title()} notes\n\n- item **{rng.choice(WORDS)}** with `code_{w}()`\n"
        f"- [link](https://example.org/{w}/{rng.randint(1, 999)})\n\n```yaml\n{w}:\n  enabled: true\n"
        f"  retries: {rng.randint(0, 9)}\n  hosts: [\"a.example\", \"b.example\"]\n```\n"
    )


CODE_GENERATORS = [python_snippet, c_snippet, cpp_snippet, rust_snippet, js_snippet, go_snippet,
                   shell_snippet, sql_snippet, html_snippet, json_snippet, yaml_md_snippet]


def misc_line(rng):
    choice = rng.randrange(6)
    if choice == 0:
        return " ".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 6)))
    if choice == 1:
        return f"{rng.randint(1900, 2100)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
    if choice == 2:
        return f"{rng.uniform(-1e6, 1e6):.4f} {rng.randint(0, 10**12):,} 0x{rng.getrandbits(32):08x} {rng.random():.3e}"
    if choice == 3:
        return f"user{rng.randint(1, 999)}@example.com https://www.example.com/{rng.choice(WORDS)}?id={rng.randint(1, 10**6)}#top"
    if choice == 4:
        return rng.choice(MULTILINGUAL)
    return "  ".join(rng.choice(WORDS).upper() for _ in range(3))


def training_corpus(seed=1234, n_docs=2500):
    """About 1.5 MB of mixed prose, code, other scripts, emoji and numbers."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        kind = rng.random()
        if kind < 0.35:
            docs.append("\n\n".join(english_paragraph(rng, rng.randint(2, 8)) for _ in range(rng.randint(1, 3))))
        elif kind < 0.75:
            docs.append("\n".join(rng.choice(CODE_GENERATORS)(rng) for _ in range(rng.randint(1, 3))))
        elif kind < 0.9:
            lines = [rng.choice(MULTILINGUAL) for _ in range(rng.randint(2, 6))]
            docs.append("\n".join(lines))
        else:
            docs.append("\n".join(misc_line(rng) for _ in range(rng.randint(3, 10))))
    return docs


def assigned_code_points(lo, hi):
    return [c for c in range(lo, hi)
            if not (0xD800 <= c < 0xE000) and unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")]


def random_unicode_text(rng, n_chars):
    """Random assigned characters from many blocks, with spaces and newlines mixed in."""
    blocks = [(0x20, 0x7F), (0xA0, 0x250), (0x250, 0x370), (0x370, 0x530), (0x530, 0x700),
              (0x900, 0xE00), (0x1100, 0x1200), (0x1E00, 0x2000), (0x2000, 0x2BFF),
              (0x3000, 0x3100), (0x4E00, 0x4F00), (0xAC00, 0xAD00), (0xFB00, 0xFFFE),
              (0x10000, 0x10100), (0x1D400, 0x1D800), (0x1F300, 0x1FA00), (0x20000, 0x20100)]
    pools = [assigned_code_points(lo, hi) for lo, hi in blocks]
    out = []
    for _ in range(n_chars):
        r = rng.random()
        if r < 0.12:
            out.append(" ")
        elif r < 0.15:
            out.append("\n")
        else:
            out.append(chr(rng.choice(rng.choice(pools))))
    return "".join(out)
