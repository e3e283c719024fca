// tokenizer_config.json (special tokens, add_bos_token, chat template) and
// generation_config.json (eos_token_id) of a checkpoint.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer_impl.h"
#include "util/error.h"

namespace ringscan {

namespace {

using nlohmann::json;

json parse_object(std::string_view text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e400
    throw Error(origin + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) throw Error(origin + ": expected a JSON object at the top level");
  return j;
}

// A special-token field: "<s>", {"content": "<s>", ...} (AddedToken form) or null.
std::optional<std::int32_t> special_token(const json& config, const char* key, const std::string& origin,
                                          const Tokenizer::Impl& impl) {
  if (!config.contains(key) || config[key].is_null()) return std::nullopt;
  const json& v = config[key];
  std::string content;
  if (v.is_string()) {
    content = v.get<std::string>();
  } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    content = v["content"].get<std::string>();
  } else {
    throw Error(origin + ": " + key + " must be a string, an object with \"content\", or null; got " + v.dump());
  }
  const std::optional<std::int32_t> id = impl.token_to_id(content);
  if (!id) throw Error(origin + ": " + key + " \"" + content + "\" is not a token of " + impl.source);
  return id;
}

void add_eos(Tokenizer::Impl& impl, std::int32_t id) {
  if (std::find(impl.eos_ids.begin(), impl.eos_ids.end(), id) == impl.eos_ids.end()) impl.eos_ids.push_back(id);
}

}  // namespace

void parse_tokenizer_config(std::string_view config_text, const std::string& origin, Tokenizer::Impl& impl) {
  const json config = parse_object(config_text, origin);
  impl.bos = special_token(config, "bos_token", origin, impl);
  impl.eos = special_token(config, "eos_token", origin, impl);
  impl.pad = special_token(config, "pad_token", origin, impl);
  impl.unk = special_token(config, "unk_token", origin, impl);
  if (impl.eos) add_eos(impl, *impl.eos);
  if (config.contains("add_bos_token") && !config["add_bos_token"].is_null()) {
    if (!config["add_bos_token"].is_boolean()) throw Error(origin + ": add_bos_token must be true or false");
    impl.add_bos_token = config["add_bos_token"].get<bool>();
  }
  if (config.contains("chat_template") && !config["chat_template"].is_null()) {
    const json& t = config["chat_template"];
    if (t.is_string()) {
      impl.chat_template = t.get<std::string>();
    } else if (t.is_array()) {
      // Named templates: [{"name": "default", "template": "..."}, ...]; use "default", else the first.
      const json* chosen = nullptr;
      for (const json& e : t) {
        if (!e.is_object() || !e.contains("name") || !e.contains("template") || !e["template"].is_string()) {
          throw Error(origin + ": chat_template entries must be {\"name\": ..., \"template\": \"...\"}");
        }
        if (!chosen || e["name"] == "default") chosen = &e;
        if (e["name"] == "default") break;
      }
      if (chosen) impl.chat_template = (*chosen)["template"].get<std::string>();
    } else {
      throw Error(origin + ": chat_template must be a string or a list of named templates");
    }
  }
}

void parse_generation_config(std::string_view config_text, const std::string& origin, Tokenizer::Impl& impl) {
  const json config = parse_object(config_text, origin);
  if (!config.contains("eos_token_id") || config["eos_token_id"].is_null()) return;
  const json& v = config["eos_token_id"];
  auto take = [&](const json& e) {
    if (!e.is_number_integer() || e.get<std::int64_t>() < 0 || e.get<std::int64_t>() >= impl.vocab_size) {
      throw Error(origin + ": eos_token_id must hold ids below the vocabulary size " +
                  std::to_string(impl.vocab_size) + "; got " + e.dump());
    }
    add_eos(impl, static_cast<std::int32_t>(e.get<std::int64_t>()));
  };
  if (v.is_array()) {
    for (const json& e : v) take(e);
  } else {
    take(v);
  }
}

}  // namespace ringscan
