// The scheduler's advice for a document too long for the ranks: following it must
// work, and it must not ask for much more than needed (it once said "about 1 GiB per
// rank" where 0.1 GiB sufficed, rounding up to whole GiB and ignoring the fixed costs).
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "model/presets.h"
#include "runtime/scheduler.h"

namespace ringscan {
namespace {

// The --memory-per-rank value the message of a too-long document advises, in bytes.
uint64_t advised_bytes(const std::string& error) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(error, m, std::regex("--memory-per-rank ([0-9.]+) \\(GiB\\)"))) << error;
  return static_cast<uint64_t>(std::stod(m[1].str()) * (1ull << 30));  // as the jobs read the option
}

DocRoute route_with(const ModelConfig& c, uint64_t weights, uint64_t memory, int64_t tokens, int ranks, int sp,
                    std::string* error = nullptr) {
  ScheduleInput in;
  in.tokens = {tokens};
  in.tokenized_on = {0};
  in.ranks = ranks;
  in.forced_sp = sp;
  in.budget_tokens = token_budget(c, weights, memory, &in.cost);
  const DocPlan p = schedule_documents(in).front();
  if (error) *error = p.error;
  return p.route;
}

TEST(Scheduler, TooLongAdviceIsEnoughAndNotMuchMore) {
  const ModelConfig c = preset_config("demo");
  const uint64_t weights = 15ull << 20;
  struct Case {
    int64_t tokens;
    int ranks, sp;
  };
  for (const Case k : {Case{10, 1, 0}, Case{5000, 1, 0}, Case{300000, 2, 0}, Case{300000, 4, 2}, Case{2000000, 3, 0}}) {
    SCOPED_TRACE(std::to_string(k.tokens) + " tokens, " + std::to_string(k.ranks) + " ranks, sp " + std::to_string(k.sp));
    std::string error;
    ASSERT_EQ(route_with(c, weights, 1 << 20, k.tokens, k.ranks, k.sp, &error), DocRoute::TooLong);
    const uint64_t advised = advised_bytes(error);
    EXPECT_NE(route_with(c, weights, advised, k.tokens, k.ranks, k.sp), DocRoute::TooLong) << error;
    // Two significant digits, rounded up: at most ~10% above what is needed.
    EXPECT_EQ(route_with(c, weights, advised / 10 * 9, k.tokens, k.ranks, k.sp), DocRoute::TooLong) << error;
  }
}

TEST(Scheduler, MemoryOptionIsRoundedUpToTwoDigits) {
  const uint64_t gib = 1ull << 30;
  EXPECT_EQ(memory_gib_option(gib), "1.0");
  EXPECT_EQ(memory_gib_option(gib + 1), "1.1");
  EXPECT_EQ(memory_gib_option(gib / 10), "0.10");
  EXPECT_EQ(memory_gib_option(gib / 1000 * 73), "0.073");  // 0.072999... GiB
  EXPECT_EQ(memory_gib_option(gib * 123 / 10), "13");
  EXPECT_EQ(memory_gib_option(gib * 1234), "1300");
  // Whatever is printed covers the bytes once the job reads it back (truncating to bytes).
  for (uint64_t b = 1; b < (uint64_t(1) << 44); b = b * 3 + 7)
    for (uint64_t x : {b, gib / 10 * (b % 97 + 1), gib / 100 + b % 3})
      EXPECT_GE(static_cast<uint64_t>(std::stod(memory_gib_option(x)) * (1ull << 30)), x) << x;
}

}  // namespace
}  // namespace ringscan
