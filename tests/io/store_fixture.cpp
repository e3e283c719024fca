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
  if (i % 4 == 2) {  // a codebase document of two files
    const uint64_t mid = n / 2;
    const std::string paths[2] = {"f" + std::to_string(i) + "_a.py", "\xC3\xBC/f" + std::to_string(i) + "_b.py"};
    const uint64_t bounds[3] = {0, mid, n};
    for (int k = 0; k < 2; ++k) {
      FileResult f;
      f.path = paths[k];
      f.token_begin = bounds[k];
      f.token_end = bounds[k + 1];
      for (uint64_t t = f.token_begin; t < f.token_end; ++t)
        if (!r.logprob.empty() && !std::isnan(r.logprob[t])) {
          f.nll_sum -= double(r.logprob[t]);
          ++f.n_scored;
        }
      f.perplexity = f.n_scored ? std::exp(f.nll_sum / double(f.n_scored)) : std::numeric_limits<double>::quiet_NaN();
      r.files.push_back(f);
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
