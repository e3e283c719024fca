// Chunked prefill on the GPU engine (runtime/decode.h, Decoder::
// set_prefill_chunk; runtime/cuda/device_decode_engine.cpp): DeviceModel::
// forward continues a sequence's state across calls; chunks overlapped with
// the decode step (a sibling engine's stream, DeviceModel::make_sibling) give
// the tokens of the same chunks run between steps, and of whole prefill, with
// the decode step still replayed as a CUDA graph; the fp32 engine refuses the
// overlap and says why. (Under tools/cuda_emu every stream is one: there this
// checks the ordering logic and the results, not the concurrency.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "model/device_model.h"
#include "model/hf_fixtures.h"
#include "model/model.h"
#include "runtime/decode.h"
#include "runtime/decode_engine.h"

using namespace ringscan;

namespace {

std::string dir_of(const std::string& name) { return test::hf_fixtures_root() + "/" + name; }

std::vector<int32_t> ids_of(int64_t n, int64_t vocab, int salt) {
  std::vector<int32_t> ids(n);
  for (int64_t t = 0; t < n; ++t) ids[t] = static_cast<int32_t>((t * 37 + salt * 11 + 1) % vocab);
  return ids;
}

// Prompts of 2 to 40 tokens (several blocks of 8), greedy and sampled rows.
std::vector<GenerationRequest> requests(int64_t vocab) {
  std::vector<GenerationRequest> reqs;
  const int64_t lengths[] = {2, 40, 9, 17, 3, 24};
  const int64_t budgets[] = {9, 5, 7, 6, 8, 4};
  for (int i = 0; i < 6; ++i) {
    GenerationRequest r;
    r.id = i;
    r.prompt = ids_of(lengths[i], vocab, i);
    r.max_new_tokens = budgets[i];
    if (i % 2 == 1) r.sampling = kernels::SamplingParams{0.8f, 7, 0.9f, 99u + i};
    reqs.push_back(std::move(r));
  }
  return reqs;
}

std::vector<std::vector<int32_t>> tokens_by_id(std::vector<GenerationResult> r) {
  std::sort(r.begin(), r.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  std::vector<std::vector<int32_t>> t;
  for (auto& g : r) t.push_back(std::move(g.tokens));
  return t;
}

std::vector<std::vector<int32_t>> decode(DecodeEngine& engine, int64_t chunk, bool overlap, bool* overlapped) {
  Decoder d(engine, 3);
  d.set_prefill_chunk(chunk, overlap);
  if (overlapped) *overlapped = d.prefill_overlapped();
  for (auto& r : requests(engine.vocab_size())) d.submit(std::move(r));
  return tokens_by_id(d.run());
}

// The final hidden rows of ids run in chunks of `chunk` (0: one call).
std::vector<float> forward_in_chunks(DeviceModel& m, const std::vector<int32_t>& ids, int64_t chunk) {
  const int64_t L = ids.size(), D = m.config().hidden_size;
  std::vector<float> h(L * D);
  DeviceSequence seq = m.new_sequence(L);
  const int64_t step = chunk > 0 ? chunk : L;
  for (int64_t c0 = 0; c0 < L; c0 += step)
    m.forward(ids.data() + c0, std::min(step, L - c0), seq, [&](int64_t row0, int64_t rows, const float* d) {
      device_to_host(h.data() + (c0 + row0) * D, d, rows * D);
    });
  EXPECT_EQ(seq.position, L);
  return h;
}

}  // namespace

// DeviceModel::forward continues the sequence's caches: chunks that are whole
// blocks give one forward's rows bit for bit (the same blocks run); other cuts
// change the SSD scan's chunking and attention's key blocks (fp32 engine:
// within 1e-4 of the rows' scale, as on the CPU).
TEST(DeviceChunkedPrefill, ForwardInChunksEqualsOneForward) {
  auto model = Model::load(dir_of("rope"), true);
  for (GemmInputs g : {GemmInputs::Fp32, GemmInputs::Bf16}) {
    DeviceModel dev(*model, DeviceModelOptions{g, 8});
    const auto ids = ids_of(37, model->config().vocab_size, 3);
    const auto whole = forward_in_chunks(dev, ids, 0);
    double scale = 0;
    for (float x : whole) scale = std::max(scale, static_cast<double>(std::fabs(x)));
    for (int64_t chunk : {8, 16, 3, 13}) {
      const auto got = forward_in_chunks(dev, ids, chunk);
      double worst = 0;
      for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(got[i] - whole[i])));
      if (chunk % 8 == 0)
        EXPECT_EQ(worst, 0.0) << "chunk " << chunk;
      else if (g == GemmInputs::Fp32)
        EXPECT_LT(worst, 1e-4 * scale) << "chunk " << chunk;
      else  // bf16 inputs: the same rounding of the same values, summed in another order
        EXPECT_LT(worst, 2e-2 * scale) << "chunk " << chunk;
    }
  }
}

// The bf16 engine with decode graphs: chunks beside the decode step (the
// sibling's stream) = the same chunks between steps, token for token, greedy
// and sampled, for chunks of 8 (the block) and, on "rope", 5; and with chunks of 8
// (whole blocks: the same computation) = whole prefill. The decode steps were
// replayed graphs throughout.
TEST(DeviceChunkedPrefill, OverlapEqualsSerialAndWholePrefill) {
  for (const char* name : {"rope", "groups_gqa"}) {
    auto model = Model::load(dir_of(name), true);
    DeviceModel dev(*model, DeviceModelOptions{GemmInputs::Bf16, 8});
    auto engine = make_device_decode_engine(dev);
    const auto whole = decode(*engine, 0, false, nullptr);
    // Chunks of 5 (cut inside blocks) on one fixture: the emulator's minutes are few.
    const std::vector<int64_t> chunks = std::string(name) == "rope" ? std::vector<int64_t>{5, 8} : std::vector<int64_t>{8};
    for (int64_t chunk : chunks) {
      bool on = false, off = true;
      const auto serial = decode(*engine, chunk, false, &off);
      const auto overlapped = decode(*engine, chunk, true, &on);
      EXPECT_FALSE(off);
      EXPECT_TRUE(on) << name << ": overlap refused";
      EXPECT_EQ(overlapped, serial) << name << " chunk " << chunk;
      if (chunk == 8) {
        EXPECT_EQ(overlapped, whole) << name;
      }
    }
    EXPECT_GE(dev.graphs_captured(), 1) << name;
  }
}

// The fp32 engine's GEMMs share one buffer between streams: overlap refused, with the reason.
TEST(DeviceChunkedPrefill, Fp32EngineRefusesOverlapAndSaysWhy) {
  auto model = Model::load(dir_of("rope"), true);
  DeviceModel dev(*model, DeviceModelOptions{GemmInputs::Fp32, 8});
  auto engine = make_device_decode_engine(dev);
  Decoder d(*engine, 2);
  d.set_prefill_chunk(4, true);
  EXPECT_FALSE(d.prefill_overlapped());
  EXPECT_NE(d.prefill_overlap_refused().find("fp32"), std::string::npos) << d.prefill_overlap_refused();
  // The chunks still run (between steps) and give whole prefill's greedy tokens here.
  GenerationRequest r;
  r.id = 1;
  r.prompt = ids_of(19, model->config().vocab_size, 1);
  r.max_new_tokens = 6;
  d.submit(r);
  const auto chunked = d.run().at(0).tokens;
  Decoder w(*engine, 2);
  w.submit(r);
  EXPECT_EQ(chunked, w.run().at(0).tokens);
}
