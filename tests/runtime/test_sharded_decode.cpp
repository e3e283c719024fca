// Decode after a sequence-parallel prefill = single-rank decode: under mpirun
// -np P, every rank computes the single-rank tokens itself as the reference,
// then the group prefills sequence-parallel and decodes with the KV cache left
// sharded. Greedy tokens must be identical (both layouts, prompts shorter than
// P, a chunk, and longer; HF's own generate() tokens on the fixtures);
// batched decoding with continuous batching equals each document alone;
// sampled tokens equal the single rank's with the same seed; and the bytes of
// each decode step match the formulas in runtime/decode.h, with nothing else sent.
#include <gtest/gtest.h>
#include <mpi.h>

#include <filesystem>
#include <map>
#include <set>

#include "decode_test_util.h"
#include "comm/mpi_communicator.h"
#include "model/model.h"
#include "sp_test_models.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "runtime/decode.h"
#include "util/json_util.h"

using namespace ringscan;
namespace fs = std::filesystem;

namespace {
using test::prompt_of;
using test::request;

using test::Variant;
std::vector<Variant> variants() { return test::sp_variants(); }
std::string model_dir(comm::Communicator& world, const Variant& v) { return test::sp_model_dir(world, v, "sdecode", 4); }

std::vector<int64_t> lengths(int P, int64_t chunk) {
  std::set<int64_t> s = {1, 2, static_cast<int64_t>(P) + 1, 2 * static_cast<int64_t>(P) + 1, chunk + 1,
                         3 * chunk + 5, 41};
  if (P > 1) s.insert(P - 1);
  return {s.begin(), s.end()};
}

std::map<uint64_t, std::vector<int32_t>> single_rank(Model& m, const std::vector<GenerationRequest>& reqs) {
  std::map<uint64_t, std::vector<int32_t>> out;
  for (const auto& r : reqs) {
    Decoder d(m, 1);
    d.submit(r);
    out[r.id] = d.run().at(0).tokens;
  }
  return out;
}

std::map<uint64_t, std::vector<int32_t>> sharded(Model& m, comm::Communicator& comm, LayoutKind kind, int batch,
                                                 const std::vector<GenerationRequest>& reqs) {
  ShardedDecoder d(m, comm, kind, batch);
  for (const auto& r : reqs) d.submit(r);
  std::map<uint64_t, std::vector<int32_t>> out;
  for (auto& r : d.run()) out[r.id] = std::move(r.tokens);
  return out;
}

uint64_t sum_over_ranks(comm::Communicator& comm, uint64_t v) {
  int64_t x = static_cast<int64_t>(v);
  comm.all_reduce(&x, 1, comm::ReduceOp::sum);
  return static_cast<uint64_t>(x);
}

}  // namespace

// One document at a time (batch 1): every length, both layouts, every variant.
TEST(ShardedDecode, GreedyEqualsSingleRank) {
  auto world = comm::MpiCommunicator::create();
  const int P = world->size();
  for (const auto& v : variants()) {
    auto model = Model::load(model_dir(*world, v), true);
    const ModelConfig& c = model->config();
    std::vector<GenerationRequest> reqs;
    for (int64_t L : lengths(P, c.chunk_size)) reqs.push_back(request(L, prompt_of(L, c.vocab_size, L), 9));
    auto want = single_rank(*model, reqs);
    for (auto kind : {LayoutKind::Contiguous, LayoutKind::Zigzag}) {
      auto got = sharded(*model, *world, kind, 1, reqs);
      for (const auto& r : reqs)
        EXPECT_EQ(got[r.id], want[r.id]) << v.name << " P=" << P << " " << layout_name(kind) << " L=" << r.prompt.size();
    }
  }
}

// HF transformers' generate() tokens, sequence-parallel: the fixtures'
// prompts (3 ids, chunk-2, 2*chunk+3) with every layout.
TEST(ShardedDecode, HfFixturesGreedy) {
  auto world = comm::MpiCommunicator::create();
  const std::string root = std::string(RINGSCAN_SOURCE_DIR) + "/tests/fixtures/hf";
  int fixtures = 0;
  for (const char* name : {"groups_gqa", "rope", "swiglu", "mlp_first_g4"}) {
    const std::string dir = root + "/" + name;
    if (!fs::exists(dir + "/generate.json")) continue;
    ++fixtures;
    Json g = read_json_file(dir + "/generate.json");
    auto model = Model::load(dir, true);
    std::vector<GenerationRequest> reqs;
    std::map<uint64_t, std::vector<int32_t>> want;
    for (const auto& gen : g["generations"]) {
      uint64_t id = reqs.size();
      reqs.push_back(request(id, gen["prompt_ids"].get<std::vector<int32_t>>(), g["max_new_tokens"].get<int64_t>()));
      want[id] = gen["new_ids"].get<std::vector<int32_t>>();
    }
    for (auto kind : {LayoutKind::Contiguous, LayoutKind::Zigzag}) {
      auto got = sharded(*model, *world, kind, 2, reqs);
      for (const auto& r : reqs) EXPECT_EQ(got[r.id], want[r.id]) << name << " " << layout_name(kind) << " prompt " << r.id;
    }
  }
  EXPECT_EQ(fixtures, 4);
}

// Continuous batching over the group: 7 documents of different lengths and
// budgets through 3 slots, greedy and sampled, equal each alone on one rank.
TEST(ShardedDecode, BatchedAndSampledEqualSingleRank) {
  auto world = comm::MpiCommunicator::create();
  const int P = world->size();
  const Variant v = variants()[1];
  auto model = Model::load(model_dir(*world, v), true);
  const ModelConfig& c = model->config();
  const std::vector<int64_t> lens = {23, 1, static_cast<int64_t>(P) + 2, 40, 3, 2 * c.chunk_size + 1, 11};
  for (bool sampled : {false, true}) {
    kernels::SamplingParams sp;
    // A sampled token equals the single rank's unless the draw lands within
    // fp32 round-off (~1e-6) of a cumulative-probability boundary: ~1e-5 per
    // draw over these 60 draws.
    if (sampled) sp.temperature = 1.f, sp.top_k = 40, sp.top_p = 0.9f, sp.seed = 2024;
    std::vector<GenerationRequest> reqs;
    for (size_t i = 0; i < lens.size(); ++i)
      reqs.push_back(request(10 + i, prompt_of(lens[i], c.vocab_size, 50 + i), 4 + (i * 3) % 7, sp));
    auto want = single_rank(*model, reqs);
    for (auto kind : {LayoutKind::Contiguous, LayoutKind::Zigzag}) {
      auto got = sharded(*model, *world, kind, 3, reqs);
      ASSERT_EQ(got.size(), reqs.size());
      for (const auto& r : reqs)
        EXPECT_EQ(got[r.id], want[r.id]) << (sampled ? "sampled " : "greedy ") << layout_name(kind) << " document "
                                         << r.id << " (L=" << r.prompt.size() << ")";
    }
  }
}

// The prompt can come as segments (each rank is asked only for its own).
TEST(ShardedDecode, SegmentIdsInsteadOfPrompt) {
  auto world = comm::MpiCommunicator::create();
  auto model = Model::load(model_dir(*world, variants()[0]), true);
  const auto prompt = prompt_of(29, model->config().vocab_size, 3);
  const auto want = single_rank(*model, {request(1, prompt, 6)});
  for (auto kind : {LayoutKind::Contiguous, LayoutKind::Zigzag}) {
    GenerationRequest r = request(1, {}, 6);
    r.prompt_length = prompt.size();
    const SequenceLayout layout = make_layout(prompt.size(), world->size(), kind);
    r.segment_ids = [&](const Segment& s) {
      bool mine = false;
      for (int i : layout.segments_of(world->rank())) mine |= layout.segments[i].begin == s.begin && layout.segments[i].len == s.len;
      EXPECT_TRUE(mine) << "rank " << world->rank() << " asked for another rank's segment at " << s.begin;
      return std::vector<int32_t>(prompt.begin() + s.begin, prompt.begin() + s.end());
    };
    EXPECT_EQ(sharded(*model, *world, kind, 1, {r})[1], want.at(1)) << layout_name(kind);
  }
}

// Bytes of decode, summed over the group, against runtime/decode.h's formulas;
// new K/V rows land where the balance rule says; nothing else is sent.
TEST(ShardedDecode, BytesMatchFormulas) {
  auto world = comm::MpiCommunicator::create();
  const int P = world->size();
  auto model = Model::load(model_dir(*world, variants()[1]), true);
  const ModelConfig& c = model->config();
  const uint64_t A = c.count(LayerKind::Attention), qd = c.num_heads * c.head_dim,
                 kvd = c.num_kv_heads * c.head_dim, Hq = c.num_heads;
  for (auto kind : {LayoutKind::Contiguous, LayoutKind::Zigzag}) {
    for (int64_t L : {int64_t{1}, int64_t{2 * P + 3}}) {
      const int64_t n_new = 7, steps = n_new - 1;  // the first token comes from the prefill
      world->reset_counters();
      ShardedDecoder d(*model, *world, kind, 1);
      d.submit(request(5, prompt_of(L, c.vocab_size, 1), n_new));
      auto res = d.run();
      const auto traffic = world->traffic_by_label();  // before the test's own all-reduces add to it
      ASSERT_EQ(res.size(), 1u);
      ASSERT_EQ(static_cast<int64_t>(res[0].tokens.size()), n_new);
      // Where the rule puts each new row: the smallest shard, lowest rank on ties.
      const SequenceLayout l = make_layout(L, P, kind);
      const int drv = d.driver();
      std::vector<int64_t> rows(P);
      for (int r = 0; r < P; ++r) rows[r] = l.tokens_of(r);
      uint64_t off_driver = 0;
      for (int64_t s = 0; s < steps; ++s) {
        int t = static_cast<int>(std::min_element(rows.begin(), rows.end()) - rows.begin());
        off_driver += t != drv;
        rows[t] += 1;
      }
      const std::string where = std::string(layout_name(kind)) + " L=" + std::to_string(L) + " P=" + std::to_string(P);
      auto sent = [&](const char* label) {
        auto it = traffic.find(label);
        return sum_over_ranks(*world, it == traffic.end() ? 0 : it->second.bytes_sent);
      };
      EXPECT_EQ(sent(ShardedDecoder::kQueryLabel), steps * A * (P - 1) * qd * 4) << where;
      EXPECT_EQ(sent(ShardedDecoder::kPartialLabel), steps * A * (P - 1) * Hq * (c.head_dim + 2) * 4) << where;
      EXPECT_EQ(sent(ShardedDecoder::kKvLabel), off_driver * A * 2 * kvd * 4) << where;
      EXPECT_EQ(sent(ShardedDecoder::kTokenLabel), (1 + steps) * (P - 1) * 4) << where;
      // The last position's hidden row moves once if its owner is not the driver.
      int holder = -1;
      for (const auto& s : l.segments)
        if (s.len > 0 && s.end() == L) holder = s.owner;
      EXPECT_EQ(sent("decode.handoff"), holder == drv ? 0u : c.hidden_size * 4) << where;
      // Everything else is the prefill's (per-layer labels, checked by test_sequence_parallel).
      uint64_t other = 0;
      for (const auto& [label, t] : traffic)
        if (label.rfind("layer", 0) != 0 && label.rfind("decode.", 0) != 0) other += t.bytes_sent;
      EXPECT_EQ(sum_over_ranks(*world, other), 0u) << where;
    }
  }
}
