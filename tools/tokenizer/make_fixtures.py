#!/usr/bin/env python3
"""Trains the demo tokenizer and writes the tokenizer test fixtures with HF `tokenizers`.

Writes into tests/tokenizer/fixtures/:
  demo/tokenizer.json         4096-id Tekken-style byte-level BPE (also the `demo`
                              model preset's tokenizer, embedded into ringscan)
  demo/tokenizer_config.json  bos <s>, eos <|im_end|>, add_bos_token, ChatML template
  corpus/*                    the test corpus (raw bytes, some invalid UTF-8)
  expected.json               HF's ids and decodes for the corpus, for the demo
                              tokenizer and for variants of it (RFC 6902 patches)
  expected_offsets.json       HF's token offsets for the same cases, as bytes of the
                              corpus file (`--offsets-only` rewrites just this file
                              from the committed tokenizer and corpus)

Run from the repository root:
  python3 -m venv tools/.venv-tokenizer
  tools/.venv-tokenizer/bin/pip install -r tools/tokenizer/requirements.txt
  tools/.venv-tokenizer/bin/python tools/tokenizer/make_fixtures.py
"""

import copy
import hashlib
import json
import os
import random
import sys

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus_text import training_corpus  # noqa: E402
from test_corpus import make_test_corpus  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "tokenizer", "fixtures")

# The pre-tokenizer regex of Mistral's Tekken tokenizer, as shipped in the
# tokenizer.json of Mistral-Nemo and the Nemotron-H family (Split, Isolated).
TEKKEN_REGEX = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
                r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
                r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")

VOCAB_SIZE = 4096
N_SPECIAL = 1000
NAMED_SPECIALS = {0: "<unk>", 1: "<s>", 2: "</s>", 3: "[INST]", 4: "[/INST]",
                  10: "<|im_start|>", 11: "<|im_end|>", 12: "<think>", 13: "</think>"}

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}"
)


def special_tokens():
    return [NAMED_SPECIALS.get(i, f"<SPECIAL_{i}>") for i in range(N_SPECIAL)]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def train_demo_tokenizer():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(TEKKEN_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, show_progress=False,
                                  special_tokens=special_tokens(),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_corpus(), trainer)
    data = json.loads(tok.to_str())

    # Tekken layout: specials, then the 256 byte tokens in byte order, then the
    # merged tokens in merge order (so an id's rank is id - 1256).
    merges = [m if isinstance(m, list) else m.split(" ", 1) for m in data["model"]["merges"]]
    b2u = bytes_to_unicode()
    order = special_tokens() + [b2u[b] for b in range(256)] + [a + b for a, b in merges]
    if len(order) != VOCAB_SIZE or len(set(order)) != VOCAB_SIZE:
        sys.exit(f"training gave {len(order)} tokens ({len(set(order))} distinct), wanted {VOCAB_SIZE}")
    if set(order) != set(data["model"]["vocab"]):
        sys.exit("renumbered vocabulary differs from the trained one")
    data["model"]["vocab"] = {t: i for i, t in enumerate(order)}
    data["model"]["merges"] = merges
    for t in data["added_tokens"]:
        t["id"] = data["model"]["vocab"][t["content"]]
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    }
    # Round-trip through HF so the committed file is exactly what HF writes.
    # Compact (one line) to keep the fixture small; real checkpoints are pretty-printed.
    return Tokenizer.from_str(json.dumps(data)).to_str(pretty=False)


def tokenizer_config():
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "<|im_end|>",
        "unk_token": "<unk>",
        "pad_token": "<SPECIAL_20>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 262144,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


# --- RFC 6902 (add / replace / remove), the subset the variants use ---------------
def _pointer(path):
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def apply_patch(doc, ops):
    doc = copy.deepcopy(doc)
    for op in ops:
        keys = _pointer(op["path"])
        parent = doc
        for k in keys[:-1]:
            parent = parent[int(k)] if isinstance(parent, list) else parent[k]
        last = keys[-1]
        if isinstance(parent, list):
            if op["op"] == "add":
                parent.insert(len(parent) if last == "-" else int(last), op["value"])
            elif op["op"] == "replace":
                parent[int(last)] = op["value"]
            else:
                del parent[int(last)]
        else:
            if op["op"] in ("add", "replace"):
                parent[last] = op["value"]
            else:
                del parent[last]
    return doc


def ptr_escape(key):
    return key.replace("~", "~0").replace("/", "~1")


BYTELEVEL_NO_REGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}


def split_variant(name, pattern, behavior, invert):
    return (name, [{"op": "replace", "path": "/pre_tokenizer", "value": {
        "type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": pattern, "behavior": behavior, "invert": invert},
            BYTELEVEL_NO_REGEX]}}], ["mixed_small.txt", "unicode_spaces.txt"])


def char_level_ops(extra):
    """The same vocabulary without ByteLevel: BPE on characters (Llama-2 style)."""
    return [{"op": "replace", "path": "/pre_tokenizer",
             "value": {"type": "Split", "pattern": {"Regex": TEKKEN_REGEX}, "behavior": "Isolated", "invert": False}}] + extra


def variants():
    v = [
        ("nfc", [{"op": "replace", "path": "/normalizer", "value": {"type": "NFC"}}],
         ["nfc.txt", "multilingual.txt", "special_tokens.txt"]),
        ("nfc_in_sequence", [{"op": "replace", "path": "/normalizer",
                              "value": {"type": "Sequence", "normalizers": [{"type": "NFC"}]}}], ["nfc.txt"]),
        ("gpt2_byte_level", [{"op": "replace", "path": "/pre_tokenizer", "value": {
            "type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}}],
         ["english.txt", "multilingual.txt", "unicode_spaces.txt", "special_tokens.txt", "invalid_utf8.bin"]),
        ("byte_level_prefix_space_after_split", [{"op": "replace", "path": "/pre_tokenizer/pretokenizers/1",
                                                  "value": {"type": "ByteLevel", "add_prefix_space": True,
                                                            "trim_offsets": True, "use_regex": False}}],
         ["mixed_small.txt", "special_tokens.txt"]),
        ("byte_level_regex_after_split", [{"op": "replace", "path": "/pre_tokenizer/pretokenizers/0",
                                           "value": {"type": "Split", "pattern": {"String": "\n"},
                                                     "behavior": "MergedWithPrevious", "invert": False}},
                                          {"op": "replace", "path": "/pre_tokenizer/pretokenizers/1",
                                           "value": {"type": "ByteLevel", "add_prefix_space": False,
                                                     "trim_offsets": True, "use_regex": True}}],
         ["mixed_small.txt", "unicode_spaces.txt"]),
        ("ignore_merges_off", [{"op": "replace", "path": "/model/ignore_merges", "value": False}],
         ["english.txt", "code_mixed.txt", "multilingual.txt"]),
        ("added_token_flags", [
            {"op": "replace", "path": "/normalizer", "value": {"type": "NFC"}},
            {"op": "replace", "path": "/added_tokens/10/lstrip", "value": True},
            {"op": "replace", "path": "/added_tokens/10/rstrip", "value": True},
            {"op": "replace", "path": "/added_tokens/11/rstrip", "value": True},
            {"op": "replace", "path": "/added_tokens/12/single_word", "value": True},
            {"op": "replace", "path": "/added_tokens/13/lstrip", "value": True},
            {"op": "add", "path": "/added_tokens/-", "value": {
                "id": 4096, "content": "scanner", "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": True, "special": False}},
            {"op": "add", "path": "/added_tokens/-", "value": {
                "id": 4097, "content": " hello", "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": False}},
            {"op": "add", "path": "/added_tokens/-", "value": {
                "id": 4098, "content": "sumé", "single_word": True, "lstrip": False, "rstrip": False,
                "normalized": True, "special": False}},
            {"op": "add", "path": "/added_tokens/-", "value": {
                "id": 4099, "content": "think,", "single_word": False, "lstrip": True, "rstrip": True,
                "normalized": True, "special": True}},
        ], ["special_tokens.txt", "english.txt", "nfc.txt", "invalid_utf8.bin"]),
        ("template_bos_eos", [{"op": "replace", "path": "/post_processor", "value": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                               "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}}],
         ["mixed_small.txt", "empty.txt"]),
        ("post_processor_sequence", [{"op": "replace", "path": "/post_processor", "value": {
            "type": "Sequence", "processors": [
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
                {"type": "TemplateProcessing",
                 "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                            {"Sequence": {"id": "A", "type_id": 0}}],
                 "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                 "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [10], "tokens": ["<|im_start|>"]}}}]}}],
         ["mixed_small.txt"]),
        ("no_post_processor", [{"op": "replace", "path": "/post_processor", "value": None}],
         ["mixed_small.txt", "empty.txt"]),
        ("no_decoder", [{"op": "replace", "path": "/decoder", "value": None}],
         ["mixed_small.txt", "special_tokens.txt"]),
        ("char_level_byte_fallback", char_level_ops(
            [{"op": "replace", "path": "/model/byte_fallback", "value": True},
             {"op": "replace", "path": "/decoder", "value": {"type": "Sequence", "decoders": [
                 {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                 {"type": "ByteFallback"}, {"type": "Fuse"},
                 {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}}]
            + [{"op": "add", "path": "/model/vocab/" + ptr_escape(f"<0x{b:02X}>"), "value": 4096 + b}
               for b in range(256)]),
         ["english.txt", "multilingual.txt", "invalid_utf8.bin", "special_tokens.txt"]),
        ("char_level_unk_fused", char_level_ops(
            [{"op": "replace", "path": "/model/unk_token", "value": "<unk>"},
             {"op": "replace", "path": "/model/fuse_unk", "value": True}]),
         ["multilingual.txt", "mixed_small.txt"]),
        ("char_level_unk_unfused", char_level_ops(
            [{"op": "replace", "path": "/model/unk_token", "value": "<unk>"},
             {"op": "replace", "path": "/model/fuse_unk", "value": False}]),
         ["multilingual.txt", "mixed_small.txt"]),
        ("char_level_no_unk", char_level_ops([]), ["multilingual.txt", "mixed_small.txt"]),
    ]
    behaviors = ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"]
    for b in behaviors:
        v.append(split_variant(f"split_string_{b}", {"String": " "}, b, False))
    for b in behaviors:
        v.append(split_variant(f"split_regex_inverted_{b}", {"Regex": r"\p{N}+|\s+|-"}, b, True))
    return v


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def encode_cases(tok, corpus, names, with_special_for=None):
    cases = []
    for name in names:
        text = corpus[name].decode("utf-8", errors="replace")
        ids = tok.encode(text, add_special_tokens=False).ids
        case = {"file": "corpus/" + name, "ids": ids}
        special = tok.encode(text, add_special_tokens=True).ids
        if with_special_for is None or name in with_special_for:
            case["ids_special"] = special
        else:
            case["ids_special_sha256"] = sha256(json.dumps(special).encode())
        case["decode_sha256"] = sha256(tok.decode(ids, skip_special_tokens=False).encode())
        case["decode_skip_special_sha256"] = sha256(tok.decode(ids, skip_special_tokens=True).encode())
        cases.append(case)
    return cases


def decode_cases(tok, corpus, rng, vocab_size):
    cases = []
    for n in range(40):
        ids = [rng.randrange(vocab_size) for _ in range(rng.randint(1, 12))]
        if n % 4 == 0:
            ids = [rng.randrange(1000, 1256) for _ in range(rng.randint(1, 6))]  # raw bytes
        cases.append(ids)
    multi = tok.encode(corpus["multilingual.txt"].decode(), add_special_tokens=False).ids
    for start in range(0, 120, 7):
        cases.append(multi[start:start + rng.randint(1, 5)])  # may cut characters in half
    cases.append([10, 1500, 11, 2, 1, 12, 0])
    return [{"ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
             "text_skip_special": tok.decode(ids, skip_special_tokens=True)} for ids in cases]


def char_byte_ranges(raw):
    """Per character of raw.decode("utf-8", "replace"), the bytes of `raw` it came from
    (a U+FFFD stands for the whole ill-formed sequence it replaced)."""
    ranges, i = [], 0
    while i < len(raw):
        for k in (1, 2, 3, 4):
            try:
                if len(raw[i:i + k].decode("utf-8")) == 1:
                    break
            except UnicodeDecodeError:
                continue
        else:
            try:
                raw[i:].decode("utf-8")
            except UnicodeDecodeError as e:
                k = e.end - e.start
        ranges.append((i, i + k))
        i += k
    return ranges


def byte_offsets(raw, char_offsets):
    """HF's character offsets into the decoded text as [begin, end) bytes of `raw`, written
    compactly as the pairs (begin - previous end, end - begin), flat."""
    ranges = char_byte_ranges(raw)
    flat, previous_end = [], 0
    for b, e in char_offsets:
        begin = ranges[b][0] if b < len(ranges) else len(raw)
        end = ranges[e - 1][1] if e > b else begin
        flat += [begin - previous_end, end - begin]
        previous_end = end
    return flat


def offset_cases(tok, corpus, names):
    cases = []
    for name in names:
        text = corpus[name].decode("utf-8", errors="replace")
        case = {"file": "corpus/" + name}
        for key, special in (("offsets", False), ("offsets_special", True)):
            if special and name not in OFFSETS_WITH_SPECIAL:
                continue
            enc = tok.encode(text, add_special_tokens=special)
            case[key] = byte_offsets(corpus[name], enc.offsets)
        cases.append(case)
    return cases


# The variants whose offsets are checked (the others differ from the demo only in how
# text is cut, which the demo's cases already follow), and the files checked with the
# post-processor's tokens as well.
OFFSET_VARIANTS = {"nfc", "gpt2_byte_level", "byte_level_prefix_space_after_split", "added_token_flags",
                   "template_bos_eos", "char_level_byte_fallback", "char_level_unk_fused",
                   "char_level_unk_unfused", "split_string_MergedWithNext", "split_regex_inverted_Contiguous"}
OFFSETS_WITH_SPECIAL = {"mixed_small.txt", "empty.txt"}


def write_offsets(tok_json, corpus):
    """HF's offsets for the demo tokenizer on every corpus file, and for some variants on
    their files (HF's ids are in expected.json)."""
    base = json.loads(tok_json)
    out = {"generator": "tools/tokenizer/make_fixtures.py", "tokenizers_version": tokenizers.__version__,
           "tokenizer_sha256": sha256(tok_json.encode()),
           "cases": offset_cases(Tokenizer.from_str(tok_json), corpus, sorted(corpus)), "variants": []}
    for name, ops, files in variants():
        if name not in OFFSET_VARIANTS:
            continue
        vtok = Tokenizer.from_str(json.dumps(apply_patch(base, ops)))
        out["variants"].append({"name": name, "cases": offset_cases(vtok, corpus, files)})
    write(os.path.join(OUT, "expected_offsets.json"), (json.dumps(out, separators=(",", ":")) + "\n").encode())


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    if "--offsets-only" in sys.argv[1:]:
        with open(os.path.join(OUT, "demo", "tokenizer.json"), encoding="utf-8") as f:
            tok_json = f.read()
        corpus = {}
        for name in sorted(os.listdir(os.path.join(OUT, "corpus"))):
            with open(os.path.join(OUT, "corpus", name), "rb") as f:
                corpus[name] = f.read()
        write_offsets(tok_json, corpus)
        return
    tok_json = train_demo_tokenizer()
    write(os.path.join(OUT, "demo", "tokenizer.json"), tok_json.encode())
    write(os.path.join(OUT, "demo", "tokenizer_config.json"),
          (json.dumps(tokenizer_config(), indent=2, ensure_ascii=False) + "\n").encode())

    corpus = make_test_corpus()
    for name, data in corpus.items():
        write(os.path.join(OUT, "corpus", name), data)

    tok = Tokenizer.from_str(tok_json)
    base = json.loads(tok_json)
    small = {"mixed_small.txt", "special_tokens.txt", "empty.txt", "nfc.txt", "unicode_spaces.txt"}
    expected = {
        "generator": "tools/tokenizer/make_fixtures.py",
        "tokenizers_version": tokenizers.__version__,
        "tokenizer_sha256": sha256(tok_json.encode()),
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "cases": encode_cases(tok, corpus, sorted(corpus), with_special_for=small),
        "decode_cases": decode_cases(tok, corpus, random.Random(7), VOCAB_SIZE),
        "variants": [],
    }
    for name, ops, files in variants():
        patched = apply_patch(base, ops)
        for t in patched["added_tokens"]:
            # HF would silently use the vocabulary's id; ringscan rejects such files.
            in_vocab = patched["model"]["vocab"].get(t["content"])
            if in_vocab is not None and in_vocab != t["id"]:
                sys.exit(f"variant {name}: added token {t['content']!r} is already in the vocabulary")
        vtok = Tokenizer.from_str(json.dumps(patched))
        expected["variants"].append({
            "name": name, "patch": ops,
            "cases": encode_cases(vtok, corpus, files, with_special_for=small)})
    write(os.path.join(OUT, "expected.json"), (json.dumps(expected, separators=(",", ":")) + "\n").encode())
    write_offsets(tok_json, corpus)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"fixtures written to {OUT} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
