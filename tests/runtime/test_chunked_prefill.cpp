// Chunked prefill (runtime/decode.h, Decoder::set_prefill_chunk) on the CPU
// engine: a prompt run in chunks continues each chunk's state exactly as one
// forward does (bit for bit where chunks are whole blocks, within fp32
// round-off otherwise); the Decoder with chunks gives every document the
// tokens of whole prefill, greedy and sampled; and decode steps never wait for
// more than one chunk of prompt tokens (the point of chunking).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "decode_test_util.h"
#include "model/model.h"
#include "runtime/decode.h"
#include "sp_test_models.h"
#include "util/error.h"

using namespace ringscan;
namespace fs = std::filesystem;

namespace {
using test::prompt_of;
using test::request;

std::unique_ptr<Model> variant_model(const test::Variant& v) {
  const std::string dir = fs::temp_directory_path().string() + "/ringscan-test-chunked-" + v.name;
  test::write_variant_model(v.name, v.overrides, dir, 11);
  return Model::load(dir, true);
}

std::map<uint64_t, std::vector<int32_t>> tokens_by_id(std::vector<GenerationResult> rs) {
  std::map<uint64_t, std::vector<int32_t>> m;
  for (auto& r : rs) m[r.id] = std::move(r.tokens);
  return m;
}

// Final hidden rows of `ids` run in chunks of `chunk` (the whole at once for chunk 0).
std::vector<float> hidden_in_chunks(Model& m, const std::vector<int32_t>& ids, int64_t chunk, InferenceState& st) {
  const int64_t L = ids.size(), D = m.config().hidden_size;
  std::vector<float> h(L * D);
  st = m.new_state();
  const int64_t step = chunk > 0 ? chunk : L;
  for (int64_t c0 = 0; c0 < L; c0 += step)
    m.forward(ids.data() + c0, std::min(step, L - c0), st, h.data() + c0 * D);
  return h;
}

// A DecodeEngine that forwards to the CPU engine and records, for each decode
// step, the prompt tokens prefilled since the step before (whole or chunked).
class RecordingEngine final : public DecodeEngine {
 public:
  explicit RecordingEngine(Model& m) : cpu_(m) {}
  std::vector<int64_t> prompt_tokens_before_step;  // one entry per step()
  std::vector<int64_t> batch_of_step;

  int64_t vocab_size() const override { return cpu_.vocab_size(); }
  int64_t max_batch() const override { return cpu_.max_batch(); }
  std::unique_ptr<Sequence> prefill(const std::vector<int32_t>& p, const LogitsSink* s) override {
    since_ += static_cast<int64_t>(p.size());
    return cpu_.prefill(p, s);
  }
  std::unique_ptr<Sequence> start_prefill(int64_t n) override { return cpu_.start_prefill(n); }
  void prefill_chunk(Sequence& seq, const int32_t* ids, int64_t n, bool overlap) override {
    since_ += n;
    cpu_.prefill_chunk(seq, ids, n, overlap);
  }
  bool enable_prefill_overlap(std::string* why) override { return cpu_.enable_prefill_overlap(why); }
  int32_t first_token(Sequence& seq, const kernels::SamplingParams& p, uint64_t s, uint64_t k) override {
    return cpu_.first_token(seq, p, s, k);
  }
  void step(const int32_t* ids, int64_t n, Sequence* const* seqs, const kernels::SamplingParams* p,
            const uint64_t* s, const uint64_t* k, int32_t* out) override {
    prompt_tokens_before_step.push_back(since_);
    batch_of_step.push_back(n);
    since_ = 0;
    cpu_.step(ids, n, seqs, p, s, k, out);
  }

 private:
  CpuDecodeEngine cpu_;
  int64_t since_ = 0;
};

}  // namespace

// Model::forward continues a sequence's state across calls: a prompt run in
// chunks gives the hidden rows of one forward. Chunks that are whole blocks
// (block_tokens is whole SSD chunks) change no summation: bit-identical.
// Other cuts change the SSD scan's chunking and attention's key blocks, so the
// sums go in another order: within 1e-4 of the rows' scale (fp32; a lost or
// doubled state moves rows O(1)).
TEST(ChunkedPrefill, ForwardInChunksEqualsOneForward) {
  for (const auto& v : {test::sp_variants()[0], test::sp_variants()[1]}) {
    auto model = variant_model(v);
    const ModelConfig& c = model->config();
    model->set_block_tokens(2 * c.chunk_size);
    const int64_t L = 5 * c.chunk_size + 3, D = c.hidden_size;
    const auto ids = prompt_of(L, c.vocab_size, 4);
    InferenceState whole_state;
    const std::vector<float> whole = hidden_in_chunks(*model, ids, 0, whole_state);
    double scale = 0;
    for (float x : whole) scale = std::max(scale, static_cast<double>(std::fabs(x)));
    for (int64_t chunk : {int64_t{1}, int64_t{3}, c.chunk_size + 1, 2 * c.chunk_size, 4 * c.chunk_size}) {
      InferenceState st;
      const std::vector<float> got = hidden_in_chunks(*model, ids, chunk, st);
      EXPECT_EQ(st.position, L);
      double worst = 0;
      for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(got[i] - whole[i])));
      if (chunk % model->block_tokens() == 0)
        EXPECT_EQ(worst, 0.0) << v.name << " chunk " << chunk << " (whole blocks)";
      else
        EXPECT_LT(worst, 1e-4 * scale) << v.name << " chunk " << chunk;
      // The state carries on: one more token decodes to the same row.
      const int32_t next = 17;
      std::vector<float> a(D), b(D);
      InferenceState copy_b = whole_state;
      InferenceState* pa = &st;
      InferenceState* pb = &copy_b;
      model->decode_step(&next, 1, &pa, a.data());
      model->decode_step(&next, 1, &pb, b.data());
      double row = 0;
      for (int64_t j = 0; j < D; ++j) row = std::max(row, static_cast<double>(std::fabs(a[j] - b[j])));
      EXPECT_LT(row, 1e-4 * scale) << v.name << " chunk " << chunk << ": the decode after the chunks";
    }
  }
}

// The Decoder with chunked prefill: 9 documents (prompts from 1 token to
// several chunks) through 3 slots give each document the tokens whole
// prefill gives it, greedy and sampled, for chunks of 1, 5 and 64 tokens.
// On the CPU the chunks interleave with the steps and never overlap them,
// and the Decoder says why.
TEST(ChunkedPrefill, DecoderTokensEqualWholePrefill) {
  for (const auto& v : {test::sp_variants()[0], test::sp_variants()[1]}) {
    auto model = variant_model(v);
    const ModelConfig& c = model->config();
    const std::vector<int64_t> lengths = {33, 1, 7, c.chunk_size, 2 * c.chunk_size + 3, 5, 70, 2, 12};
    for (bool sampled : {false, true}) {
      kernels::SamplingParams sp;
      if (sampled) sp.temperature = 0.9f, sp.top_k = 50, sp.top_p = 0.95f, sp.seed = 5;
      std::vector<GenerationRequest> reqs;
      for (size_t i = 0; i < lengths.size(); ++i)
        reqs.push_back(request(200 + i, prompt_of(lengths[i], c.vocab_size, i), 2 + (i * 5) % 9, sp));
      auto run = [&](int64_t chunk) {
        Decoder d(*model, 3);
        d.set_prefill_chunk(chunk);
        if (chunk > 0) {
          EXPECT_FALSE(d.prefill_overlapped());
          EXPECT_NE(d.prefill_overlap_refused().find("CPU engine"), std::string::npos);
        }
        for (const auto& r : reqs) d.submit(r);
        return tokens_by_id(d.run());
      };
      const auto whole = run(0);
      ASSERT_EQ(whole.size(), reqs.size());
      for (int64_t chunk : {1, 5, 64}) {
        const auto got = run(chunk);
        ASSERT_EQ(got.size(), reqs.size()) << "chunk " << chunk;
        for (const auto& r : reqs)
          EXPECT_EQ(got.at(r.id), whole.at(r.id))
              << v.name << (sampled ? " sampled" : " greedy") << " chunk " << chunk << " document " << r.id;
      }
    }
  }
  auto model = variant_model(test::sp_variants()[0]);
  Decoder d(*model, 2);
  EXPECT_THROW(d.set_prefill_chunk(-1), Error);
}

// What chunking is for: two documents decode while a 200-token prompt is
// admitted. Whole prefill makes one decode step wait for all 200 prompt
// tokens; with chunks of 16, no step waits for more than 16, the two
// documents keep decoding while the long prompt goes in (13 steps), and it
// then joins the batch.
TEST(ChunkedPrefill, DecodeStepsWaitForOneChunkAtMost) {
  auto model = variant_model(test::sp_variants()[0]);
  const int64_t V = model->config().vocab_size;
  auto run = [&](int64_t chunk) {
    RecordingEngine e(*model);
    Decoder d(e, 3);
    d.set_prefill_chunk(chunk);
    d.submit(request(1, prompt_of(4, V, 1), 30));
    d.submit(request(2, prompt_of(6, V, 2), 30));
    d.step();
    d.step();  // chunked: the short prompts are in; both decode
    d.submit(request(3, prompt_of(200, V, 3), 4));
    const auto results = d.run();
    EXPECT_EQ(results.size(), 3u);
    return e;
  };
  const RecordingEngine whole = run(0);
  EXPECT_EQ(*std::max_element(whole.prompt_tokens_before_step.begin(), whole.prompt_tokens_before_step.end()), 200);
  const RecordingEngine chunked = run(16);
  const auto& before = chunked.prompt_tokens_before_step;
  EXPECT_EQ(*std::max_element(before.begin(), before.end()), 16);
  // The steps that ran beside the long prompt's 13 chunks decoded the two others.
  int64_t beside = 0;
  for (size_t s = 0; s < before.size(); ++s)
    if (before[s] > 0 && s >= 1) {
      ++beside;
      EXPECT_EQ(chunked.batch_of_step[s], 2) << "step " << s;
    }
  EXPECT_GE(beside, 12);
  EXPECT_EQ(*std::max_element(chunked.batch_of_step.begin(), chunked.batch_of_step.end()), 3);
}
