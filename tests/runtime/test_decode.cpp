// Single-rank generation: greedy tokens equal HF transformers' generate() on
// the committed fixtures; a batched decode step equals forward() of each
// sequence alone; batched decoding with continuous batching (documents of
// different lengths, more documents than slots) gives each document the tokens
// it gets alone, greedy and sampled; stop ids, max_new_tokens, and bad requests.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "decode_test_util.h"
#include "model/model.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "runtime/decode.h"
#include "model/hf_fixtures.h"
#include "sp_test_models.h"
#include "util/error.h"
#include "util/json_util.h"

using namespace ringscan;
namespace fs = std::filesystem;

namespace {
using test::prompt_of;
using test::request;

std::string fixtures_root() { return test::hf_fixtures_root(); }
std::vector<std::string> generate_fixtures() { return test::hf_fixture_names("generate.json"); }

std::string random_model(const std::string& name, const Json& overrides) {
  std::string dir = fs::temp_directory_path().string() + "/ringscan-test-decode-" + name;
  test::write_variant_model(name, overrides, dir, 5);
  return dir;
}

// Two of the shared variants: the tiny preset (relu2, no RoPE), and SwiGLU +
// partial RoPE with attention first, small chunks and conv kernel 2.
const std::vector<test::Variant>& variants() {
  static const std::vector<test::Variant> v = {test::sp_variants()[0], test::sp_variants()[1]};
  return v;
}

std::map<uint64_t, GenerationResult> by_id(std::vector<GenerationResult> rs) {
  std::map<uint64_t, GenerationResult> m;
  for (auto& r : rs) m[r.id] = std::move(r);
  return m;
}

std::vector<int32_t> alone(Model& m, const GenerationRequest& r) {
  Decoder d(m, 1);
  d.submit(r);
  auto out = d.run();
  EXPECT_EQ(out.size(), 1u);
  return out.empty() ? std::vector<int32_t>{} : out[0].tokens;
}

}  // namespace

class HfGenerate : public ::testing::TestWithParam<std::string> {};

// Greedy tokens = transformers' generate (fixtures have a top-1/top-2 logit
// gap >= 0.03 at every step, far above fp32 round-off, so the ids must match
// exactly). Each prompt alone, then all of a fixture's prompts batched.
TEST_P(HfGenerate, GreedyMatchesTransformers) {
  const std::string dir = fixtures_root() + "/" + GetParam();
  Json g = read_json_file(dir + "/generate.json");
  auto model = Model::load(dir, true);
  const int64_t n_new = g["max_new_tokens"].get<int64_t>();
  ASSERT_GE(g["generations"].size(), 2u);
  Decoder batched(*model, 8);
  std::map<uint64_t, std::vector<int32_t>> expected;
  bool longer_than_chunk = false;
  uint64_t id = 0;
  for (const auto& gen : g["generations"]) {
    auto prompt = gen["prompt_ids"].get<std::vector<int32_t>>();
    auto want = gen["new_ids"].get<std::vector<int32_t>>();
    longer_than_chunk |= static_cast<int64_t>(prompt.size()) > model->config().chunk_size;
    ASSERT_EQ(static_cast<int64_t>(want.size()), n_new);
    EXPECT_EQ(alone(*model, request(id, prompt, n_new)), want) << GetParam() << " prompt of " << prompt.size();
    batched.submit(request(id, prompt, n_new));
    expected[id++] = want;
  }
  EXPECT_TRUE(longer_than_chunk) << "no prompt longer than a chunk in " << GetParam();
  auto got = by_id(batched.run());
  ASSERT_EQ(got.size(), expected.size());
  for (auto& [i, want] : expected) {
    EXPECT_EQ(got[i].tokens, want) << GetParam() << " batched, prompt " << i;
    EXPECT_EQ(got[i].reason, StopReason::Length);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfGenerate, ::testing::ValuesIn(generate_fixtures()),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (auto& ch : s)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });
TEST(HfGenerate, FixturesArePresent) { EXPECT_GE(generate_fixtures().size(), 3u) << fixtures_root(); }

// The step itself: decode_step on a batch of sequences at different positions
// gives, for each, the logits forward() computes for that position over the
// whole sequence at once. fp32 with different summation orders (chunked scan
// vs one-token steps, blocked attention): 2e-4 of the logit scale, as in
// test_forward_consistency; a wrong state, history or position moves logits O(1).
TEST(Decode, BatchedStepMatchesForwardOfEachSequence) {
  for (const auto& [name, overrides] : variants()) {
    auto model = Model::load(random_model(name, overrides), true);
    const ModelConfig& c = model->config();
    const int64_t D = c.hidden_size, V = c.vocab_size;
    const std::vector<int64_t> lengths = {1, 4, c.chunk_size + 2, 3 * c.chunk_size + 1, 2};
    const int64_t steps = 6, B = lengths.size();
    std::vector<std::vector<int32_t>> seqs;
    std::vector<InferenceState> states;
    for (int64_t b = 0; b < B; ++b) {
      seqs.push_back(prompt_of(lengths[b] + steps, V, b));
      states.push_back(model->new_state());
      std::vector<float> h(lengths[b] * D);
      model->forward(seqs[b].data(), lengths[b], states[b], h.data());
    }
    std::vector<std::vector<float>> got(B);  // logits of each decoded position
    for (int64_t s = 0; s < steps; ++s) {
      std::vector<int32_t> ids(B);
      std::vector<InferenceState*> ptrs(B);
      for (int64_t b = 0; b < B; ++b) ids[b] = seqs[b][lengths[b] + s], ptrs[b] = &states[b];
      std::vector<float> h(B * D), logits(B * V);
      model->decode_step(ids.data(), B, ptrs.data(), h.data());
      model->logits(h.data(), B, logits.data());
      for (int64_t b = 0; b < B; ++b) got[b].insert(got[b].end(), logits.begin() + b * V, logits.begin() + (b + 1) * V);
    }
    for (int64_t b = 0; b < B; ++b) {
      EXPECT_EQ(states[b].position, lengths[b] + steps);
      const int64_t L = seqs[b].size();
      std::vector<float> h(L * D), logits(L * V);
      InferenceState st = model->new_state();
      model->forward(seqs[b].data(), L, st, h.data());
      model->logits(h.data(), L, logits.data());
      double worst = 0, scale = 0;
      for (int64_t s = 0; s < steps; ++s)
        for (int64_t j = 0; j < V; ++j) {
          const float want = logits[(lengths[b] + s) * V + j];
          worst = std::max(worst, static_cast<double>(std::fabs(got[b][s * V + j] - want)));
          scale = std::max(scale, static_cast<double>(std::fabs(want)));
        }
      EXPECT_LT(worst, 2e-4 * scale) << name << " sequence of " << lengths[b] << ": max |diff| " << worst;
    }
  }
}

// Continuous batching: 9 documents of different lengths and budgets through 3
// slots give each document exactly the tokens it gets alone, greedy and with
// sampling (the draw is keyed by (seed, document id, step), not by the slot).
TEST(Decode, ContinuousBatchingEqualsEachAlone) {
  for (const auto& [name, overrides] : variants()) {
    auto model = Model::load(random_model(name, overrides), true);
    const ModelConfig& c = model->config();
    const std::vector<int64_t> lengths = {33, 1, 7, c.chunk_size, 2 * c.chunk_size + 3, 5, 70, 2, 12};
    for (bool sampled : {false, true}) {
      kernels::SamplingParams sp;
      if (sampled) sp.temperature = 0.9f, sp.top_k = 50, sp.top_p = 0.95f, sp.seed = 77;
      Decoder d(*model, 3);
      std::vector<GenerationRequest> reqs;
      for (size_t i = 0; i < lengths.size(); ++i) {
        reqs.push_back(request(100 + i, prompt_of(lengths[i], c.vocab_size, i), 3 + (i * 5) % 11, sp));
        d.submit(reqs.back());
      }
      EXPECT_EQ(d.waiting(), static_cast<int>(lengths.size()));
      std::vector<GenerationResult> all;
      int max_active = 0;
      while (!d.idle()) {
        for (auto& r : d.step()) all.push_back(std::move(r));
        max_active = std::max(max_active, d.active());
      }
      EXPECT_EQ(max_active, 3);
      auto got = by_id(std::move(all));
      ASSERT_EQ(got.size(), reqs.size());
      for (const auto& r : reqs) {
        const auto& g = got[r.id];
        EXPECT_EQ(static_cast<int64_t>(g.tokens.size()), r.max_new_tokens);
        EXPECT_EQ(g.prompt_tokens, static_cast<int64_t>(r.prompt.size()));
        EXPECT_EQ(g.tokens, alone(*model, r)) << name << (sampled ? " sampled" : " greedy") << " document " << r.id;
      }
      if (sampled) {  // a different seed gives other tokens somewhere
        GenerationRequest r = reqs[6];
        const auto a = alone(*model, r);
        r.sampling.seed = 78;
        EXPECT_NE(alone(*model, r), a);
      }
    }
  }
}

// A stop id ends generation right after it is drawn (and is kept); a budget
// of 0 returns no tokens without running the model; submit_prefilled equals
// submit.
TEST(Decode, StopIdsBudgetsAndPrefilledStates) {
  auto model = Model::load(random_model("tiny", Json::object()), true);
  const ModelConfig& c = model->config();
  const auto prompt = prompt_of(20, c.vocab_size, 9);
  const auto free_run = alone(*model, request(1, prompt, 10));
  ASSERT_EQ(free_run.size(), 10u);
  // The first position where a token appears for the first time, from the third on.
  size_t k = 2;
  while (std::find(free_run.begin(), free_run.begin() + k, free_run[k]) != free_run.begin() + k) ++k;
  ASSERT_LT(k, free_run.size());
  GenerationRequest r = request(1, prompt, 10);
  r.stop_ids = {free_run[k], static_cast<int32_t>(c.vocab_size + 5)};
  Decoder d(*model, 2);
  d.submit(r);
  d.submit(request(2, prompt, 0));
  auto got = by_id(d.run());
  EXPECT_EQ(got[1].tokens, std::vector<int32_t>(free_run.begin(), free_run.begin() + k + 1));
  EXPECT_EQ(got[1].reason, StopReason::StopId);
  EXPECT_TRUE(got[2].tokens.empty());
  EXPECT_EQ(got[2].reason, StopReason::Length);

  InferenceState st = model->new_state();
  std::vector<float> h(prompt.size() * c.hidden_size);
  model->forward(prompt.data(), prompt.size(), st, h.data());
  Decoder p(*model, 1);
  p.submit_prefilled(request(1, prompt, 10), std::move(st), std::vector<float>(h.end() - c.hidden_size, h.end()));
  EXPECT_EQ(p.run()[0].tokens, free_run);
}

TEST(Decode, BadRequestsSayWhat) {
  auto model = Model::load(random_model("tiny", Json::object()), true);
  Decoder d(*model, 1);
  try {
    d.submit(request(42, {}, 3));
    FAIL() << "an empty prompt was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("request 42 has an empty prompt"), std::string::npos) << e.what();
  }
  EXPECT_THROW(d.submit(request(1, {1, 2}, -1)), Error);
  EXPECT_THROW(Decoder(*model, 0), Error);
  try {
    d.submit(request(3, {1, 999999}, 2));
    FAIL() << "a bad id was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("request 3: token id 999999 at position 1 is outside the vocabulary"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(d.idle());
}

// `ringscan forward --generate N`: alone and under mpirun (sequence-parallel
// prefill, sharded decode, both layouts), the per-position lines are those of
// a plain forward and the last line holds transformers' greedy tokens.
TEST(ForwardCliGenerate, PrintsTransformersTokensAloneAndUnderMpirun) {
  const std::string dir = fixtures_root() + "/rope";
  Json g = read_json_file(dir + "/generate.json");
  const auto& gen = g["generations"][2];  // the prompt longer than two chunks
  const auto prompt = gen["prompt_ids"].get<std::vector<int32_t>>();
  std::string ids;
  for (auto id : prompt) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  const std::string bin = std::string(RINGSCAN_BINARY_DIR) + "/ringscan forward --model " + dir + " --ids " + ids;
  const std::string out = fs::temp_directory_path().string() + "/ringscan-test-decode-cli.jsonl";
  auto lines_of = [&](const std::string& cmd) {
    EXPECT_EQ(std::system((cmd + " > " + out).c_str()), 0) << cmd;
    std::vector<std::string> lines;
    std::ifstream in(out);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  };
  const auto plain = lines_of(bin);
  ASSERT_EQ(plain.size(), prompt.size());
  // The build's launcher script: the flags and variables of its MPI (cmake/RingscanMpi.cmake).
  const std::string mpirun = std::string("OMP_NUM_THREADS=1 ") + RINGSCAN_MPIEXEC + " -np 3 ";
  for (const std::string& cmd : {bin + " --generate 12", mpirun + bin + " --generate 12 --layout zigzag",
                                 mpirun + bin + " --generate 12 --layout contiguous"}) {
    const auto lines = lines_of(cmd);
    ASSERT_EQ(lines.size(), prompt.size() + 1) << cmd;
    for (size_t i = 0; i < prompt.size(); ++i) {  // same positions and top ids as the plain run
      Json a = Json::parse(lines[i]), b = Json::parse(plain[i]);
      EXPECT_EQ(a["pos"], b["pos"]) << cmd;
      EXPECT_EQ(a["top_k"][0][0], b["top_k"][0][0]) << cmd;
    }
    Json last = Json::parse(lines.back());
    EXPECT_EQ(last["generated"].get<std::vector<int32_t>>(), gen["new_ids"].get<std::vector<int32_t>>()) << cmd;
  }
}
