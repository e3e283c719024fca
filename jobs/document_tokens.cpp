#include "jobs/document_tokens.h"

#include <algorithm>

namespace ringscan {

DocumentTokens tokenize_document(const Tokenizer& tok, const io::LoadedDocument& doc, int64_t max_tokens,
                                 bool with_bos) {
  DocumentTokens out;
  if (with_bos && tok.add_bos() && tok.bos_id()) out.ids.push_back(*tok.bos_id());
  for (const auto& piece : doc.pieces) {
    FileRange r;
    r.path = piece.path;
    r.begin = static_cast<int64_t>(out.ids.size());
    std::vector<int32_t> ids = tok.encode(piece.text, /*add_special=*/false);
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    r.end = static_cast<int64_t>(out.ids.size());
    out.files.push_back(r);
  }
  if (max_tokens > 0 && static_cast<int64_t>(out.ids.size()) > max_tokens) {
    out.ids.resize(max_tokens);
    out.truncated = true;
    std::vector<FileRange> kept;
    for (auto& f : out.files) {
      if (f.begin >= max_tokens) break;
      f.end = std::min(f.end, max_tokens);
      kept.push_back(f);
    }
    out.files = std::move(kept);
  }
  return out;
}

}  // namespace ringscan
