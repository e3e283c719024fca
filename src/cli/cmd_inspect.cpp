// ringscan inspect FILE.h5: a readable table of a result file's documents
// (path, tokens, perplexity, status), sorted by a chosen column, with per-file
// rows under each codebase document.
#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>

#include "cli/command.h"
#include "io/result_reader.h"
#include "util/error.h"

namespace po = boost::program_options;

namespace ringscan::cli {
namespace {

std::string fmt_ppl(double p) {
  if (std::isnan(p)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", p);
  return b;
}

int run_inspect(int argc, char** argv) {
  std::string file, sort = "path";
  bool desc = false, no_files = false;
  int64_t limit = 0;
  po::options_description opts("ringscan inspect FILE.h5: the documents of a result file as a table");
  opts.add_options()("help,h", "this help")
      ("file", po::value(&file)->required(), "result file (also the first positional argument)")
      ("sort", po::value(&sort)->default_value("path"), "column to sort by: path, tokens, perplexity, status")
      ("desc", po::bool_switch(&desc), "sort descending")
      ("limit", po::value(&limit)->default_value(0), "show at most this many documents (0: all)")
      ("no-files", po::bool_switch(&no_files), "omit the per-file rows of codebase documents");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_options(argc, argv, opts, vm, &pos)) return 0;
  if (sort != "path" && sort != "tokens" && sort != "perplexity" && sort != "status")
    throw Error("--sort must be path, tokens, perplexity or status, got \"" + sort + "\"");

  io::ResultTables t = io::read_result_tables(file);
  std::vector<size_t> order(t.documents.size());
  std::iota(order.begin(), order.end(), 0);
  auto key_less = [&](size_t a, size_t b) {
    const auto &x = t.documents[a], &y = t.documents[b];
    if (sort == "tokens") return x.n_tokens < y.n_tokens;
    if (sort == "status") return x.status < y.status;
    if (sort == "perplexity") {  // NaN (not scored) last either way
      if (std::isnan(x.perplexity) || std::isnan(y.perplexity)) return !std::isnan(x.perplexity) && std::isnan(y.perplexity);
      return x.perplexity < y.perplexity;
    }
    return x.path < y.path;
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return desc ? key_less(b, a) : key_less(a, b); });

  std::printf("%s: %zu documents, job %s, model %s\n", file.c_str(), t.documents.size(),
              t.attributes.value("job", std::string("?")).c_str(), t.attributes.value("model_dir", std::string("?")).c_str());
  std::printf("%-56s %10s %12s  %s\n", "path", "tokens", "perplexity", "status");
  int64_t shown = 0;
  for (size_t i : order) {
    if (limit > 0 && shown++ >= limit) break;
    const auto& d = t.documents[i];
    std::string status = d.status + (d.truncated ? " (truncated)" : "") + (d.error.empty() ? "" : ": " + d.error);
    std::printf("%-56s %10llu %12s  %s\n", d.path.c_str(), (unsigned long long)d.n_tokens, fmt_ppl(d.perplexity).c_str(),
                status.c_str());
    if (no_files) continue;
    for (const auto& f : t.files)
      if (f.document == i)
        std::printf("  %-54s %10llu %12s\n", f.path.c_str(), (unsigned long long)(f.token_end - f.token_begin),
                    fmt_ppl(f.perplexity).c_str());
  }
  return 0;
}

}  // namespace

RINGSCAN_COMMAND("inspect", "a result file's documents as a table (sortable), with per-file rows", run_inspect);

}  // namespace ringscan::cli
