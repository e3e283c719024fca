// The batch jobs as a library (jobs/batch_job.h), called the way the command line
// calls them but without it: the registered jobs, a score run whose log-probs equal
// the engine's for the stored ids, and an agreed error for a bad option. Runs under
// mpirun with 1 and 2 ranks (tests/mpi_gtest_main.cpp).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "io/final_reader.h"
#include "jobs/batch_job.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "runtime/engine.h"
#include "runtime/mpi_context.h"
#include "tokenizer/demo_tokenizer.h"
#include "util/error.h"
#include "util/json_util.h"

namespace ringscan {
namespace {

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

// A demo model and three small documents in a folder of this rank count, made by rank 0.
class JobLibraryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::string(RINGSCAN_BINARY_DIR) + "/tests/job_library_np" + std::to_string(world_size()));
    if (world_rank() == 0) {
      std::filesystem::remove_all(*dir_);
      std::filesystem::create_directories(*dir_ + "/docs");
      RandomCheckpointOptions o;
      o.seed = 5;
      write_random_checkpoint(preset_config("demo"), *dir_ + "/model", o);
      write_text_file(*dir_ + "/model/tokenizer.json", std::string(demo_tokenizer_json()));
      write_text_file(*dir_ + "/model/tokenizer_config.json", std::string(demo_tokenizer_config_json()));
      write_text_file(*dir_ + "/docs/a.txt", "int main() { return 0; }\n");
      write_text_file(*dir_ + "/docs/b.txt", "The value of x is the value of y plus one.\n");
      write_text_file(*dir_ + "/docs/c.txt", "for x in data: print(x)\n");
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  static void TearDownTestSuite() {
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank() == 0) std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  JobOptions options(const std::string& out) const {
    JobOptions o;
    o.model_dir = *dir_ + "/model";
    o.inputs = {*dir_ + "/docs"};
    o.out = *dir_ + "/" + out;
    o.quiet = true;
    o.device = "cpu";
    return o;
  }
  static std::string* dir_;
};
std::string* JobLibraryTest::dir_ = nullptr;

TEST_F(JobLibraryTest, EveryJobIsRegistered) {
  EXPECT_TRUE(batch_job("score").want.logprobs);
  EXPECT_TRUE(batch_job("embed").want.embeddings);
  EXPECT_TRUE(batch_job("summarize").want.generate);
  EXPECT_GE(batch_jobs().size(), 3u);
  EXPECT_THROW(batch_job("no-such-job"), Error);
}

TEST_F(JobLibraryTest, ScoreGivesTheEnginesLogProbs) {
  const JobOptions o = options("score.h5");
  ASSERT_EQ(run_batch_job(batch_job("score"), o), 0);
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() != 0) return;
  auto model = Model::load(o.model_dir, true);
  Engine engine("cpu", "auto", 0);
  engine.prepare(*model);
  io::FinalFileReader file(o.out);
  ASSERT_EQ(file.n_documents(), 3u);
  for (uint64_t i = 0; i < 3; ++i) {
    const io::DocumentResult r = file.read(i);
    ASSERT_EQ(r.status, "ok") << r.path;
    ASSERT_GT(r.token_ids.size(), 3u) << r.path;
    WantedOutputs want;
    want.logprobs = true;
    const DocumentValues v = engine.compute(r.token_ids, want);
    ASSERT_EQ(r.logprob.size(), v.logprob.size()) << r.path;
    double nll = 0;
    for (size_t t = 1; t < v.logprob.size(); ++t) {
      EXPECT_NEAR(r.logprob[t], v.logprob[t], 1e-4 * (1 + std::fabs(v.logprob[t]))) << r.path << " token " << t;
      nll -= v.logprob[t];
    }
    EXPECT_NEAR(r.nll_sum, nll, 1e-3 * (1 + nll)) << r.path;
  }
}

// A bad option is an error every rank agrees on: rank 0 reports it, the others stay quiet.
TEST_F(JobLibraryTest, BadOptionIsOneAgreedError) {
  JobOptions o = options("bad.h5");
  o.max_tokens = -1;
  if (world_rank() == 0) {
    try {
      run_batch_job(batch_job("score"), o);
      FAIL() << "no error for --max-tokens -1";
    } catch (const CollectiveError& e) {
      EXPECT_NE(std::string(e.what()).find("--max-tokens"), std::string::npos) << e.what();
    }
  } else {
    EXPECT_THROW(run_batch_job(batch_job("score"), o), ReportedElsewhere);
  }
  EXPECT_FALSE(std::filesystem::exists(o.out));
}

}  // namespace
}  // namespace ringscan
