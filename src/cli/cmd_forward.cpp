// ringscan forward: run the model over given token ids and print, per position,
// the log-prob of the next id and the top-k next ids; optionally all logits.
// Under mpirun -np P the sequence runs sequence-parallel over P ranks (or a
// group of --sp N) and rank 0 prints the same lines a single rank would.
// --generate N then continues the ids greedily from the state the forward
// left (sequence-parallel: KV cache sharded over the group) and prints one
// more line, {"generated": [ids...]}. --prompt TEXT instead of ids: the text
// tokenized with the checkpoint's tokenizer, and every id's text printed
// beside it ("text", "next_text", "top_k_text", "generated_text").
#include <algorithm>
#include <boost/program_options.hpp>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <vector>

#include "cli/command.h"
#include "kernels/blas_runtime.h"
#include "kernels/log_softmax.h"
#include "model/model.h"
#include "runtime/decode.h"
#include "runtime/engine.h"
#include "runtime/mpi_context.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/json_util.h"
#include "util/npy.h"

namespace po = boost::program_options;

namespace ringscan::cli {

// Ids separated by whitespace and/or single commas: "1,2,3", "1 2 3", "1, 2".
// An empty item ("1,,2", a leading or trailing comma) is an error, not skipped:
// it is more likely a lost id than a typo to forgive.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& source) {
  std::vector<int32_t> ids;
  std::string tok;
  bool id_since_comma = false, comma_seen = false;
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
    id_since_comma = true;
  };
  auto empty_item = [&]() {
    return Error(source + ": an empty id after id " + std::to_string(ids.size()) +
                 " (two commas in a row, or a comma at the start or end); expected ids separated by commas or spaces");
  };
  for (char ch : text) {
    if (ch == ',') {
      flush();
      if (!id_since_comma) throw empty_item();
      id_since_comma = false;
      comma_seen = true;
    } else if (std::isspace(static_cast<unsigned char>(ch))) {
      flush();
    } else {
      tok += ch;
    }
  }
  flush();
  if (comma_seen && !id_since_comma) throw empty_item();
  if (ids.empty()) throw Error(source + " holds no token ids");
  return ids;
}

namespace {

struct ForwardOptions {
  std::string model_dir, ids_arg, ids_file, prompt, logits_out, layout = "zigzag", device = "auto", comm = "auto";
  int top_k = 5;
  int sp = 0;
  int threads = 0;
  int64_t generate = 0;
  bool stop_at_eos = false;
};

// eos_token_id (an id or a list) from generation_config.json, else config.json.
std::vector<int32_t> eos_ids(const std::string& model_dir) {
  for (const char* name : {"generation_config.json", "config.json"}) {
    const std::string path = model_dir + "/" + name;
    if (!std::filesystem::exists(path)) continue;
    Json j = read_json_file(path);
    if (!j.contains("eos_token_id") || j["eos_token_id"].is_null()) continue;
    const Json& e = j["eos_token_id"];
    std::vector<int32_t> ids;
    if (e.is_number_integer()) ids.push_back(e.get<int32_t>());
    else if (e.is_array())
      for (const auto& x : e) {
        if (!x.is_number_integer()) throw Error(path + ": eos_token_id must be an id or a list of ids");
        ids.push_back(x.get<int32_t>());
      }
    else throw Error(path + ": eos_token_id must be an id or a list of ids");
    if (!ids.empty()) return ids;
  }
  throw Error("--stop-at-eos: neither generation_config.json nor config.json in " + model_dir + " gives eos_token_id");
}

GenerationRequest greedy_request(const ForwardOptions& o, const std::vector<int32_t>& ids,
                                 const std::vector<int32_t>& stop) {
  GenerationRequest r;
  r.prompt = ids;
  r.max_new_tokens = o.generate;
  r.stop_ids = stop;
  return r;  // default sampling: greedy
}

// Text may end inside a UTF-8 character (a token is a few bytes): such bytes print as U+FFFD.
std::string json_line(const Json& line) { return line.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"; }

// tok (--prompt): the generated text beside the ids.
void print_generated(const std::vector<int32_t>& tokens, const Tokenizer* tok) {
  Json line = Json::object();
  line["generated"] = tokens;
  if (tok) line["generated_text"] = tok->decode(tokens);
  std::cout << json_line(line);
}

// Per-position output of a block of rows: one JSON line each, plus the raw logits.
struct RowBlock {
  std::string lines;
  std::vector<float> logits;
};

// Rows per output block: bounds the [rows, vocab] logits buffer to ~64 MiB.
int64_t rows_per_block(int64_t vocab) { return std::max<int64_t>(1, (64 << 20) / (vocab * 4)); }

// The lines of n positions from their logits [n, V] (host), whichever engine made them.
// tok (--prompt): each id's text beside it ("text", "next_text", "top_k_text").
RowBlock rows_from_logits(std::vector<float> logits, int64_t V, int64_t pos0, int64_t n,
                          const std::vector<int32_t>& ids, int top_k, bool keep_logits, const Tokenizer* tok) {
  auto text = [&](int32_t id) { return tok->decode({id}); };
  const int64_t L = ids.size();
  RowBlock out;
  std::vector<float> lp(n * V);
  kernels::cpu::log_softmax(logits.data(), n, V, lp.data());
  std::vector<int32_t> order(V);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t pos = pos0 + i;
    const float* row = lp.data() + i * V;
    Json line = {{"pos", pos}, {"id", ids[pos]}};
    if (tok) line["text"] = text(ids[pos]);
    if (pos + 1 < L) line["next_id"] = ids[pos + 1], line["logprob_next"] = row[ids[pos + 1]];
    else line["next_id"] = nullptr, line["logprob_next"] = nullptr;
    if (tok) line["next_text"] = pos + 1 < L ? Json(text(ids[pos + 1])) : Json();
    if (top_k > 0) {
      const int kk = static_cast<int>(std::min<int64_t>(top_k, V));
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + kk, order.end(),
                        [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
      Json top = Json::array(), top_text = Json::array();
      for (int j = 0; j < kk; ++j) top.push_back({order[j], row[order[j]]});
      line["top_k"] = top;
      if (tok) {
        for (int j = 0; j < kk; ++j) top_text.push_back(text(order[j]));
        line["top_k_text"] = top_text;
      }
    }
    out.lines += json_line(line);
  }
  if (keep_logits) out.logits = std::move(logits);
  return out;
}

// One rank (the first) runs it alone: the lines of every position as the
// prefill produces them, then --generate continues the same sequence.
void forward_one_rank(Engine& engine, const ForwardOptions& o, const std::vector<int32_t>& ids,
                      const std::vector<int32_t>& stop_ids, int64_t V, const Tokenizer* tok) {
  std::unique_ptr<NpyWriter> npy;
  if (!o.logits_out.empty())
    npy = std::make_unique<NpyWriter>(o.logits_out, std::vector<int64_t>{static_cast<int64_t>(ids.size()), V});
  const LogitsSink print{rows_per_block(V), [&](int64_t row0, int64_t rows, std::vector<float> logits) {
                           RowBlock b =
                               rows_from_logits(std::move(logits), V, row0, rows, ids, o.top_k, npy != nullptr, tok);
                           std::cout << b.lines;
                           if (npy) npy->append(b.logits.data(), b.logits.size());
                         }};
  DecodeEngine& decode = engine.decode_engine();
  std::unique_ptr<DecodeEngine::Sequence> seq = decode.prefill(ids, &print);
  if (npy) npy->close();
  if (o.generate == 0) return;
  Decoder d(decode, 1);
  d.submit_prefilled(greedy_request(o, ids, stop_ids), std::move(seq));
  print_generated(d.run().at(0).tokens, tok);
}

// Sequence parallel over `group` (every rank of it): rank 0 prints in
// sequence order, its own segments' lines and the others' as they arrive;
// --generate then decodes with the KV cache left sharded over the group.
void forward_sequence_parallel(Engine& engine, Model& model, comm::Communicator& group, const ForwardOptions& o,
                               const std::vector<int32_t>& ids, LayoutKind layout_kind,
                               const std::vector<int32_t>& stop_ids, const Tokenizer* tok) {
  const int64_t L = ids.size(), V = model.config().vocab_size, block = rows_per_block(V);
  const bool want_logits = !o.logits_out.empty();
  const SequenceLayout layout = make_layout(L, group.size(), layout_kind);
  auto segment_ids = [&](const Segment& s) { return std::vector<int32_t>(ids.begin() + s.begin, ids.begin() + s.end()); };
  std::unique_ptr<ForwardedSegments> mine = engine.forward_sp(group, layout, segment_ids, o.generate > 0);

  std::unique_ptr<NpyWriter> npy;
  if (group.rank() == 0 && want_logits) npy = std::make_unique<NpyWriter>(o.logits_out, std::vector<int64_t>{L, V});
  size_t next_piece = 0;
  for (const Segment& s : layout.segments) {
    const bool is_mine = s.owner == group.rank();
    if (!is_mine && group.rank() != 0) continue;
    for (int64_t r0 = 0; r0 < s.len; r0 += block) {
      const int64_t nr = std::min(block, s.len - r0);
      RowBlock b;
      if (is_mine)
        b = rows_from_logits(mine->hidden(next_piece).logits(r0, nr), V, s.begin + r0, nr, ids, o.top_k, want_logits,
                             tok);
      if (group.rank() != 0) {
        std::uint64_t n = b.lines.size();
        group.send(&n, 1, 0);
        group.send(b.lines.data(), n, 0);
        if (want_logits) group.send(b.logits.data(), b.logits.size(), 0);
        continue;
      }
      if (!is_mine) {
        std::uint64_t n = 0;
        group.recv(&n, 1, s.owner);
        b.lines.resize(n);
        group.recv(b.lines.data(), n, s.owner);
        if (want_logits) {
          b.logits.resize(nr * V);
          group.recv(b.logits.data(), b.logits.size(), s.owner);
        }
      }
      std::cout << b.lines;
      if (npy) npy->append(b.logits.data(), b.logits.size());
    }
    if (is_mine) ++next_piece;
  }
  if (npy) npy->close();
  if (o.generate == 0) return;
  std::unique_ptr<ShardedDecodeEngine::Sequence> st = mine->take_decode_sequence();
  mine.reset();  // decode needs only the kept state
  ShardedDecoder d(engine.sharded_decode_engine(), group, layout_kind, 1);
  d.submit_prefilled(greedy_request(o, ids, stop_ids), std::move(st));
  auto results = d.run();  // collective; every rank gets the tokens
  if (group.rank() == 0) print_generated(results.at(0).tokens, tok);
}

int run_forward(int argc, char** argv) {
  po::options_description opts("ringscan forward: run the model over token ids, one JSON line per position");
  ForwardOptions o;
  opts.add_options()("help,h", "this help")
      ("model", po::value(&o.model_dir)->required(), "model folder (config.json, safetensors)")
      ("ids", po::value(&o.ids_arg), "token ids, comma separated: 1,2,3")
      ("ids-file", po::value(&o.ids_file), "file of token ids (whitespace or comma separated)")
      ("prompt", po::value(&o.prompt), "text, tokenized with the checkpoint's tokenizer (BOS as its config says); each id's text is printed beside it")
      ("logits-out", po::value(&o.logits_out), "write all logits as float32 .npy [L, vocab]")
      ("top-k", po::value(&o.top_k)->default_value(5), "top next ids to print per position (0: none)")
      ("sp", po::value(&o.sp)->default_value(0), "ranks the sequence is split over (default: all ranks)")
      ("layout", po::value(&o.layout)->default_value("zigzag"), "segment layout: zigzag or contiguous")
      ("threads", po::value(&o.threads)->default_value(0), "CPU threads per rank (0: OMP_NUM_THREADS, else every core)")
      ("generate", po::value(&o.generate)->default_value(0),
       "then generate N ids greedily and print {\"generated\": [...]} (mpirun: KV cache stays sharded)")
      ("stop-at-eos", po::bool_switch(&o.stop_at_eos), "with --generate: stop after an eos_token_id of the model")
      ("device", po::value(&o.device)->default_value("auto"), "auto (a GPU when one is usable, else the CPU), cpu or cuda")
      ("comm", po::value(&o.comm)->default_value("auto"), "sequence-parallel exchanges: mpi (through host memory; ranks may share a GPU), nccl (device buffers, one GPU per rank), auto (nccl when every rank has its own GPU, else mpi)");

  start_mpi(&argc, &argv);
  auto world = comm::MpiCommunicator::create();
  const int local_rank = comm::local_rank();  // may be collective: every rank, before anything can fail
  po::variables_map vm;
  std::vector<int32_t> ids;
  std::unique_ptr<Model> model;
  LayoutKind layout_kind{};
  std::vector<int32_t> stop_ids;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Tokenizer> tok;  // --prompt only
  check_collectively(*world, [&]() {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    if (vm.count("help")) return;
    po::notify(vm);
    if (vm.count("ids") + vm.count("ids-file") + vm.count("prompt") != 1)
      throw Error("give exactly one of --ids, --ids-file and --prompt");
    if (o.threads < 0) throw Error("--threads must be >= 0 (0: OMP_NUM_THREADS, else every core)");
    if (o.threads > 0) set_compute_threads(o.threads);
    if (o.top_k < 0) throw Error("--top-k must be >= 0");
    check_sp_option(o.sp, world->size());
    layout_kind = parse_layout(o.layout);
    if (o.generate < 0) throw Error("--generate must be >= 0");
    if (o.stop_at_eos && o.generate == 0) throw Error("--stop-at-eos needs --generate N");
    if (o.stop_at_eos) stop_ids = eos_ids(o.model_dir);
    if (vm.count("prompt")) {
      tok = std::make_unique<Tokenizer>(Tokenizer::load(o.model_dir));
      ids = tok->encode(o.prompt, /*add_special=*/true);
      if (ids.empty()) throw Error("--prompt gives no tokens: give some text");
    } else {
      ids = vm.count("ids") ? parse_ids(o.ids_arg, "--ids") : parse_ids(read_text_file(o.ids_file), o.ids_file);
    }
    model = Model::load(o.model_dir, world->rank() != 0);
    engine = std::make_unique<Engine>(o.device, o.comm, local_rank);
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] >= model->config().vocab_size)
        throw Error("token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                    " is outside the vocabulary of " + o.model_dir + " (0.." +
                    std::to_string(model->config().vocab_size - 1) + ")");
  });
  if (vm.count("help")) {
    if (world->rank() == 0) std::cout << opts << "\n";
    return 0;
  }
  check_collectively(*world, [&]() { engine->agree(*world); });  // every rank the same engine
  if (world->rank() == 0)
    std::cerr << "ringscan forward: device " << engine->label()
              << (engine->why_cpu().empty() ? "" : " (" + engine->why_cpu() + ")") << ", comm "
              << engine->comm_backend() << "\n";
  // The first `sp` ranks run it; the rest have nothing to do.
  const int sp = o.sp ? o.sp : world->size();
  check_collectively(*world, [&]() {
    if (world->rank() < sp) engine->prepare(*model);
  });
  if (sp == 1) {
    if (world->rank() == 0) forward_one_rank(*engine, o, ids, stop_ids, model->config().vocab_size, tok.get());
    return 0;
  }
  auto group = world->split(world->rank() < sp ? 0 : -1, world->rank());
  if (group) forward_sequence_parallel(*engine, *model, *group, o, ids, layout_kind, stop_ids, tok.get());
  return 0;
}

}  // namespace

RINGSCAN_COMMAND("forward", "run the model over token ids; per-position log-probs, top-k, logits (mpirun: sequence parallel)",
                 run_forward);

}  // namespace ringscan::cli
