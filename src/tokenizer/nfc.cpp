#include "tokenizer/nfc.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <vector>

#include "tokenizer/offset_map.h"
#include "tokenizer/utf8.h"

#include "tokenizer/unicode_nfc_tables.inc"

namespace ringscan::tok {

namespace {

// Hangul syllables decompose and compose arithmetically (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

unsigned combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto& t = nfc_data::kCombiningClass;
  const auto it = std::lower_bound(std::begin(t), std::end(t), cp,
                                   [](const std::uint32_t(&e)[2], char32_t c) { return e[0] < c; });
  return (it != std::end(t) && (*it)[0] == cp) ? (*it)[1] : 0;
}

void decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (cp >= 0xC0) {
    const auto& t = nfc_data::kDecompositionIndex;
    const auto it = std::lower_bound(std::begin(t), std::end(t), cp,
                                     [](const std::uint32_t(&e)[3], char32_t c) { return e[0] < c; });
    if (it != std::end(t) && (*it)[0] == cp) {
      for (std::uint32_t k = 0; k < (*it)[2]; ++k) out.push_back(nfc_data::kDecompositionData[(*it)[1] + k]);
      return;
    }
  }
  out.push_back(cp);
}

// The primary composite of (a, b), or 0.
char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const auto& t = nfc_data::kComposition;
  const auto it = std::lower_bound(std::begin(t), std::end(t), std::pair<char32_t, char32_t>(a, b),
                                   [](const std::uint32_t(&e)[3], std::pair<char32_t, char32_t> k) {
                                     return e[0] < k.first || (e[0] == k.first && e[1] < k.second);
                                   });
  return (it != std::end(t) && (*it)[0] == a && (*it)[1] == b) ? (*it)[2] : 0;
}

// Whether `cp` appears as the second character of a canonical composition (then it
// may combine with what precedes it, even as a starter).
bool composes_with_previous(char32_t cp) {
  if (cp >= kVBase && cp < kVBase + kVCount) return true;
  if (cp > kTBase && cp < kTBase + kTCount) return true;
  static const std::vector<char32_t> seconds = [] {
    std::vector<char32_t> v;
    for (const auto& e : nfc_data::kComposition) v.push_back(e[1]);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  }();
  return std::binary_search(seconds.begin(), seconds.end(), cp);
}

// Whether NFC of a text equals NFC of its part before `cp` joined with NFC of the
// rest: `cp` decomposes to a starter that nothing before it can compose with.
bool nfc_boundary_before(char32_t cp, std::vector<char32_t>& scratch) {
  scratch.clear();
  decompose(cp, scratch);
  return combining_class(scratch.front()) == 0 && !composes_with_previous(scratch.front());
}

}  // namespace

std::string_view nfc(std::string_view s, std::string& scratch, OffsetMap& map) {
  const std::string_view whole = nfc(s, scratch);
  if (whole.data() == s.data()) {
    map.copied(s.size());
    return s;
  }
  // Normalize chunk by chunk, cut where NFC cannot join across, so that each rewritten
  // chunk maps back to its own source characters.
  std::string out, piece;
  std::vector<char32_t> cps;
  std::size_t chunk = 0;
  auto finish_chunk = [&](std::size_t end) {
    const std::string_view src = s.substr(chunk, end - chunk);
    const std::string_view norm = nfc(src, piece);
    if (norm.data() == src.data()) map.copied(src.size());
    else map.rewritten(norm.size(), src.size());
    out.append(norm);
    chunk = end;
  };
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 0;
    const char32_t cp = utf8_decode_at(s, i, &len);
    if (i > chunk && nfc_boundary_before(cp, cps)) finish_chunk(i);
    i += len;
  }
  finish_chunk(s.size());
  scratch = std::move(out);
  return scratch;
}

const char* nfc_unicode_version() { return nfc_data::kUnicodeVersion; }

std::string_view nfc(std::string_view s, std::string& scratch) {
  // Text made only of code points below U+0300 is already in NFC: those are
  // starters that nothing in the text can combine with. U+0300 starts 0xCC.
  if (std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0xCC; })) {
    return s;
  }
  std::vector<char32_t> cps;
  cps.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 0;
    const char32_t cp = utf8_decode_at(s, i, &len);
    decompose(cp, cps);
    i += len;
  }
  // Canonical ordering: stable sort of each run of non-starters by class.
  std::vector<unsigned> ccc(cps.size());
  for (std::size_t i = 0; i < cps.size(); ++i) ccc[i] = combining_class(cps[i]);
  for (std::size_t i = 0; i < cps.size();) {
    if (ccc[i] == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < cps.size() && ccc[j] != 0) ++j;
    for (std::size_t a = i + 1; a < j; ++a) {  // insertion sort: runs are short
      for (std::size_t b = a; b > i && ccc[b - 1] > ccc[b]; --b) {
        std::swap(ccc[b - 1], ccc[b]);
        std::swap(cps[b - 1], cps[b]);
      }
    }
    i = j;
  }
  // Canonical composition: a character combines with the last starter unless
  // a character in between has class 0 or a class >= its own (is "blocked").
  std::vector<char32_t> out;
  out.reserve(cps.size());
  std::ptrdiff_t starter = -1;
  unsigned last_class = 0;  // class of the last character kept after the starter
  for (std::size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    const unsigned k = ccc[i];
    if (starter >= 0) {
      const bool adjacent = static_cast<std::size_t>(starter) + 1 == out.size();
      if (adjacent || (last_class != 0 && last_class < k)) {
        const char32_t composite = compose(out[starter], c);
        if (composite != 0) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (k == 0) {
      starter = static_cast<std::ptrdiff_t>(out.size());
      last_class = 0;
    } else {
      last_class = k;
    }
    out.push_back(c);
  }
  scratch.clear();
  scratch.reserve(s.size());
  for (char32_t c : out) utf8_append(scratch, c);
  if (scratch == s) return s;
  return scratch;
}

}  // namespace ringscan::tok
