// ringscan forward: run the model over given token ids and print, per position,
// the log-prob of the next id and the top-k next ids; optionally all logits.
#include <algorithm>
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <sstream>
#include <vector>

#include "cli/command.h"
#include "kernels/log_softmax.h"
#include "model/model.h"
#include "util/error.h"
#include "util/json_util.h"
#include "util/npy.h"

namespace po = boost::program_options;

namespace ringscan::cli {

std::vector<int32_t> parse_ids(const std::string& text, const std::string& source) {
  std::vector<int32_t> ids;
  std::string tok;
  std::istringstream in(text);
  auto flush = [&]() {
    if (tok.empty()) return;
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != tok.size() || v < 0 || v > INT32_MAX)
      throw Error(source + ": \"" + tok + "\" is not a token id (a non-negative integer)");
    ids.push_back(static_cast<int32_t>(v));
    tok.clear();
  };
  for (char ch : text) {
    if (ch == ',' || std::isspace(static_cast<unsigned char>(ch))) flush();
    else tok += ch;
  }
  flush();
  if (ids.empty()) throw Error(source + " holds no token ids");
  return ids;
}

namespace {

int run_forward(int argc, char** argv) {
  po::options_description opts("ringscan forward: run the model over token ids, one JSON line per position");
  std::string model_dir, ids_arg, ids_file, logits_out;
  int top_k = 5;
  opts.add_options()("help,h", "this help")
      ("model", po::value(&model_dir)->required(), "model folder (config.json, safetensors)")
      ("ids", po::value(&ids_arg), "token ids, comma separated: 1,2,3")
      ("ids-file", po::value(&ids_file), "file of token ids (whitespace or comma separated)")
      ("logits-out", po::value(&logits_out), "write all logits as float32 .npy [L, vocab]")
      ("top-k", po::value(&top_k)->default_value(5), "top next ids to print per position (0: none)");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, opts), vm);
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  po::notify(vm);
  if (vm.count("ids") == vm.count("ids-file")) throw Error("give exactly one of --ids and --ids-file");
  if (top_k < 0) throw Error("--top-k must be >= 0");
  std::vector<int32_t> ids = vm.count("ids") ? parse_ids(ids_arg, "--ids") : parse_ids(read_text_file(ids_file), ids_file);

  auto model = Model::load(model_dir);
  const ModelConfig& c = model->config();
  const int64_t L = static_cast<int64_t>(ids.size()), D = c.hidden_size, V = c.vocab_size;
  std::vector<float> hidden(L * D);
  InferenceState st = model->new_state();
  model->forward(ids.data(), L, st, hidden.data());

  std::unique_ptr<NpyWriter> npy;
  if (!logits_out.empty()) npy = std::make_unique<NpyWriter>(logits_out, std::vector<int64_t>{L, V});
  // Logits in row blocks: [L, vocab] for a long input and a 131072 vocab would not fit.
  const int64_t rows = std::max<int64_t>(1, (64 << 20) / (V * 4));
  std::vector<float> logits, logp;
  std::vector<int32_t> order(V);
  for (int64_t r0 = 0; r0 < L; r0 += rows) {
    int64_t nr = std::min(rows, L - r0);
    logits.resize(nr * V);
    logp.resize(nr * V);
    model->logits(hidden.data() + r0 * D, nr, logits.data());
    if (npy) npy->append(logits.data(), nr * V);
    kernels::cpu::log_softmax(logits.data(), nr, V, logp.data());
    for (int64_t i = 0; i < nr; ++i) {
      int64_t pos = r0 + i;
      const float* lp = logp.data() + i * V;
      Json line = {{"pos", pos}, {"id", ids[pos]}};
      if (pos + 1 < L) line["next_id"] = ids[pos + 1], line["logprob_next"] = lp[ids[pos + 1]];
      else line["next_id"] = nullptr, line["logprob_next"] = nullptr;
      if (top_k > 0) {
        int k = static_cast<int>(std::min<int64_t>(top_k, V));
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
          return lp[a] > lp[b] || (lp[a] == lp[b] && a < b);
        });
        Json top = Json::array();
        for (int j = 0; j < k; ++j) top.push_back({order[j], lp[order[j]]});
        line["top_k"] = top;
      }
      std::cout << line.dump() << "\n";
    }
  }
  if (npy) npy->close();
  return 0;
}

}  // namespace

RINGSCAN_COMMAND("forward", "run the model over token ids; per-position log-probs, top-k, logits", run_forward);

}  // namespace ringscan::cli
