#include "store_fixture.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "io/fs_util.h"

namespace ringscan::io::test {

std::vector<std::string> fixture_names(uint64_t n) {
  std::vector<std::string> out;
  for (uint64_t i = 0; i < n; ++i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "docs/doc_%03llu.txt", static_cast<unsigned long long>(i));
    out.push_back(i == 3 ? "docs/\xC3\xBCn\xC3\xAF" "c\xC3\xB8" "d\xC3\xA9_\xE6\x96\x87\xE6\xA1\xA3.txt" : buf);
  }
  return out;
}

DocumentResult fixture_result(uint64_t i) {
  DocumentResult r;
  r.index = i;
  r.path = fixture_names(i + 1)[i];
  r.extra = {{"seconds", double(i) * 0.25}, {"note", "\xCF\x80\xE2\x89\x88" "3.14 #" + std::to_string(i)}};
  if (i % 11 == 5) {
    r.status = doc_status::kSkipped;
    r.error = skip_reason::kBinary;
    r.skipped_files.push_back({r.path, skip_reason::kBinary, "NUL byte at offset 0"});
    return r;
  }
  const uint64_t n = (i * 7) % 23 + 2;
  for (uint64_t t = 0; t < n; ++t) r.token_ids.push_back(int32_t((i * 1000 + t * 37) % 131072));
  // The text: a leading BOS covering nothing, then a piece per token (some multi-byte),
  // each file of a codebase document after its header.
  const bool codebase = i % 4 == 2 && !(i % 13 == 7);
  const uint64_t mid = n / 2;
  const std::string paths[2] = {"f" + std::to_string(i) + "_a.py", "\xC3\xBC/f" + std::to_string(i) + "_b.py"};
  uint64_t content_begin[2] = {0, 0}, content_end[2] = {0, 0};
  r.text_begin.push_back(0);
  r.text_end.push_back(0);
  for (uint64_t t = 1; t < n; ++t) {
    const int k = t < mid ? 0 : 1;
    const bool file_start = codebase && (t == 1 || t == mid);
    if (file_start) {
      r.text += "### FILE: " + paths[k] + "\n";
      content_begin[k] = r.text.size();
    }
    r.text_begin.push_back(file_start ? content_begin[k] - (11 + paths[k].size()) : r.text.size());
    r.text += (t % 3 ? "tok" : "\xCF\x80") + std::to_string(t) + (t % 5 ? " " : "\n");
    r.text_end.push_back(r.text.size());
    content_end[k] = r.text.size();
  }
  r.truncated = i % 6 == 0;
  if (i % 13 == 7) {
    r.status = doc_status::kFailed;
    r.error = "rank 1 ran out of memory on document " + std::to_string(i);
    return r;
  }
  if (i % 9 != 4) {  // i % 9 == 4: tokens without log-probs (an embed-only document)
    r.logprob.push_back(std::numeric_limits<float>::quiet_NaN());
    for (uint64_t t = 1; t < n; ++t) r.logprob.push_back(-(0.1f * float(t % 7) + 0.01f * float(i)));
    r.n_scored = n - 1;
    for (uint64_t t = 1; t < n; ++t) r.nll_sum -= double(r.logprob[t]);
    r.nll_mean = r.nll_sum / double(r.n_scored);
    r.perplexity = std::exp(r.nll_mean);
  }
  if (codebase) {  // a codebase document of two files (the second cut; a third dropped for some)
    const uint64_t bounds[3] = {0, mid, n};
    for (int k = 0; k < 2; ++k) {
      FileResult f;
      f.path = paths[k];
      f.token_begin = bounds[k];
      f.token_end = bounds[k + 1];
      f.header = "### FILE: " + paths[k] + "\n";
      f.text_begin = content_begin[k];
      f.text_end = content_end[k];
      if (k == 1 && r.truncated) f.status = file_status::kTruncated;
      for (uint64_t t = f.token_begin; t < f.token_end; ++t)
        if (!r.logprob.empty() && !std::isnan(r.logprob[t])) {
          f.nll_sum -= double(r.logprob[t]);
          ++f.n_scored;
        }
      f.perplexity = f.n_scored ? std::exp(f.nll_sum / double(f.n_scored)) : std::numeric_limits<double>::quiet_NaN();
      r.files.push_back(f);
    }
    if (r.truncated) {
      FileResult gone;
      gone.path = "z" + std::to_string(i) + ".py";
      gone.token_begin = gone.token_end = n;
      gone.status = file_status::kDropped;
      gone.header = "### FILE: " + gone.path + "\n";
      gone.text_begin = gone.text_end = r.text.size();
      r.files.push_back(gone);
    }
    if (i % 8 == 2) r.skipped_files.push_back({"cb/x.bin", skip_reason::kBinary, "NUL byte at offset 0"});
  }
  if (i % 3 != 1) {
    for (uint64_t k = 0; k < kFixtureDim; ++k) r.embedding_mean.push_back(float(i) + 0.5f * float(k));
    if (i % 5 != 0)
      for (uint64_t k = 0; k < kFixtureDim; ++k) r.embedding_last.push_back(float(i) - 0.25f * float(k));
  }
  return r;
}

std::vector<SkippedFile> fixture_discovery_skips() {
  return {{"docs/empty.txt", skip_reason::kEmpty, "0 bytes"},
          {"docs/loop", skip_reason::kSymlinkLoop, "links to loop: Too many levels of symbolic links"}};
}

std::string fixture_digest(uint64_t i, int v) {
  std::string hex;
  for (int k = 0; k < 4; ++k) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx",
                  static_cast<unsigned long long>(fnv1a64(std::to_string(i) + "/" + std::to_string(v) + "/" + std::to_string(k))));
    hex += buf;
  }
  return hex;
}

std::vector<std::string> fixture_digests(uint64_t n) {
  std::vector<std::string> out;
  for (uint64_t i = 0; i < n; ++i) out.push_back(fixture_digest(i, 0));
  return out;
}

Json fixture_identity() {
  return {{"model_config_sha", "abc123"}, {"tokenizer_sha", "def456"}, {"options", {{"max_tokens", 4096}}}};
}

Json fixture_attributes() {
  return {{"job", "score"},
          {"model_config", "{\"hidden_size\": 64}"},
          {"tokenizer_hash", "def456"},
          {"ringscan_version", "0.1.0"},
          {"command_line", "ringscan score --out x.h5 docs/"},
          {"device", "cpu"},
          {"flag", true},
          {"ratio", 0.5},
          {"nested", {{"a", 1}}}};
}

}  // namespace ringscan::io::test
