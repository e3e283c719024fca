// tokenizer.json -> Tokenizer::Impl. Every unsupported or malformed field
// fails with one sentence naming the file, the field and what was expected.
#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "tokenizer/byte_level.h"
#include "tokenizer/nfc.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace ringscan {

namespace {

using nlohmann::json;
using tok::PreTokenizerStep;

// The regex HF's ByteLevel pre-tokenizer applies when use_regex is true (GPT-2's).
constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class Parser {
 public:
  Parser(std::string_view text, Tokenizer::Impl& impl) : impl_(impl), file_(impl.source) {
    try {
      root_ = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e400
      throw Error(file_ + ": not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!root_.is_object()) throw Error(file_ + ": expected a JSON object at the top level");
  }

  void run() {
    parse_normalizer(value("normalizer"), "normalizer");
    parse_pre_tokenizer(value("pre_tokenizer"), "pre_tokenizer");
    check_byte_level_last();
    parse_model();
    parse_added_tokens();
    build_id_tables();
    parse_post_processor(value("post_processor"), "post_processor");
    parse_decoder();
  }

 private:
  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw Error(file_ + ": " + field + " " + what);
  }

  const json& value(const char* key) const {
    static const json null_value;
    return root_.contains(key) ? root_[key] : null_value;
  }

  std::string type_of(const json& j, const std::string& field) const {
    if (!j.is_object()) fail(field, "must be an object with a \"type\"");
    if (!j.contains("type") || !j["type"].is_string()) fail(field, "has no \"type\" string");
    return j["type"].get<std::string>();
  }

  bool get_bool(const json& j, const char* key, const std::string& field, bool fallback) const {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_boolean()) fail(field + "." + key, "must be true or false");
    return j[key].get<bool>();
  }

  std::string get_string(const json& j, const char* key, const std::string& field) const {
    if (!j.contains(key) || !j[key].is_string()) fail(field + "." + key, "must be a string");
    return j[key].get<std::string>();
  }

  std::int64_t get_uint(const json& j, const char* key, const std::string& field) const {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<std::int64_t>() < 0) {
      fail(field + "." + key, "must be a non-negative integer");
    }
    return j[key].get<std::int64_t>();
  }

  std::int64_t added_token_count() const {
    const json& a = value("added_tokens");
    return a.is_array() ? static_cast<std::int64_t>(a.size()) : 0;
  }

  // Id tables are indexed by id, so ids must be dense: HF's vocabularies number
  // their entries and added tokens 0..n-1 (added tokens may reuse vocab ids). A
  // stray huge id would otherwise allocate gigabytes before anything else fails.
  void check_dense(std::int64_t id, const std::string& field) const {
    const std::int64_t limit = vocab_entries_ + added_token_count();
    if (id >= limit || id > INT32_MAX) {
      fail(field, "is id " + std::to_string(id) + ", but model.vocab has " + std::to_string(vocab_entries_) +
           " entries and added_tokens " + std::to_string(added_token_count()) + ", so ids must be below " +
           std::to_string(limit));
    }
  }

  void parse_normalizer(const json& j, const std::string& field) {
    if (j.is_null()) return;
    const std::string type = type_of(j, field);
    if (type == "NFC") {
      impl_.nfc = true;
    } else if (type == "Sequence") {
      if (!j.contains("normalizers") || !j["normalizers"].is_array()) fail(field + ".normalizers", "must be an array");
      for (std::size_t i = 0; i < j["normalizers"].size(); ++i) {
        parse_normalizer(j["normalizers"][i], field + ".normalizers[" + std::to_string(i) + "]");
      }
    } else {
      fail(field, "has type \"" + type + "\", which ringscan does not support (supported: NFC, Sequence)");
    }
  }

  tok::SplitBehavior parse_behavior(const json& j, const std::string& field) const {
    std::string b = get_string(j, "behavior", field);
    std::string key;
    for (char c : b) {
      if (c != '_') key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (key == "removed") return tok::SplitBehavior::Removed;
    if (key == "isolated") return tok::SplitBehavior::Isolated;
    if (key == "mergedwithprevious") return tok::SplitBehavior::MergedWithPrevious;
    if (key == "mergedwithnext") return tok::SplitBehavior::MergedWithNext;
    if (key == "contiguous") return tok::SplitBehavior::Contiguous;
    fail(field + ".behavior", "is \"" + b + "\"; expected Removed, Isolated, MergedWithPrevious, MergedWithNext "
         "or Contiguous");
  }

  void parse_pre_tokenizer(const json& j, const std::string& field) {
    if (j.is_null()) return;
    const std::string type = type_of(j, field);
    if (type == "Sequence") {
      if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) {
        fail(field + ".pretokenizers", "must be an array");
      }
      for (std::size_t i = 0; i < j["pretokenizers"].size(); ++i) {
        parse_pre_tokenizer(j["pretokenizers"][i], field + ".pretokenizers[" + std::to_string(i) + "]");
      }
    } else if (type == "Split") {
      PreTokenizerStep s;
      s.kind = PreTokenizerStep::Kind::Split;
      if (!j.contains("pattern") || !j["pattern"].is_object()) {
        fail(field + ".pattern", "must be {\"Regex\": ...} or {\"String\": ...}");
      }
      const json& p = j["pattern"];
      const std::string where = file_ + ": " + field + ".pattern";
      if (p.contains("Regex") && p["Regex"].is_string()) {
        s.regex = std::make_shared<tok::Regex>(p["Regex"].get<std::string>(), where);
      } else if (p.contains("String") && p["String"].is_string()) {
        const std::string lit = p["String"].get<std::string>();
        if (lit.empty()) fail(field + ".pattern.String", "is empty");
        s.regex = std::make_shared<tok::Regex>(tok::Regex::literal(lit, where));
      } else {
        fail(field + ".pattern", "must be {\"Regex\": \"...\"} or {\"String\": \"...\"}");
      }
      s.behavior = parse_behavior(j, field);
      s.invert = get_bool(j, "invert", field, false);
      steps_.push_back(std::move(s));
      step_fields_.push_back(field);
    } else if (type == "ByteLevel") {
      PreTokenizerStep s;
      s.kind = PreTokenizerStep::Kind::ByteLevel;
      s.add_prefix_space = get_bool(j, "add_prefix_space", field, true);
      s.use_regex = get_bool(j, "use_regex", field, true);
      s.behavior = tok::SplitBehavior::Isolated;
      if (s.use_regex) s.regex = gpt2_regex();
      steps_.push_back(std::move(s));
      step_fields_.push_back(field);
    } else {
      fail(field, "has type \"" + type + "\", which ringscan does not support (supported: Split, ByteLevel, "
           "Sequence)");
    }
  }

  std::shared_ptr<const tok::Regex> gpt2_regex() {
    if (!gpt2_) gpt2_ = std::make_shared<tok::Regex>(kGpt2Regex, file_ + ": ByteLevel regex");
    return gpt2_;
  }

  void check_byte_level_last() {
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      if (steps_[i].kind != PreTokenizerStep::Kind::ByteLevel) continue;
      if (i + 1 != steps_.size()) {
        fail(step_fields_[i], "is a ByteLevel pre-tokenizer followed by " + step_fields_[i + 1] +
             "; ringscan supports ByteLevel only as the last pre-tokenizer");
      }
      byte_level_ = true;
    }
    impl_.pre_tokenizer = tok::PreTokenizer(std::move(steps_));
  }

  void parse_model() {
    const json& m = value("model");
    if (m.is_null()) fail("model", "is missing");
    const std::string type = type_of(m, "model");
    if (type != "BPE") fail("model.type", "is \"" + type + "\"; ringscan supports only \"BPE\"");
    if (m.contains("dropout") && !m["dropout"].is_null()) {
      if (!m["dropout"].is_number()) fail("model.dropout", "must be a number or null");
      if (m["dropout"].get<double>() != 0.0) {
        fail("model.dropout", "is " + m["dropout"].dump() + "; BPE dropout makes ids random, use null");
      }
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (m.contains(key) && !m[key].is_null() && !(m[key].is_string() && m[key].get<std::string>().empty())) {
        fail(std::string("model.") + key, "is set; ringscan supports only byte-level BPE without it (use null)");
      }
    }
    tok::BpeOptions options;
    options.byte_level = byte_level_;
    options.ignore_merges = get_bool(m, "ignore_merges", "model", false);
    options.byte_fallback = get_bool(m, "byte_fallback", "model", false);
    options.fuse_unk = get_bool(m, "fuse_unk", "model", false);
    if (m.contains("unk_token") && !m["unk_token"].is_null()) {
      if (!m["unk_token"].is_string()) fail("model.unk_token", "must be a string or null");
      options.unk_token = m["unk_token"].get<std::string>();
    }
    if (!m.contains("vocab") || !m["vocab"].is_object()) fail("model.vocab", "must be an object of token: id");
    vocab_entries_ = static_cast<std::int64_t>(m["vocab"].size());
    std::vector<std::pair<std::string, std::int32_t>> vocab;
    vocab.reserve(m["vocab"].size());
    for (const auto& [token, id] : m["vocab"].items()) {
      if (!id.is_number_integer() || id.get<std::int64_t>() < 0) {
        fail("model.vocab[\"" + token + "\"]", "must be a non-negative integer id, got " + id.dump());
      }
      check_dense(id.get<std::int64_t>(), "model.vocab[\"" + token + "\"]");
      vocab.emplace_back(token, static_cast<std::int32_t>(id.get<std::int64_t>()));
    }
    if (!m.contains("merges") || !m["merges"].is_array()) {
      fail("model.merges", "must be an array of \"a b\" strings or [\"a\", \"b\"] pairs");
    }
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(m["merges"].size());
    for (std::size_t i = 0; i < m["merges"].size(); ++i) {
      const json& e = m["merges"][i];
      const std::string field = "model.merges[" + std::to_string(i) + "]";
      if (e.is_string()) {
        const std::string s = e.get<std::string>();
        const std::size_t space = s.find(' ');
        if (space == std::string::npos) fail(field, "\"" + s + "\" is not two tokens separated by a space");
        merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else {
        fail(field, "must be an \"a b\" string or an [\"a\", \"b\"] pair, got " + e.dump());
      }
    }
    impl_.model = tok::BpeModel(vocab, merges, std::move(options), file_);
  }

  void parse_added_tokens() {
    const json& a = value("added_tokens");
    std::vector<tok::AddedToken> tokens;
    if (!a.is_null()) {
      if (!a.is_array()) fail("added_tokens", "must be an array");
      std::unordered_set<std::string> seen;
      for (std::size_t i = 0; i < a.size(); ++i) {
        const std::string field = "added_tokens[" + std::to_string(i) + "]";
        const json& e = a[i];
        if (!e.is_object()) fail(field, "must be an object");
        tok::AddedToken t;
        const std::int64_t id = get_uint(e, "id", field);
        check_dense(id, field + ".id");
        t.id = static_cast<std::int32_t>(id);
        t.content = get_string(e, "content", field);
        t.single_word = get_bool(e, "single_word", field, false);
        t.lstrip = get_bool(e, "lstrip", field, false);
        t.rstrip = get_bool(e, "rstrip", field, false);
        t.special = get_bool(e, "special", field, false);
        t.normalized = get_bool(e, "normalized", field, !t.special);
        if (t.content.empty()) continue;  // HF ignores empty tokens
        if (!tok::utf8_is_valid(t.content)) fail(field + ".content", "is not valid UTF-8");
        if (!seen.insert(t.content).second) fail(field, "repeats the token \"" + t.content + "\"");
        const std::int32_t in_model = impl_.model.token_to_id(t.content);
        if (in_model >= 0 && in_model != t.id) {
          fail(field, "gives \"" + t.content + "\" id " + std::to_string(t.id) + " but model.vocab has it as id " +
               std::to_string(in_model));
        }
        tokens.push_back(std::move(t));
      }
    }
    const bool nfc = impl_.nfc;
    impl_.added = tok::AddedVocabulary(std::move(tokens), [nfc](const std::string& s) {
      if (!nfc) return s;
      std::string scratch;
      return std::string(tok::nfc(s, scratch));
    });
  }

  void build_id_tables() {
    const auto& model_tokens = impl_.model.id_to_token();
    std::int32_t size = static_cast<std::int32_t>(model_tokens.size());
    for (const auto& t : impl_.added.tokens()) size = std::max(size, t.id + 1);
    impl_.vocab_size = size;
    impl_.id_to_string.assign(size, std::string());
    impl_.id_known.assign(size, false);
    impl_.id_special.assign(size, false);
    for (std::size_t i = 0; i < model_tokens.size(); ++i) {
      impl_.id_to_string[i] = model_tokens[i];
      impl_.id_known[i] = impl_.model.token_to_id(model_tokens[i]) == static_cast<std::int32_t>(i);
    }
    for (const auto& t : impl_.added.tokens()) {
      impl_.id_to_string[t.id] = t.content;
      impl_.id_known[t.id] = true;
      impl_.added_ids.emplace(t.content, t.id);
      if (t.special) impl_.special_contents.insert(t.content);
    }
    for (std::int32_t i = 0; i < size; ++i) {
      impl_.id_special[i] = impl_.id_known[i] && impl_.special_contents.count(impl_.id_to_string[i]) > 0;
    }
  }

  std::int32_t checked_id(const json& j, const std::string& field) const {
    if (!j.is_number_integer() || j.get<std::int64_t>() < 0 || j.get<std::int64_t>() >= impl_.vocab_size ||
        !impl_.id_known[j.get<std::int64_t>()]) {
      fail(field, "must be an id of the vocabulary, got " + j.dump());
    }
    return static_cast<std::int32_t>(j.get<std::int64_t>());
  }

  void parse_template(const json& j, const std::string& field) {
    if (!j.contains("single") || !j["single"].is_array()) fail(field + ".single", "must be an array");
    const json& specials = j.contains("special_tokens") ? j["special_tokens"] : json::object();
    if (!specials.is_object()) fail(field + ".special_tokens", "must be an object");
    std::vector<std::int32_t> prefix, suffix;
    bool seen_a = false;
    for (std::size_t i = 0; i < j["single"].size(); ++i) {
      const json& piece = j["single"][i];
      const std::string pf = field + ".single[" + std::to_string(i) + "]";
      if (piece.is_object() && piece.contains("Sequence")) {
        const json& seq = piece["Sequence"];
        if (!seq.is_object() || !seq.contains("id") || seq["id"] != "A") {
          fail(pf, "must refer to sequence \"A\" in a single-sequence template");
        }
        if (seen_a) fail(pf, "repeats sequence \"A\"");
        seen_a = true;
      } else if (piece.is_object() && piece.contains("SpecialToken")) {
        const json& st = piece["SpecialToken"];
        if (!st.is_object() || !st.contains("id") || !st["id"].is_string()) fail(pf + ".SpecialToken.id", "must be a string");
        const std::string name = st["id"].get<std::string>();
        if (!specials.contains(name)) fail(pf, "uses special token \"" + name + "\", which special_tokens does not define");
        const json& def = specials[name];
        if (!def.is_object() || !def.contains("ids") || !def["ids"].is_array()) {
          fail(field + ".special_tokens[\"" + name + "\"].ids", "must be an array of ids");
        }
        for (std::size_t k = 0; k < def["ids"].size(); ++k) {
          const std::int32_t id = checked_id(def["ids"][k], field + ".special_tokens[\"" + name + "\"].ids[" +
                                                                std::to_string(k) + "]");
          (seen_a ? suffix : prefix).push_back(id);
        }
      } else {
        fail(pf, "must be {\"SpecialToken\": ...} or {\"Sequence\": ...}, got " + piece.dump());
      }
    }
    if (!seen_a) fail(field + ".single", "does not contain the sequence \"A\"");
    // Applied after earlier processors: this template wraps their output.
    impl_.special_prefix.insert(impl_.special_prefix.begin(), prefix.begin(), prefix.end());
    impl_.special_suffix.insert(impl_.special_suffix.end(), suffix.begin(), suffix.end());
  }

  void parse_post_processor(const json& j, const std::string& field) {
    if (j.is_null()) return;
    impl_.has_post_processor = true;
    const std::string type = type_of(j, field);
    if (type == "TemplateProcessing") {
      parse_template(j, field);
    } else if (type == "ByteLevel") {
      // Only trims offsets: ids are unchanged.
    } else if (type == "Sequence") {
      if (!j.contains("processors") || !j["processors"].is_array()) fail(field + ".processors", "must be an array");
      for (std::size_t i = 0; i < j["processors"].size(); ++i) {
        parse_post_processor(j["processors"][i], field + ".processors[" + std::to_string(i) + "]");
      }
    } else {
      fail(field, "has type \"" + type + "\", which ringscan does not support (supported: TemplateProcessing, "
           "ByteLevel, Sequence)");
    }
  }

  void parse_decoder_into(const json& j, const std::string& field, std::vector<tok::DecoderStep>& steps) {
    const std::string type = type_of(j, field);
    tok::DecoderStep s;
    if (type == "ByteLevel") {
      s.kind = tok::DecoderStep::Kind::ByteLevel;
    } else if (type == "ByteFallback") {
      s.kind = tok::DecoderStep::Kind::ByteFallback;
    } else if (type == "Fuse") {
      s.kind = tok::DecoderStep::Kind::Fuse;
    } else if (type == "Strip") {
      s.kind = tok::DecoderStep::Kind::Strip;
      const std::string content = get_string(j, "content", field);
      std::size_t len = 0;
      if (content.empty() || !tok::utf8_is_valid(content) ||
          (tok::utf8_decode_at(content, 0, &len), len != content.size())) {
        fail(field + ".content", "must be a single character");
      }
      s.strip_content = tok::utf8_decode_at(content, 0, &len);
      s.strip_start = static_cast<std::size_t>(get_uint(j, "start", field));
      s.strip_stop = static_cast<std::size_t>(get_uint(j, "stop", field));
    } else if (type == "Replace") {
      s.kind = tok::DecoderStep::Kind::Replace;
      if (!j.contains("pattern") || !j["pattern"].is_object() || !j["pattern"].contains("String") ||
          !j["pattern"]["String"].is_string()) {
        fail(field + ".pattern", "must be {\"String\": \"...\"} (regex patterns are not supported in decoders)");
      }
      s.replace_pattern = j["pattern"]["String"].get<std::string>();
      s.replace_content = get_string(j, "content", field);
    } else if (type == "Sequence") {
      if (!j.contains("decoders") || !j["decoders"].is_array()) fail(field + ".decoders", "must be an array");
      for (std::size_t i = 0; i < j["decoders"].size(); ++i) {
        parse_decoder_into(j["decoders"][i], field + ".decoders[" + std::to_string(i) + "]", steps);
      }
      return;
    } else {
      fail(field, "has type \"" + type + "\", which ringscan does not support (supported: ByteLevel, "
           "ByteFallback, Fuse, Strip, Replace, Sequence)");
    }
    steps.push_back(std::move(s));
  }

  void parse_decoder() {
    const json& j = value("decoder");
    if (j.is_null()) {
      impl_.decoder = tok::Decoder(false, {});
      return;
    }
    std::vector<tok::DecoderStep> steps;
    parse_decoder_into(j, "decoder", steps);
    impl_.decoder = tok::Decoder(true, std::move(steps));
    if (impl_.decoder.is_plain_byte_level()) {
      const tok::ByteLevelTable& bl = tok::ByteLevelTable::get();
      impl_.byte_level_bytes.assign(impl_.vocab_size, std::string());
      std::string raw;
      for (std::int32_t id = 0; id < impl_.vocab_size; ++id) {
        const std::string& t = impl_.id_to_string[id];
        impl_.byte_level_bytes[id] = bl.to_bytes(t, raw) ? raw : t;
      }
    }
  }

  Tokenizer::Impl& impl_;
  const std::string file_;
  json root_;
  std::vector<PreTokenizerStep> steps_;
  std::vector<std::string> step_fields_;
  std::shared_ptr<const tok::Regex> gpt2_;
  bool byte_level_ = false;
  std::int64_t vocab_entries_ = 0;  // in model.vocab (ids must be below this plus the added tokens)
};

}  // namespace

void parse_tokenizer_json(std::string_view json_text, Tokenizer::Impl& impl) {
  Parser(json_text, impl).run();
}

}  // namespace ringscan
