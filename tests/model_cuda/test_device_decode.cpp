// The batched GPU decode step (model/cuda/device_decode_step.cpp) through the
// Decoder: the CUDA-graph path against the op-by-op path, the GPU engine's
// greedy tokens against the CPU engine's, and the bf16 KV cache's effect on
// greedy generation against HF generate.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "model/device_model.h"
#include "model/hf_fixtures.h"
#include "model/memory_plan.h"
#include "model/model.h"
#include "runtime/decode.h"
#include "runtime/decode_engine.h"
#include "util/json_util.h"

using namespace ringscan;
namespace fs = std::filesystem;

namespace {

std::string dir_of(const std::string& name) { return test::hf_fixtures_root() + "/" + name; }

std::vector<GenerationResult> by_id(std::vector<GenerationResult> r) {
  std::sort(r.begin(), r.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return r;
}

std::vector<GenerationResult> decode_all(DecodeEngine& engine, int max_batch, std::vector<GenerationRequest> reqs) {
  Decoder d(engine, max_batch);
  for (auto& r : reqs) d.submit(std::move(r));
  return by_id(d.run());
}

// Requests that make a continuous batch change size: different prompt
// lengths and budgets (documents leave at different steps, waiting ones
// join), greedy rows next to temperature / top-k / top-p draws.
std::vector<GenerationRequest> mixed_requests(int64_t vocab, int64_t long_budget) {
  std::vector<GenerationRequest> reqs;
  const int64_t budgets[] = {9, 4, long_budget, 6, 2, 7};
  for (int i = 0; i < 6; ++i) {
    GenerationRequest r;
    r.id = i;
    for (int t = 0; t < 2 + 5 * i; ++t) r.prompt.push_back(static_cast<int32_t>((t * 37 + i * 11 + 1) % vocab));
    r.max_new_tokens = budgets[i];
    if (i % 2 == 1) r.sampling = kernels::SamplingParams{0.8f, i == 1 ? 0 : 7, i == 5 ? 0.9f : 1.f, 1234u + i};
    reqs.push_back(std::move(r));
  }
  return reqs;
}

// The graph path (padded to the captured sizes, two graphs kept so that the
// cache evicts) gives the op-by-op path's tokens, for both engines (fp32 with
// an fp32 cache, bf16 with a bf16 cache). One document decodes past 256
// tokens, so its KV cache is reallocated while graphs replay: the pointers
// are table data, not baked into a graph.
TEST(DeviceDecode, GraphEqualsEager) {
  for (const char* name : {"rope", "groups_gqa"}) {
    auto model = Model::load(dir_of(name), true);
    for (GemmInputs g : {GemmInputs::Fp32, GemmInputs::Bf16}) {
      DeviceModelOptions eager_opt{g, 0};
      eager_opt.decode_graphs = false;
      DeviceModelOptions graph_opt{g, 0};
      graph_opt.graph_cache = 2;
      DeviceModel eager(*model, eager_opt), graphed(*model, graph_opt);
      const int64_t long_budget = std::string(name) == "rope" && g == GemmInputs::Fp32 ? 270 : 12;
      auto e = make_device_decode_engine(eager), q = make_device_decode_engine(graphed);
      const auto want = decode_all(*e, 3, mixed_requests(model->config().vocab_size, long_budget));
      const auto got = decode_all(*q, 3, mixed_requests(model->config().vocab_size, long_budget));
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_EQ(got[i].tokens, want[i].tokens) << name << (g == GemmInputs::Fp32 ? " fp32" : " bf16") << " request "
                                                 << got[i].id;
      EXPECT_EQ(eager.graphs_captured(), 0);
      // Batches of 3, 2 and 1 run padded to 4, 2 and 1: three sizes, two kept.
      EXPECT_GE(graphed.graphs_captured(), 3) << name;
      EXPECT_LE(graphed.graphs_kept(), 2) << name;
      std::printf("  %-10s %s: %lld graphs captured\n", name, g == GemmInputs::Fp32 ? "fp32" : "bf16",
                  static_cast<long long>(graphed.graphs_captured()));
    }
  }
}

// Greedy tokens of the GPU engine (fp32 GEMMs and cache, graphs on) equal
// the CPU engine's, on every fixture, for longer generations than HF's
// generate.json holds and with documents joining and leaving the batch.
TEST(DeviceDecode, GreedyEqualsCpuEngine) {
  for (const std::string& name : test::hf_fixture_names("generate.json")) {
    auto model = Model::load(dir_of(name), true);
    DeviceModel dev(*model, DeviceModelOptions{GemmInputs::Fp32, 0});
    ASSERT_EQ(dev.kv_cache_dtype(), DType::F32);
    auto gpu = make_device_decode_engine(dev);
    CpuDecodeEngine cpu(*model);
    const Json gens = read_json_file(dir_of(name) + "/generate.json");  // outlives the loop
    std::vector<GenerationRequest> reqs;
    for (const auto& g : gens["generations"]) {
      GenerationRequest r;
      r.id = reqs.size();
      r.prompt = g["prompt_ids"].get<std::vector<int32_t>>();
      r.max_new_tokens = 20 + 3 * static_cast<int64_t>(reqs.size());
      reqs.push_back(r);
    }
    const auto want = decode_all(cpu, 2, reqs), got = decode_all(*gpu, 2, reqs);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].tokens, want[i].tokens) << name << " request " << i;
  }
}

// The bf16 KV cache on greedy generation: the bf16 engine (bf16 GEMM inputs)
// with an fp32 and with a bf16 cache, each against HF generate (fp32), token
// for token. Printed per fixture: how many of the new tokens agree with HF
// before the first difference. Required: the bf16 cache agrees with HF as
// far as the fp32 cache does on every prompt but at most one per fixture
// (a bf16 rounding of K/V may flip a near-tie; the fp32 engine's exactness
// is GreedyEqualsCpuEngine's and DeviceHfParity's).
TEST(DeviceDecode, Bf16CacheAgreementWithTransformers) {
  int total = 0, same_fp32 = 0, same_bf16 = 0;
  for (const std::string& name : test::hf_fixture_names("generate.json")) {
    auto model = Model::load(dir_of(name), true);
    DeviceModelOptions f32{GemmInputs::Bf16, 0}, b16{GemmInputs::Bf16, 0};
    f32.kv_cache = DType::F32;
    DeviceModel a(*model, f32), b(*model, b16);
    ASSERT_EQ(b.kv_cache_dtype(), DType::BF16);  // the bf16 engine's default
    // ... which the GPU memory plan (info, the scheduler's token budget) counts.
    const ModelConfig& c = model->config();
    EXPECT_EQ(plan_device_memory(c, 1000, 1, b.block_tokens()).kv_cache_bytes,
              1000 * kv_bytes_per_token(c, dtype_size(DeviceModel(*model, DeviceModelOptions{}).kv_cache_dtype())));
    auto ea = make_device_decode_engine(a), eb = make_device_decode_engine(b);
    const Json gens = read_json_file(dir_of(name) + "/generate.json");
    std::vector<GenerationRequest> reqs;
    std::vector<std::vector<int32_t>> hf;
    for (const auto& g : gens["generations"]) {
      GenerationRequest r;
      r.id = reqs.size();
      r.prompt = g["prompt_ids"].get<std::vector<int32_t>>();
      hf.push_back(g["new_ids"].get<std::vector<int32_t>>());
      r.max_new_tokens = static_cast<int64_t>(hf.back().size());
      reqs.push_back(r);
    }
    const auto ra = decode_all(*ea, 3, reqs), rb = decode_all(*eb, 3, reqs);
    auto agree = [](const std::vector<int32_t>& x, const std::vector<int32_t>& y) {
      size_t k = 0;
      while (k < x.size() && k < y.size() && x[k] == y[k]) ++k;
      return static_cast<int>(k);
    };
    int worse = 0;
    for (size_t i = 0; i < hf.size(); ++i) {
      const int fa = agree(ra[i].tokens, hf[i]), fb = agree(rb[i].tokens, hf[i]);
      std::printf("  %-16s prompt %zu: bf16 GEMMs agree with HF for %2d/%zu tokens with an fp32 cache, %2d with a bf16 cache\n",
                  name.c_str(), i, fa, hf[i].size(), fb);
      total += static_cast<int>(hf[i].size());
      same_fp32 += fa, same_bf16 += fb;
      worse += fb < fa;
    }
    EXPECT_LE(worse, 1) << name;
  }
  std::printf("  all fixtures: %d/%d tokens before the first difference from HF with an fp32 cache, %d with bf16\n",
              same_fp32, total, same_bf16);
}

}  // namespace
