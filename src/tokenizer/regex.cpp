#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "tokenizer/utf8.h"
#include "util/error.h"

namespace ringscan::tok {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof(buf));
  return reinterpret_cast<const char*>(buf);
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace

RegexScratch::RegexScratch() {
  // Ovector for the whole match plus plenty of groups; tokenizer patterns
  // rarely capture, and only the whole match is read.
  match_data_ = pcre2_match_data_create(32, nullptr);
  // Long runs (a megabyte of one letter) backtrack inside JIT code; give it
  // room to grow instead of the 32 KiB default.
  jit_stack_ = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
  context_ = pcre2_match_context_create(nullptr);
  if (!match_data_ || !jit_stack_ || !context_) throw Error("tokenizer: out of memory creating regex match state");
  pcre2_jit_stack_assign(context_, nullptr, jit_stack_);
}

RegexScratch::~RegexScratch() {
  pcre2_match_context_free(context_);
  pcre2_jit_stack_free(jit_stack_);
  pcre2_match_data_free(match_data_);
}

std::string onig_to_pcre2(std::string_view p, const std::string& where) {
  auto fail = [&](const std::string& what) {
    throw Error(where + ": regex " + what + " is not supported (HF uses Oniguruma, ringscan PCRE2, and "
                "they define it differently)");
  };
  std::string out;
  out.reserve(p.size() + 32);
  bool in_class = false;
  std::size_t class_body_start = 0;  // index where a ']' would still be literal
  for (std::size_t i = 0; i < p.size();) {
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) throw Error(where + ": regex ends with a lone backslash");
      const char d = p[i + 1];
      switch (d) {
        case 's': out += "\\p{White_Space}"; break;  // Oniguruma: \s == White_Space
        case 'S': out += "\\P{White_Space}"; break;
        case 'h': out += in_class ? "0-9a-fA-F" : "[0-9a-fA-F]"; break;  // Ruby: hex digit
        case 'H':
          if (in_class) fail("\\H inside a character class");
          out += "[^0-9a-fA-F]";
          break;
        case 'w': case 'W': case 'b': case 'B':
          fail(std::string("\\") + d);
          break;
        case 'u':
          if (i + 6 <= p.size() && is_hex(p[i + 2]) && is_hex(p[i + 3]) && is_hex(p[i + 4]) && is_hex(p[i + 5])) {
            out += "\\x{";
            out.append(p.substr(i + 2, 4));
            out += "}";
            i += 6;
            continue;
          }
          fail("\\u not followed by four hex digits");
          break;
        case 'p': case 'P': {
          // Copy \p{...} whole so its name is not rescanned.
          const std::size_t close = p.find('}', i);
          if (i + 2 < p.size() && p[i + 2] == '{' && close != std::string_view::npos) {
            out.append(p.substr(i, close + 1 - i));
            i = close + 1;
            continue;
          }
          out += c;
          out += d;
          break;
        }
        default:
          out += c;
          out += d;
      }
      i += 2;
      continue;
    }
    if (in_class) {
      if (c == '[') {
        if (i + 1 < p.size() && p[i + 1] == ':') fail("POSIX bracket [:...:]");
        fail("nested character class");
      }
      if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') fail("character class intersection &&");
      if (c == ']' && i != class_body_start) in_class = false;
    } else if (c == '[') {
      in_class = true;
      class_body_start = i + 1;
      if (class_body_start < p.size() && p[class_body_start] == '^') {
        out += "[^";
        i += 2;
        class_body_start = i;
        continue;
      }
    }
    out += c;
    ++i;
  }
  if (in_class) throw Error(where + ": regex has an unterminated character class");
  return out;
}

Regex::Regex(std::string_view pattern, const std::string& where) {
  compile(onig_to_pcre2(pattern, where), where);
}

Regex Regex::literal(std::string_view text, const std::string& where) {
  std::string escaped;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (u < 0x80 && !alnum) escaped += '\\';  // backslash + non-alphanumeric is always literal
    escaped += c;
  }
  Regex r;
  r.compile(escaped, where);
  return r;
}

void Regex::compile(const std::string& pattern, const std::string& where) {
  where_ = where;
  int err = 0;
  PCRE2_SIZE offset = 0;
  // MULTILINE: in Oniguruma's Ruby syntax ^ and $ are line anchors.
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &offset, nullptr);
  if (!code) {
    throw Error(where + ": invalid regex at offset " + std::to_string(offset) + ": " + pcre2_message(err) +
                " (pattern as given to PCRE2: " + pattern + ")");
  }
  code_.reset(code, [](pcre2_code* c) { pcre2_code_free(c); });
  // The interpreter gives the same matches, only slower, when JIT is unavailable.
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

bool Regex::search(std::string_view text, std::size_t from, bool anchored, RegexScratch& scratch,
                   std::size_t* begin, std::size_t* end) const {
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc;
  const uint32_t options = anchored ? PCRE2_ANCHORED : 0;
  if (jit_ && !anchored) {
    rc = pcre2_jit_match(code_.get(), subject, text.size(), from, options, scratch.match_data(), scratch.context());
  } else {
    rc = pcre2_match(code_.get(), subject, text.size(), from, options | PCRE2_NO_UTF_CHECK, scratch.match_data(),
                     scratch.context());
  }
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    throw Error(where_ + ": regex matching failed on a piece of " + std::to_string(text.size()) +
                " bytes: " + pcre2_message(rc));
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch.match_data());
  *begin = ov[0];
  *end = ov[1];
  return true;
}

bool Regex::matches_at(std::string_view text, std::size_t pos, RegexScratch& scratch) const {
  std::size_t b = 0, e = 0;
  return search(text, pos, true, scratch, &b, &e);
}

}  // namespace ringscan::tok
