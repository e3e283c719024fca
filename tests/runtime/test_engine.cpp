// The runtime's engine (runtime/engine.h) on the CPU backend: document values
// built block by block (as the GPU backend feeds them) equal one block, a
// packed batch equals each document alone, and a prefill hands over every
// position's logits in bounded blocks, in order. The GPU backend runs the same
// builder and sink under tools/cuda_emu (run.sh jobs: --device cuda = cpu).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "runtime/engine.h"
#include "runtime/score_windows.h"
#include "sp_test_models.h"
#include "util/error.h"

namespace ringscan {
namespace {

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::filesystem::temp_directory_path().string() + "/ringscan-test-engine";
    test::write_variant_model("tiny", Json::object(), dir, 11);
    model_ = Model::load(dir, true);
    engine_.prepare(*model_);
  }
  std::vector<int32_t> ids(int64_t n, int32_t seed) const {
    std::vector<int32_t> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>((seed + 7 * i) % model_->config().vocab_size);
    return v;
  }

  std::unique_ptr<Model> model_;
  Engine engine_{"cpu", "auto", 0};
  const WantedOutputs all_{true, true, false};
};

void expect_near(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(b[i])) {
      EXPECT_TRUE(std::isnan(a[i])) << i;
      continue;
    }
    EXPECT_NEAR(a[i], b[i], 1e-5f * (1.f + std::fabs(b[i]))) << i;
  }
}

void expect_same_values(const DocumentValues& a, const DocumentValues& b) {
  expect_near(a.logprob, b.logprob);
  expect_near(a.embedding_mean, b.embedding_mean);
  expect_near(a.embedding_last, b.embedding_last);
}

TEST_F(EngineTest, ValuesBuiltInBlocksEqualOneBlock) {
  const std::vector<int32_t> doc = ids(11, 3);
  const int64_t D = model_->config().hidden_size;
  std::vector<float> hidden(doc.size() * D);
  InferenceState st = model_->new_state();
  model_->forward(doc.data(), static_cast<int64_t>(doc.size()), st, hidden.data());
  DocumentValuesBuilder blocks(doc, D, all_);
  for (int64_t r0 = 0; r0 < 11; r0 += 4)
    blocks.add(r0, HostFinalHidden(*model_, hidden.data() + r0 * D, std::min<int64_t>(4, 11 - r0)));
  const DocumentValues v = blocks.take();
  ASSERT_EQ(v.logprob.size(), doc.size());
  EXPECT_TRUE(std::isnan(v.logprob[0]));
  expect_same_values(v, engine_.compute(doc, all_));
}

TEST_F(EngineTest, PackedEqualsEachAlone) {
  const std::vector<std::vector<int32_t>> docs = {ids(5, 1), ids(1, 2), ids(9, 4), {}};
  const std::vector<DocumentValues> packed = engine_.compute_packed(docs, all_);
  ASSERT_EQ(packed.size(), docs.size());
  for (size_t i = 0; i < docs.size(); ++i) expect_same_values(packed[i], engine_.compute(docs[i], all_));
  EXPECT_TRUE(packed[3].logprob.empty() && packed[3].embedding_mean.empty());
}

TEST_F(EngineTest, PrefillHandsOverEveryPositionsLogitsInOrder) {
  const std::vector<int32_t> doc = ids(10, 5);
  const int64_t V = model_->config().vocab_size, D = model_->config().hidden_size;
  std::vector<float> got;
  int64_t next_row = 0;
  const LogitsSink sink{3, [&](int64_t row0, int64_t rows, std::vector<float> logits) {
                          EXPECT_EQ(row0, next_row);
                          EXPECT_LE(rows, 3);
                          EXPECT_EQ(static_cast<int64_t>(logits.size()), rows * V);
                          next_row += rows;
                          got.insert(got.end(), logits.begin(), logits.end());
                        }};
  engine_.decode_engine().prefill(doc, &sink);
  EXPECT_EQ(next_row, 10);
  std::vector<float> hidden(doc.size() * D), want(doc.size() * V);
  InferenceState st = model_->new_state();
  model_->forward(doc.data(), 10, st, hidden.data());
  model_->logits(hidden.data(), 10, want.data());
  expect_near(got, want);
}

TEST(ScoreWindows, EveryTokenScoredOnceWithEnoughContext) {
  EXPECT_EQ(score_windows(5, 8, 4).size(), 1u);  // fits: one plain window
  for (int64_t n : {1, 7, 16, 17, 40}) {
    for (auto [w, s] : {std::pair<int64_t, int64_t>{16, 6}, {8, 8}, {5, 1}}) {
      std::vector<int> scored(n, 0);
      int64_t previous_begin = -1;
      for (const ScoreWindow& win : score_windows(n, w, s)) {
        EXPECT_LE(win.end - win.begin, w);
        EXPECT_GT(win.begin, previous_begin);
        previous_begin = win.begin;
        for (int64_t t = win.first_scored; t < win.end; ++t) {
          ++scored[t];
          if (win.begin > 0) {
            EXPECT_GE(t - win.begin, w - s) << "token " << t << " lacks context";
          }
        }
      }
      for (int64_t t = 0; t < n; ++t) EXPECT_EQ(scored[t], 1) << "n " << n << " token " << t;
    }
  }
  EXPECT_THROW(score_windows(10, 4, 5), Error);
  EXPECT_THROW(score_windows(10, 0, 0), Error);
}

// Windowed scores of the demo model against a plain loop: token t >= window is scored by
// the model run on ids[b .. t] alone, b the first multiple of the stride with
// b + window > t; earlier tokens by the model run on ids[0 .. t].
TEST(ScoreWindows, WindowedScoresEqualAPlainLoopOverTheModel) {
  const std::string dir = std::filesystem::temp_directory_path().string() + "/ringscan-test-windows";
  std::filesystem::remove_all(dir);
  RandomCheckpointOptions o;
  o.seed = 5;
  o.dtype = DType::F32;
  write_random_checkpoint(preset_config("demo"), dir, o);
  std::unique_ptr<Model> model = Model::load(dir, true);
  Engine engine("cpu", "auto", 0);
  engine.prepare(*model);
  const int64_t V = model->config().vocab_size, D = model->config().hidden_size;
  std::vector<int32_t> ids(37);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((11 + 97 * i) % V);
  const int64_t window = 12, stride = 5;
  const DocumentValues v = engine.compute_windowed(ids, window, stride);
  ASSERT_EQ(v.logprob.size(), ids.size());
  EXPECT_TRUE(std::isnan(v.logprob[0]));
  for (int64_t t = 1; t < static_cast<int64_t>(ids.size()); ++t) {
    const int64_t b = t < window ? 0 : ((t - window) / stride + 1) * stride;
    const int64_t len = t - b;  // context tokens ids[b .. t-1]
    std::vector<float> hidden(len * D), logits(V);
    InferenceState st = model->new_state();
    model->forward(ids.data() + b, len, st, hidden.data());
    model->logits(hidden.data() + (len - 1) * D, 1, logits.data());
    double mx = logits[0], sum = 0;
    for (float x : logits) mx = std::max<double>(mx, x);
    for (float x : logits) sum += std::exp(double(x) - mx);
    const double want = double(logits[ids[t]]) - mx - std::log(sum);
    EXPECT_NEAR(v.logprob[t], want, 1e-4 * (1 + std::fabs(want))) << "token " << t << " (context from " << b << ")";
  }
  // A window as long as the document is a plain run.
  const DocumentValues whole = engine.compute_windowed(ids, 64, 64);
  const DocumentValues plain = engine.compute(ids, WantedOutputs{true, false, false});
  expect_near(whole.logprob, plain.logprob);
}

TEST(Engine, RefusesWorkBeforePrepare) {
  Engine e("cpu", "auto", 0);
  EXPECT_FALSE(e.on_gpu());
  EXPECT_EQ(e.gemm_inputs(), "fp32");
  EXPECT_THROW(e.compute({1, 2}, WantedOutputs{}), Error);
  EXPECT_THROW(Engine("cpu", "nccl", 0), Error);  // NCCL needs the GPU engine
}

}  // namespace
}  // namespace ringscan
