#include "jobs/document_tokens.h"

#include <algorithm>

namespace ringscan {

DocumentTokens tokenize_document(const Tokenizer& tok, const io::LoadedDocument& doc, int64_t max_tokens,
                                 bool with_bos) {
  DocumentTokens out;
  if (with_bos && tok.add_bos() && tok.bos_id()) {
    out.ids.push_back(*tok.bos_id());
    out.text_begin.push_back(0);
    out.text_end.push_back(0);
  }
  for (const auto& piece : doc.pieces) {
    FileRange r;
    r.path = piece.path;
    r.begin = static_cast<int64_t>(out.ids.size());
    const uint64_t at = out.text.size();
    r.header = piece.text.substr(0, piece.header_bytes);
    r.text_begin = at + piece.header_bytes;
    r.text_end = r.text_begin + piece.content_bytes;
    Tokenizer::Encoding e = tok.encode_with_offsets(piece.text, /*add_special=*/false);
    out.ids.insert(out.ids.end(), e.ids.begin(), e.ids.end());
    for (size_t k = 0; k < e.ids.size(); ++k) {
      out.text_begin.push_back(at + e.begin[k]);
      out.text_end.push_back(at + e.end[k]);
    }
    out.text += piece.text;
    r.end = static_cast<int64_t>(out.ids.size());
    out.files.push_back(std::move(r));
  }
  if (max_tokens > 0 && static_cast<int64_t>(out.ids.size()) > max_tokens) {
    out.ids.resize(max_tokens);
    out.text_begin.resize(max_tokens);
    out.text_end.resize(max_tokens);
    out.truncated = true;
    // The text ends where the last kept token does: what follows was not tokenized for the model.
    const uint64_t cut = *std::max_element(out.text_end.begin(), out.text_end.end());
    out.text.resize(cut);
    for (auto& f : out.files) {
      if (f.end <= max_tokens) continue;
      f.status = f.begin >= max_tokens ? io::file_status::kDropped : io::file_status::kTruncated;
      f.begin = std::min(f.begin, max_tokens);
      f.end = max_tokens;
      f.text_begin = std::min(f.text_begin, cut);
      f.text_end = std::min(f.text_end, cut);
    }
  }
  return out;
}

}  // namespace ringscan
