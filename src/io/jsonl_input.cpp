#include "io/jsonl_input.h"

#include <memory>

#include "util/error.h"
#include "util/json_util.h"

namespace ringscan::io {

std::vector<Document> jsonl_documents(const std::string& source, const std::string& text, const JsonlFields& fields,
                                      std::vector<SkippedFile>* skipped) {
  std::vector<Document> docs;
  size_t pos = 0;
  for (int line_no = 1; pos < text.size(); ++line_no) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = source + " line " + std::to_string(line_no);
    Json record;
    try {
      record = Json::parse(line);
    } catch (const Json::exception& e) {
      throw Error(where + " is not JSON (" + e.what() + "); expected one JSON object per line");
    }
    if (!record.is_object()) throw Error(where + " is not a JSON object; expected one object per line");
    const auto t = record.find(fields.text);
    if (t == record.end())
      throw Error(where + " has no \"" + fields.text + "\" field; name the text field with --jsonl-text");
    if (!t->is_string()) throw Error(where + ": field \"" + fields.text + "\" is not a string");
    std::string name = source + ":" + std::to_string(line_no);
    if (const auto id = record.find(fields.id); id != record.end()) {
      if (id->is_string()) name = id->get<std::string>();
      else if (id->is_number()) name = id->dump();
      else throw Error(where + ": field \"" + fields.id + "\" is neither a string nor a number");
    }
    auto content = std::make_shared<const std::string>(t->get<std::string>());
    if (content->empty()) {
      skipped->push_back({name, skip_reason::kEmpty, "record at " + where + " has an empty \"" + fields.text + "\""});
      continue;
    }
    SourceFile f{name, "", content->size()};
    f.text = std::move(content);
    docs.push_back(Document{name, false, {std::move(f)}});
  }
  return docs;
}

}  // namespace ringscan::io
