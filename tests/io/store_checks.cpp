#include "store_checks.h"

#include <gtest/gtest.h>

#include <cmath>

#include "io/result_store.h"
#include "store_fixture.h"

namespace ringscan::io::test {

namespace {

// Values as h5py gave them: NaN arrives as the string "NaN" (see json_util.h).
double num(const Json& v) { return json_number(v, "h5 dump value"); }

void expect_same_number(double want, const Json& got, const std::string& where) {
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(num(got))) << where << ": expected NaN, got " << got.dump();
  } else {
    EXPECT_EQ(num(got), want) << where;  // exact: float32 widened to float64 is exact
  }
}

const Json& dataset(const Json& dump, const std::string& name, const std::string& dtype, std::vector<uint64_t> shape) {
  static const Json missing;
  if (!dump["datasets"].contains(name)) {
    ADD_FAILURE() << "dataset " << name << " is missing";
    return missing;
  }
  const Json& d = dump["datasets"][name];
  EXPECT_EQ(d["dtype"], dtype) << name;
  EXPECT_EQ(d["shape"].get<std::vector<uint64_t>>(), shape) << name;
  if (dtype == "string") {
    EXPECT_EQ(d["string"]["encoding"], "utf-8") << name;
    EXPECT_EQ(d["string"]["vlen"], true) << name;
  }
  return d["data"];
}

}  // namespace

void expect_dump_matches_fixture(const Json& dump, uint64_t n, int64_t ranks) {
  std::vector<DocumentResult> docs;
  for (uint64_t i = 0; i < n; ++i) docs.push_back(fixture_result(i));
  uint64_t n_tok = 0, n_files = 0, n_text = 0;
  bool any_mean = false, any_last = false;
  for (const DocumentResult& d : docs) {
    n_tok += d.token_ids.size();
    n_text += d.text.size();
    n_files += d.files.size();
    any_mean |= !d.embedding_mean.empty();
    any_last |= !d.embedding_last.empty();
  }

  // Root attributes.
  const Json& root = dump["attrs"]["/"];
  EXPECT_EQ(root["format_version"], 1);
  EXPECT_EQ(root["n_documents"], n);
  EXPECT_EQ(parse_json_relaxed(root["run_identity"].get<std::string>(), "run_identity"), fixture_identity());
  EXPECT_EQ(root["documents_hash"], documents_hash(fixture_names(n)));
  EXPECT_EQ(root["ranks"], ranks);
  Json attrs = fixture_attributes();
  for (const auto& [k, v] : attrs.items()) {
    if (v.is_boolean()) EXPECT_EQ(root[k], v.get<bool>() ? 1 : 0) << k;
    else if (v.is_object()) EXPECT_EQ(root[k], v.dump()) << k;
    else EXPECT_EQ(root[k], v) << k;
  }

  // /documents
  const Json& path = dataset(dump, "/documents/path", "string", {n});
  const Json& status = dataset(dump, "/documents/status", "string", {n});
  const Json& error = dataset(dump, "/documents/error", "string", {n});
  const Json& extra = dataset(dump, "/documents/extra", "string", {n});
  const Json& n_tokens = dataset(dump, "/documents/n_tokens", "uint64", {n});
  const Json& token_offset = dataset(dump, "/documents/token_offset", "uint64", {n});
  const Json& n_scored = dataset(dump, "/documents/n_scored", "uint64", {n});
  const Json& nll_sum = dataset(dump, "/documents/nll_sum", "float64", {n});
  const Json& nll_mean = dataset(dump, "/documents/nll_mean", "float64", {n});
  const Json& ppl = dataset(dump, "/documents/perplexity", "float64", {n});
  const Json& truncated = dataset(dump, "/documents/truncated", "uint8", {n});
  const Json& ids = dataset(dump, "/tokens/ids", "int32", {n_tok});
  const Json& logprob = dataset(dump, "/tokens/logprob", "float32", {n_tok});
  const Json& f_doc = dataset(dump, "/files/document", "uint64", {n_files});
  const Json& f_path = dataset(dump, "/files/path", "string", {n_files});
  const Json& f_begin = dataset(dump, "/files/token_begin", "uint64", {n_files});
  const Json& f_end = dataset(dump, "/files/token_end", "uint64", {n_files});
  const Json& f_scored = dataset(dump, "/files/n_scored", "uint64", {n_files});
  const Json& f_nll = dataset(dump, "/files/nll_sum", "float64", {n_files});
  const Json& f_ppl = dataset(dump, "/files/perplexity", "float64", {n_files});
  const Json& text = dataset(dump, "/text/utf8", "uint8", {n_text});
  const Json& text_offset = dataset(dump, "/documents/text_offset", "uint64", {n});
  const Json& text_bytes = dataset(dump, "/documents/text_bytes", "uint64", {n});
  const Json& t_begin = dataset(dump, "/tokens/text_begin", "uint64", {n_tok});
  const Json& t_end = dataset(dump, "/tokens/text_end", "uint64", {n_tok});
  const Json& f_status = dataset(dump, "/files/status", "string", {n_files});
  const Json& f_header = dataset(dump, "/files/header", "string", {n_files});
  const Json& f_text_begin = dataset(dump, "/files/text_begin", "uint64", {n_files});
  const Json& f_text_end = dataset(dump, "/files/text_end", "uint64", {n_files});
  if (::testing::Test::HasFailure()) return;  // shapes wrong: the loops below would index out of range

  uint64_t tok = 0, row = 0, text_at = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const DocumentResult& d = docs[i];
    const std::string at = "document " + std::to_string(i);
    EXPECT_EQ(path[i], d.path) << at;
    EXPECT_EQ(status[i], d.status) << at;
    EXPECT_EQ(error[i], d.error) << at;
    EXPECT_EQ(parse_json_relaxed(extra[i].get<std::string>(), "extra"), d.extra) << at;
    EXPECT_EQ(n_tokens[i], d.token_ids.size()) << at;
    EXPECT_EQ(token_offset[i], tok) << at;
    EXPECT_EQ(n_scored[i], d.n_scored) << at;
    expect_same_number(d.nll_sum, nll_sum[i], at + " nll_sum");
    expect_same_number(d.nll_mean, nll_mean[i], at + " nll_mean");
    expect_same_number(d.perplexity, ppl[i], at + " perplexity");
    EXPECT_EQ(truncated[i], d.truncated ? 1 : 0) << at;
    for (uint64_t t = 0; t < d.token_ids.size(); ++t) {
      EXPECT_EQ(ids[tok + t], d.token_ids[t]) << at << " token " << t;
      const double want = d.logprob.empty() ? std::nan("") : double(d.logprob[t]);
      expect_same_number(want, logprob[tok + t], at + " logprob " + std::to_string(t));
    }
    EXPECT_EQ(text_offset[i], text_at) << at;
    EXPECT_EQ(text_bytes[i], d.text.size()) << at;
    std::string stored;
    for (uint64_t b = 0; b < d.text.size(); ++b) stored += char(text[text_at + b].get<int>());
    EXPECT_EQ(stored, d.text) << at;
    text_at += d.text.size();
    for (uint64_t t = 0; t < d.token_ids.size(); ++t) {
      EXPECT_EQ(t_begin[tok + t], d.text_begin.empty() ? 0 : d.text_begin[t]) << at << " token " << t;
      EXPECT_EQ(t_end[tok + t], d.text_end.empty() ? 0 : d.text_end[t]) << at << " token " << t;
    }
    tok += d.token_ids.size();
    for (const FileResult& f : d.files) {
      EXPECT_EQ(f_status[row], f.status);
      EXPECT_EQ(f_header[row], f.header);
      EXPECT_EQ(f_text_begin[row], f.text_begin);
      EXPECT_EQ(f_text_end[row], f.text_end);
      EXPECT_EQ(f_doc[row], i);
      EXPECT_EQ(f_path[row], f.path);
      EXPECT_EQ(f_begin[row], f.token_begin);
      EXPECT_EQ(f_end[row], f.token_end);
      EXPECT_EQ(f_scored[row], f.n_scored);
      expect_same_number(f.nll_sum, f_nll[row], at + " file nll_sum");
      expect_same_number(f.perplexity, f_ppl[row], at + " file perplexity");
      ++row;
    }
  }

  // /skipped: discovery's first (document -1), then each document's in document order.
  std::vector<std::tuple<int64_t, std::string, std::string, std::string>> want_skips;
  for (const SkippedFile& s : fixture_discovery_skips()) want_skips.emplace_back(-1, s.path, s.reason, s.detail);
  for (const DocumentResult& d : docs)
    for (const SkippedFile& s : d.skipped_files) want_skips.emplace_back(int64_t(d.index), s.path, s.reason, s.detail);
  const uint64_t ns = want_skips.size();
  const Json& s_doc = dataset(dump, "/skipped/document", "int64", {ns});
  const Json& s_path = dataset(dump, "/skipped/path", "string", {ns});
  const Json& s_reason = dataset(dump, "/skipped/reason", "string", {ns});
  const Json& s_detail = dataset(dump, "/skipped/detail", "string", {ns});
  if (::testing::Test::HasFailure()) return;
  for (uint64_t k = 0; k < ns; ++k) {
    EXPECT_EQ(s_doc[k], std::get<0>(want_skips[k])) << "skip " << k;
    EXPECT_EQ(s_path[k], std::get<1>(want_skips[k])) << "skip " << k;
    EXPECT_EQ(s_reason[k], std::get<2>(want_skips[k])) << "skip " << k;
    EXPECT_EQ(s_detail[k], std::get<3>(want_skips[k])) << "skip " << k;
  }

  // /embeddings: present only when some document has one; NaN rows for the others.
  for (const char* which : {"mean", "last"}) {
    const bool any = std::string(which) == "mean" ? any_mean : any_last;
    const std::string name = std::string("/embeddings/") + which;
    if (!any) {
      EXPECT_FALSE(dump["datasets"].contains(name)) << name;
      continue;
    }
    const Json& e = dataset(dump, name, "float32", {n, kFixtureDim});
    if (::testing::Test::HasFailure()) return;
    for (uint64_t i = 0; i < n; ++i) {
      const std::vector<float>& v = std::string(which) == "mean" ? docs[i].embedding_mean : docs[i].embedding_last;
      for (uint64_t k = 0; k < kFixtureDim; ++k)
        expect_same_number(v.empty() ? std::nan("") : double(v[k]), e[i][k],
                           name + " row " + std::to_string(i) + " col " + std::to_string(k));
    }
  }
}

}  // namespace ringscan::io::test
