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

#include "runtime/engine.h"
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

TEST(Engine, RefusesWorkBeforePrepare) {
  Engine e("cpu", "auto", 0);
  EXPECT_FALSE(e.on_gpu());
  EXPECT_EQ(e.gemm_inputs(), "fp32");
  EXPECT_THROW(e.compute({1, 2}, WantedOutputs{}), Error);
  EXPECT_THROW(Engine("cpu", "nccl", 0), Error);  // NCCL needs the GPU engine
}

}  // namespace
}  // namespace ringscan
