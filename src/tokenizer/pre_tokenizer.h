// Pre-tokenizers (Split, ByteLevel; Sequence is flattened at load): cut a
// text segment into the pieces the BPE model sees, exactly as HF's
// PreTokenizedString splits do. Pieces stream depth-first into a sink,
// which gives the same order as HF's stage-by-stage passes because each
// stage works on every piece independently.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace ringscan::tok {

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct PreTokenizerStep {
  enum class Kind { Split, ByteLevel } kind = Kind::Split;
  std::shared_ptr<const Regex> regex;  // Split's pattern, or ByteLevel's GPT-2 regex when use_regex
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
  bool use_regex = false;         // ByteLevel
};

// Working memory for one thread.
struct PreTokenizerScratch {
  std::vector<std::string> prefixed;  // per step: a piece with ByteLevel's prefix space
  RegexScratch regex;
};

// Splits `text` by `regex` according to an HF SplitDelimiterBehavior and
// calls emit(begin, end) for each kept piece, in order, as the matches are
// found (memory stays constant however long the text). The folds are those
// of HF's NormalizedString::split over the (span, is_match) sequence that
// covers the text; each one needs at most one pending piece.
template <class Emit>
void split_stream(std::string_view text, const Regex& regex, SplitBehavior behavior, bool invert,
                  RegexScratch& regex_scratch, Emit&& emit) {
  struct Pending {
    Span span{0, 0};
    bool is_match = false, present = false;
  } pending;
  bool previous_match = false;
  auto flush = [&]() {
    if (pending.present) emit(pending.span.first, pending.span.second);
    pending.present = false;
  };
  auto element = [&](Span span, bool is_match) {
    switch (behavior) {
      case SplitBehavior::Isolated:
        emit(span.first, span.second);
        break;
      case SplitBehavior::Removed:
        if (!is_match) emit(span.first, span.second);
        break;
      case SplitBehavior::Contiguous:
        if (pending.present && is_match == previous_match) {
          pending.span.second = span.second;
        } else {
          flush();
          pending = {span, is_match, true};
        }
        break;
      case SplitBehavior::MergedWithPrevious:
        if (pending.present && is_match && !previous_match) {
          pending.span.second = span.second;
        } else {
          flush();
          pending = {span, is_match, true};
        }
        break;
      case SplitBehavior::MergedWithNext:
        // A match joins the piece after it when that piece is not a match.
        if (pending.present) {
          if (!is_match) {
            emit(pending.span.first, span.second);
            pending.present = false;
            break;
          }
          flush();
        }
        if (is_match) pending = {span, true, true};
        else emit(span.first, span.second);
        break;
    }
    previous_match = is_match;
  };
  std::uint32_t prev = 0;
  regex.for_each_match(text, regex_scratch, [&](std::uint32_t b, std::uint32_t e) {
    if (prev != b) element({prev, b}, invert);
    element({b, e}, !invert);
    prev = e;
  });
  if (prev != text.size()) element({prev, static_cast<std::uint32_t>(text.size())}, invert);
  flush();
}

class PreTokenizer {
 public:
  PreTokenizer() = default;
  explicit PreTokenizer(std::vector<PreTokenizerStep> steps) : steps_(std::move(steps)) {}

  const std::vector<PreTokenizerStep>& steps() const { return steps_; }

  // Calls sink(piece, at, inserted) for every final piece of `segment`, in order: the
  // piece's first `inserted` bytes are a prefix space ByteLevel added (0 or 1), and
  // the rest is segment[at, at + piece.size() - inserted).
  template <class Sink>
  void run(std::string_view segment, PreTokenizerScratch& scratch, Sink&& sink) const {
    if (scratch.prefixed.size() < steps_.size()) scratch.prefixed.resize(steps_.size());
    run_from(0, segment, 0, 0, scratch, sink);
  }

 private:
  template <class Sink>
  void run_from(std::size_t step, std::string_view piece, std::uint32_t at, std::uint32_t inserted,
                PreTokenizerScratch& scratch, Sink& sink) const;

  std::vector<PreTokenizerStep> steps_;
};

template <class Sink>
void PreTokenizer::run_from(std::size_t step, std::string_view piece, std::uint32_t at, std::uint32_t inserted,
                            PreTokenizerScratch& scratch, Sink& sink) const {
  if (piece.empty()) return;  // HF drops empty splits
  if (step == steps_.size()) {
    sink(piece, at, inserted);
    return;
  }
  const PreTokenizerStep& s = steps_[step];
  std::string_view text = piece;
  if (s.kind == PreTokenizerStep::Kind::ByteLevel) {
    if (s.add_prefix_space && piece.front() != ' ') {
      std::string& prefixed = scratch.prefixed[step];
      prefixed.assign(1, ' ');
      prefixed.append(piece);
      text = prefixed;
      inserted = 1;  // a piece starting with an inserted space never gets another
    }
    if (!s.use_regex) {
      // The byte mapping itself is implicit: the model reads raw bytes.
      run_from(step + 1, text, at, inserted, scratch, sink);
      return;
    }
  }
  split_stream(text, *s.regex, s.behavior, s.invert, scratch.regex, [&](std::uint32_t b, std::uint32_t e) {
    const std::uint32_t kept = b < inserted ? std::min(inserted - b, e - b) : 0;
    run_from(step + 1, text.substr(b, e - b), at + (b > inserted ? b - inserted : 0), kept, scratch, sink);
  });
}

}  // namespace ringscan::tok
