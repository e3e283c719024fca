// PCRE2 (UTF + UCP, JIT) running the Oniguruma patterns of HF tokenizer.json
// files. HF compiles Split patterns with Oniguruma; where the two engines
// define an escape differently it is translated (\s is White_Space in
// Oniguruma, PCRE2 adds U+180E) or rejected with a clear message (\w, \b).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct pcre2_real_code_8;
struct pcre2_real_match_data_8;
struct pcre2_real_jit_stack_8;
struct pcre2_real_match_context_8;

namespace ringscan::tok {

using Span = std::pair<std::uint32_t, std::uint32_t>;  // [begin, end) byte offsets

// Per-thread matching state; one serves every Regex.
class RegexScratch {
 public:
  RegexScratch();
  ~RegexScratch();
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;

  pcre2_real_match_data_8* match_data() const { return match_data_; }
  pcre2_real_match_context_8* context() const { return context_; }

 private:
  pcre2_real_match_data_8* match_data_ = nullptr;
  pcre2_real_jit_stack_8* jit_stack_ = nullptr;
  pcre2_real_match_context_8* context_ = nullptr;
};

// Translates an Oniguruma (Ruby syntax) pattern into PCRE2 syntax; throws
// ringscan::Error naming `where` for constructs the engines disagree on.
std::string onig_to_pcre2(std::string_view pattern, const std::string& where);

class Regex {
 public:
  // `pattern` in Oniguruma syntax; `where` names it in error messages.
  Regex(std::string_view pattern, const std::string& where);
  // A pattern matching `text` literally (HF's Split {"String": ...}).
  static Regex literal(std::string_view text, const std::string& where);

  // Calls f(begin, end) for each match in `text` (valid UTF-8), iterated like
  // the onig crate's find_iter that HF uses: an empty match right at the end
  // of the previous match is skipped by advancing one character. `f` may run
  // other regexes with the same scratch (offsets are copied out first).
  template <class F>
  void for_each_match(std::string_view text, RegexScratch& scratch, F&& f) const;

  // All matches, appended to `out` (for tests and small inputs).
  void find_all(std::string_view text, RegexScratch& scratch, std::vector<Span>& out) const {
    for_each_match(text, scratch, [&](std::uint32_t b, std::uint32_t e) { out.emplace_back(b, e); });
  }

  // Whether the pattern matches at text[pos] (anchored there).
  bool matches_at(std::string_view text, std::size_t pos, RegexScratch& scratch) const;

 private:
  Regex() = default;
  void compile(const std::string& pcre2_pattern, const std::string& where);
  bool search(std::string_view text, std::size_t from, bool anchored, RegexScratch& scratch,
              std::size_t* begin, std::size_t* end) const;

  std::shared_ptr<pcre2_real_code_8> code_;
  bool jit_ = false;
  std::string where_;
};

template <class F>
void Regex::for_each_match(std::string_view text, RegexScratch& scratch, F&& f) const {
  std::size_t pos = 0;
  std::size_t last_match_end = static_cast<std::size_t>(-1);
  while (pos <= text.size()) {
    std::size_t b = 0, e = 0;
    if (!search(text, pos, false, scratch, &b, &e)) break;
    if (b == e && last_match_end == e) {
      // Same rule as the onig crate: step over one character and retry.
      if (pos >= text.size()) break;
      const auto lead = static_cast<unsigned char>(text[pos]);
      pos += lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
      continue;
    }
    pos = e;
    last_match_end = e;
    f(static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e));
  }
}

}  // namespace ringscan::tok
