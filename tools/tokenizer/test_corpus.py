"""The committed test corpus (tests/tokenizer/fixtures/corpus/): file name -> raw bytes.

Each file aims at one risk: code in several languages, other scripts and
combining marks, emoji sequences, CRLF and Unicode spaces, long runs (the BPE
heap path and the regex backtracking), added tokens written in the text,
invalid UTF-8 and NFC-sensitive text.
"""

import random

from corpus_text import (CODE_GENERATORS, EMOJI, MULTILINGUAL, english_paragraph,
                         random_unicode_text)

SPECIAL_TEXT = (
    "<s>Hello</s> and <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    "<think>\nfour, surely\n</think>\n\n4<|im_end|>\n"
    "Inline:foo<s>bar</s>baz <SPECIAL_42> <SPECIAL_999><SPECIAL_1000> <unk>\n"
    "Broken: <|im_start <s <|im_end| </think <<s>> <s><s> < s> <|IM_START|> [INST]\n"
    "Spaces:   <|im_start|>   spaced   <|im_end|>   \t<think>\t</think>\u3000<s>\u3000\n"
    "Word-glued: x<think>y think<think>think, ringscan hello world Hello ringscanner scanners scanner.\n"
    "Decomposed: cafe\u0301 re\u0301sume\u0301 ringsca\u0301n\n"
)

SPACES_TEXT = (
    "line one\r\nline two\r\n\r\n\r\nindented\r\n    four spaces\r\n\ttab\r\n"
    "mixed \t \r\n \r\n\r  \n  \n\n\n"
    "trailing spaces    \nCR only\rnext\rLF\nform\x0cfeed vertical\x0btab\n"
    "nbsp\u00a0here en\u2002space em\u2003space thin\u2009space ideographic\u3000space\n"
    "nel\u0085line-sep\u2028para-sep\u2029narrow\u202fnbsp math\u205fspace ogham\u1680mark\n"
    "mongolian\u180evowel separator (not White_Space since Unicode 6.3) zero\u200bwidth\n"
    "x \u180e\u180e  \u180e\n\u180e \n \u180e\r\n\t\u180e \u180e\u3000\u180e\n"
)

WHITESPACE_TEXT = (
    SPACES_TEXT
    + " " * 3000 + "x" + " " * 2999 + "\n"
    + "\t" * 200 + "y\n" + "\n" * 100 + "z" + "\r\n" * 60 + " \n" * 40 + "end   \n  \n"
)


def numbers_text(rng):
    parts = ["1234567890" * 100, "\n3.14159265358979 2.718281828 -0.5e-10 1e+308\n",
             "1,000,000 and 1.000.000 and 1 000 000 and ١٢٣٤٥ and १२३४५ and ๑๒๓ and １２３４５\n",
             "0xDEADBEEF 0b1010_1010 0o777 1_000_000u64 42i32 3.0f 1e9L v2.3.4-rc.1+build.567\n",
             "+1 (555) 123-4567, 2024-02-29T23:59:60.123456Z, 192.168.0.1:8080, ::1, IPv6 fe80::1ff:fe23:4567:890a\n"]
    parts.append(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 25))) for _ in range(60)) + "\n")
    return "".join(parts)


def long_words_text(rng):
    lower = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(1500))
    upper = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(800))
    mixed = "".join(rng.choice("aAbBcCdDeE") for _ in range(600))
    b64 = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(800))
    return (lower + "\n" + upper + "\n" + mixed + "\n" + b64 + "==\n" + "=" * 700 + "\n"
            + "-" * 300 + ">" + "/" * 200 + "\n" + "ab" * 500 + "\n" + "😀" * 100 + "\n"
            + "ÄÖÜ" * 150 + "\n" + "漢字" * 150 + "\n")


def invalid_utf8_bytes(rng):
    chunks = [
        b"valid start \xe2\x9c\x93 then lone continuation \x80\xbf end\n",
        b"truncated 2-byte \xc3 truncated 3-byte \xe2\x82 truncated 4-byte \xf0\x9f\x98 done\n",
        b"overlong \xc0\xaf \xe0\x80\xaf \xf0\x80\x80\xaf and \xc1\xbf\n",
        b"surrogates \xed\xa0\x80 \xed\xbf\xbf \xed\xa0\xbd\xed\xb8\x80 (CESU-8 emoji)\n",
        b"beyond U+10FFFF \xf4\x90\x80\x80 \xf5\x80\x80\x80 \xf8\x88\x80\x80\x80 \xfc\x84\x80\x80\x80\x80\n",
        b"bytes FE FF \xfe\xff and BOM \xef\xbb\xbf inside\n",
        b"NUL \x00 bytes \x00\x00 and DEL \x7f and C1 \xc2\x80\xc2\x9f\n",
        b"latin-1 text: caf\xe9 na\xefve \xa9 2024 \xb5s\n",
        b"mixed \xe4\xb8\xad\xe6\x96 \xe6\x96\x87 \xf0\x9f\x91 \xf0\x9f\x91\x8d\n",
        b"<s>\xff</s><|im_start|>\x80<|im_end|>\n",
    ]
    rnd = bytes(rng.getrandbits(8) for _ in range(700))
    return b"\xef\xbb\xbf" + b"".join(chunks) + rnd + b"\n" + b"".join(chunks[:3]) + b"\xe2"


NFC_TEXT = (
    "Precomposed: é ñ ü Å Ω ḱ ṩ ǖ. Decomposed: e\u0301 n\u0303 u\u0308 A\u030a \u03a9 k\u0301 s\u0323\u0307.\n"
    "Reordering: a\u0307\u0323 a\u0323\u0307 q\u0307\u0323 x\u0328\u0301\u0303.\n"
    "Singletons: \u212b (ANGSTROM SIGN) \u2126 (OHM) \u212a (KELVIN) \u1fee \u0340\u0341\u0343\u0344.\n"
    "Exclusions: \u0958 \u0959 \u095e \ufb1d \ufb2a \u2adc.  CJK compat: \uf900 \uf91d \ufa10 \U0002f800.\n"
    "Hangul: \u1100\u1161 \u1100\u1161\u11a8 \uac00\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af \ud55c\uad6d.\n"
    "Blocked: a\u0301\u0301 a\u0316\u0301 a\u0301\u0316 \u00e0\u0316 e\u0300\u0301\u0302.\n"
    "Non-starters: \u0301abc \u0308\u0301 \u0f73 \u0f75 \u0f81 \u0344.\n"
    "Vietnamese: Vie\u0323\u0302t Nam, Tie\u0302\u0301ng Vie\u0323\u0302t, ho\u0300a bi\u0300nh.\n"
    "Devanagari: \u0915\u093c \u0916\u093c \u0917\u093c (nukta) \u0928\u093c.  Greek: \u03b1\u0313\u0301 \u03c9\u0342\u0345.\n"
)


def make_test_corpus():
    rng = random.Random(20240917)
    files = {}
    files["english.txt"] = "\n\n".join(english_paragraph(rng, rng.randint(3, 7)) for _ in range(12)).encode()
    files["code_mixed.txt"] = "\n".join(gen(rng) for gen in CODE_GENERATORS for _ in range(2)).encode()
    files["multilingual.txt"] = ("\n".join(MULTILINGUAL) + "\n" + " ".join(EMOJI) + "\n").encode()
    files["emoji.txt"] = "".join(rng.choice(EMOJI) + rng.choice(["", " ", "\n", "a", "1", "."])
                                 for _ in range(200)).encode()
    files["whitespace.txt"] = WHITESPACE_TEXT.encode()
    files["unicode_spaces.txt"] = SPACES_TEXT.encode()
    files["numbers.txt"] = numbers_text(rng).encode()
    files["long_words.txt"] = long_words_text(rng).encode()
    files["special_tokens.txt"] = SPECIAL_TEXT.encode()
    files["invalid_utf8.bin"] = invalid_utf8_bytes(rng)
    files["random_unicode.txt"] = random_unicode_text(rng, 1500).encode()
    files["nfc.txt"] = NFC_TEXT.encode()
    files["empty.txt"] = b""
    files["mixed_small.txt"] = (
        "Hello  world-wide web 2024! x = a-b  -  c;\n\t$PATH:/usr/bin  \u00a0 42 rue d'Arc--\n"
        "HTTPServer 3.14 ---> émigré 漢字 😀👍🏽 <s> end-\n").encode()
    return files
