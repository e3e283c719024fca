#include "tokenizer/tokenizer.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>

#include "tokenizer/nfc.h"
#include "tokenizer/offset_map.h"
#include "util/sha256.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"
#include "util/error.h"
#include "util/json_util.h"

namespace ringscan {

namespace fs = std::filesystem;

namespace {

std::atomic<std::uint64_t> next_instance_id{1};

// The thread's encoding scratch, rebuilt when the thread moves to another tokenizer.
tok::EncodeState& thread_state(const Tokenizer::Impl& impl) {
  thread_local std::uint64_t owner = 0;
  thread_local std::unique_ptr<tok::EncodeState> state;
  if (!state || owner != impl.instance_id) {
    state = std::make_unique<tok::EncodeState>();
    owner = impl.instance_id;
  }
  return *state;
}

}  // namespace

std::optional<std::int32_t> Tokenizer::Impl::token_to_id(std::string_view token) const {
  const auto it = added_ids.find(std::string(token));
  if (it != added_ids.end()) return it->second;
  const std::int32_t id = model.token_to_id(token);
  if (id >= 0) return id;
  return std::nullopt;
}

void Tokenizer::Impl::encode_into(std::string_view text, bool add_special, tok::EncodeState& st,
                                  std::vector<std::int32_t>& out, tok::TokenOffsets* offsets) const {
  // Specials the post-processor adds stand for no text: [0, 0), as in HF.
  auto specials = [&](const std::vector<std::int32_t>& ids) {
    out.insert(out.end(), ids.begin(), ids.end());
    if (offsets) {
      offsets->begin.resize(out.size(), 0);
      offsets->end.resize(out.size(), 0);
    }
  };
  if (add_special) specials(special_prefix);
  if (!offsets) {
    const std::string_view valid = tok::utf8_sanitize(text, st.sanitized);
    auto to_model = [&](std::string_view piece, std::uint32_t, std::uint32_t) { model.tokenize(piece, st.bpe, out); };
    // Text between raw added tokens: normalize, then find the normalized added tokens.
    auto normalized_segment = [&](std::string_view segment) {
      const std::string_view norm = nfc ? tok::nfc(segment, st.normalized) : segment;
      if (!added.has_normalized()) {
        pre_tokenizer.run(norm, st.pre, to_model);
        return;
      }
      added.split(norm, true, st.pre.regex, st.normalized_splits);
      for (const tok::AddedSplit& s : st.normalized_splits) {
        if (s.id >= 0) out.push_back(s.id);
        else pre_tokenizer.run(norm.substr(s.begin, s.end - s.begin), st.pre, to_model);
      }
    };
    if (!added.has_raw()) {
      normalized_segment(valid);
    } else {
      added.split(valid, false, st.pre.regex, st.raw_splits);
      for (const tok::AddedSplit& s : st.raw_splits) {
        if (s.id >= 0) out.push_back(s.id);
        else normalized_segment(valid.substr(s.begin, s.end - s.begin));
      }
    }
  } else {
    // The same steps, following each piece's position back through every rewrite:
    // normalized text -> its segment (NFC map) -> the valid text -> the input (UTF-8 map).
    tok::OffsetMap valid_map;
    const std::string_view valid = tok::utf8_sanitize(text, st.sanitized, valid_map);
    auto emit = [&](std::int32_t id, std::uint64_t b, std::uint64_t e) {
      out.push_back(id);
      offsets->begin.push_back(valid_map.source_begin(b));
      offsets->end.push_back(std::max(valid_map.source_end(e), offsets->begin.back()));
    };
    auto normalized_segment = [&](std::string_view segment, std::uint64_t seg_at) {
      tok::OffsetMap norm_map;
      const std::string_view norm = nfc ? tok::nfc(segment, st.normalized, norm_map) : segment;
      auto emit_norm = [&](std::int32_t id, std::uint64_t b, std::uint64_t e) {
        if (norm_map.identity()) emit(id, seg_at + b, seg_at + e);
        else emit(id, seg_at + norm_map.source_begin(b), seg_at + norm_map.source_end(e));
      };
      auto run = [&](std::uint32_t sub_at, std::string_view sub) {
        pre_tokenizer.run(sub, st.pre, [&](std::string_view piece, std::uint32_t at, std::uint32_t inserted) {
          st.piece_ids.clear();
          st.spans.clear();
          model.tokenize(piece, st.bpe, st.piece_ids, st.spans);
          // Piece bytes -> segment bytes: the inserted prefix space stands for nothing.
          const std::uint64_t base = std::uint64_t(sub_at) + at;
          auto pos = [&](std::uint32_t x) { return base + (x > inserted ? x - inserted : 0); };
          for (std::size_t k = 0; k < st.piece_ids.size(); ++k)
            emit_norm(st.piece_ids[k], pos(st.spans[k].first), pos(st.spans[k].second));
        });
      };
      if (!added.has_normalized()) {
        run(0, norm);
        return;
      }
      added.split(norm, true, st.pre.regex, st.normalized_splits);
      for (const tok::AddedSplit& s : st.normalized_splits) {
        if (s.id >= 0) emit_norm(s.id, s.begin, s.end);
        else run(s.begin, norm.substr(s.begin, s.end - s.begin));
      }
    };
    if (!added.has_raw()) {
      normalized_segment(valid, 0);
    } else {
      added.split(valid, false, st.pre.regex, st.raw_splits);
      for (const tok::AddedSplit& s : st.raw_splits) {
        if (s.id >= 0) emit(s.id, s.begin, s.end);
        else normalized_segment(valid.substr(s.begin, s.end - s.begin), s.begin);
      }
    }
  }
  if (add_special) specials(special_suffix);
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                               std::string_view generation_config_json, const std::string& origin) {
  auto impl = std::make_shared<Impl>();
  impl->source = origin;
  impl->instance_id = next_instance_id.fetch_add(1);
  impl->sha256 = ringscan::sha256_hex(tokenizer_json);
  parse_tokenizer_json(tokenizer_json, *impl);
  const fs::path dir = fs::path(origin).parent_path();
  if (!tokenizer_config_json.empty()) {
    impl->config_path = (dir / "tokenizer_config.json").string();
    parse_tokenizer_config(tokenizer_config_json, impl->config_path, *impl);
  }
  if (!generation_config_json.empty()) {
    parse_generation_config(generation_config_json, (dir / "generation_config.json").string(), *impl);
  }
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::load(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path.string() + ": no such file or directory (expected a checkpoint "
                                         "directory or a tokenizer.json)");
  const bool is_dir = fs::is_directory(path, ec);
  const fs::path dir = is_dir ? path : path.parent_path();
  const fs::path file = is_dir ? path / "tokenizer.json" : path;
  if (is_dir && !fs::exists(file, ec)) {
    throw Error(path.string() + ": the directory has no tokenizer.json");
  }
  const std::string json = read_text_file(file.string());
  const fs::path config = dir / "tokenizer_config.json";
  const fs::path generation = dir / "generation_config.json";
  const std::string config_text = fs::exists(config, ec) ? read_text_file(config.string()) : std::string();
  const std::string generation_text = fs::exists(generation, ec) ? read_text_file(generation.string()) : std::string();
  return from_json(json, config_text, generation_text, file.string());
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<std::int32_t> out;
  out.reserve(text.size() / 3 + 8);
  impl_->encode_into(text, add_special, thread_state(*impl_), out);
  return out;
}

Tokenizer::Encoding Tokenizer::encode_with_offsets(std::string_view text, bool add_special) const {
  Encoding e;
  tok::TokenOffsets offsets{e.begin, e.end};
  impl_->encode_into(text, add_special, thread_state(*impl_), e.ids, &offsets);
  return e;
}

std::vector<std::vector<std::int32_t>> Tokenizer::encode_many(const std::vector<std::string>& texts,
                                                              bool add_special, int threads) const {
  std::vector<std::vector<std::int32_t>> out(texts.size());
  const int n = threads > 0 ? threads : omp_get_max_threads();
  std::exception_ptr error;
  std::atomic<bool> failed{false};
#pragma omp parallel for schedule(dynamic, 1) num_threads(n)
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (failed.load(std::memory_order_relaxed)) continue;
    try {
      out[i] = encode(texts[i], add_special);
    } catch (...) {
#pragma omp critical(ringscan_tokenizer_error)
      {
        if (!error) error = std::current_exception();
      }
      failed = true;
    }
  }
  if (error) std::rethrow_exception(error);
  return out;
}

std::string Tokenizer::decode(const std::vector<std::int32_t>& ids, bool skip_special) const {
  const Impl& im = *impl_;
  for (std::int32_t id : ids) {
    if (id < 0 || id >= im.vocab_size || !im.id_known[id]) {
      throw Error("decode: id " + std::to_string(id) + " is not in the vocabulary of " + im.source + " (" +
                  std::to_string(im.vocab_size) + " ids)");
    }
  }
  if (im.decoder.is_plain_byte_level()) {
    std::string bytes;
    bytes.reserve(ids.size() * 4);
    for (std::int32_t id : ids) {
      if (skip_special && im.id_special[id]) continue;
      bytes += im.byte_level_bytes[id];
    }
    std::string scratch;
    const std::string_view valid = tok::utf8_sanitize(bytes, scratch);
    return valid.data() == bytes.data() ? bytes : scratch;
  }
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (std::int32_t id : ids) {
    if (skip_special && im.id_special[id]) continue;
    tokens.push_back(im.id_to_string[id]);
  }
  return im.decoder.decode(std::move(tokens));
}

std::int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const { return impl_->token_to_id(token); }

std::optional<std::string> Tokenizer::id_to_token(std::int32_t id) const {
  if (id < 0 || id >= impl_->vocab_size || !impl_->id_known[id]) return std::nullopt;
  return impl_->id_to_string[id];
}

bool Tokenizer::is_special(std::int32_t id) const {
  return id >= 0 && id < impl_->vocab_size && impl_->id_special[id];
}

std::optional<std::int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<std::int32_t> Tokenizer::pad_id() const { return impl_->pad; }
std::optional<std::int32_t> Tokenizer::unk_id() const { return impl_->unk; }
std::vector<std::int32_t> Tokenizer::eos_ids() const { return impl_->eos_ids; }

bool Tokenizer::add_bos() const {
  if (impl_->add_bos_token) return *impl_->add_bos_token;
  return impl_->bos && !impl_->special_prefix.empty() && impl_->special_prefix.front() == *impl_->bos;
}

const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
const std::string& Tokenizer::config_path() const { return impl_->config_path; }

std::vector<std::int32_t> Tokenizer::chat_template_special_ids() const {
  std::vector<std::int32_t> ids;
  if (impl_->chat_template.empty()) return ids;
  for (const auto& t : impl_->added.tokens()) {
    if (t.special && impl_->chat_template.find(t.content) != std::string::npos) ids.push_back(t.id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

const std::string& Tokenizer::hash() const { return impl_->sha256; }
const std::string& Tokenizer::source() const { return impl_->source; }

}  // namespace ringscan
