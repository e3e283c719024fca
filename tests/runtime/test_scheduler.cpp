// The scheduler's advice for a document too long for the ranks: following it must
// work, and it must not ask for much more than needed (it once said "about 1 GiB per
// rank" where 0.1 GiB sufficed, rounding up to whole GiB and ignoring the fixed costs).
// Its speed rule: sequence parallel when the cost model says it is faster (one large
// document on P ranks used one rank while the others waited).
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

// Plenty of memory: only the speed rule can choose sequence parallelism.
std::vector<DocPlan> plan_for_speed(const std::vector<int64_t>& tokens, const std::vector<int>& on, int ranks,
                                    int sp = 0) {
  ScheduleInput in;
  in.tokens = tokens;
  in.tokenized_on = on;
  in.ranks = ranks;
  in.forced_sp = sp;
  in.budget_tokens = int64_t(1) << 40;
  return schedule_documents(in);
}

TEST(Scheduler, OneLargeDocumentUsesEveryRank) {
  for (int ranks : {2, 3, 4, 8}) {
    const DocPlan p = plan_for_speed({76110}, {0}, ranks).front();
    EXPECT_EQ(p.route, DocRoute::SequenceParallel) << ranks;
    EXPECT_EQ(p.group_size, ranks);
  }
  EXPECT_EQ(plan_for_speed({76110}, {0}, 1).front().route, DocRoute::DataParallel);
  // --sp 1 keeps documents that fit one rank on one rank.
  EXPECT_EQ(plan_for_speed({76110}, {0}, 4, 1).front().route, DocRoute::DataParallel);
}

TEST(Scheduler, ShortOrBalancedDocumentsStayDataParallel) {
  // Alone on 2 ranks, but shorter than the exchanges' fixed cost makes worthwhile.
  EXPECT_EQ(plan_for_speed({300}, {0}, 2).front().route, DocRoute::DataParallel);
  // Eight similar documents, two per rank: every rank is busy already.
  std::vector<int64_t> tokens(8, 5000);
  const std::vector<int> on = {0, 1, 2, 3, 0, 1, 2, 3};
  for (const DocPlan& p : plan_for_speed(tokens, on, 4)) {
    EXPECT_EQ(p.route, DocRoute::DataParallel);
  }
}

TEST(Scheduler, SpeedRuleMovesOnlyWhatLowersTheEstimate) {
  // Rank 0 holds 20000 tokens, rank 1 two documents of 1000. Data parallel: 20000.
  // The long one over both ranks: 20000 / (2 * 0.8) + 512 + 2000 = 15012, lower.
  // Then a 1000-token one as well: 12500 + 512 + 625 + 512 + 1000 = 15149, higher: it stays.
  const std::vector<DocPlan> p = plan_for_speed({20000, 1000, 1000}, {0, 1, 1}, 2);
  EXPECT_EQ(p[0].route, DocRoute::SequenceParallel);
  EXPECT_EQ(p[0].group_size, 2);
  EXPECT_EQ(p[1].route, DocRoute::DataParallel);
  EXPECT_EQ(p[1].rank, 1);
  EXPECT_EQ(p[2].route, DocRoute::DataParallel);
  EXPECT_DOUBLE_EQ(sequence_parallel_cost(20000, 2), 20000 / (2 * kSequenceParallelEfficiency) + kSequenceParallelFixedTokens);
}

TEST(Scheduler, MemoryBoundDocumentsUseEveryRankAndSpeedRuleCanBeOff) {
  ScheduleInput in;
  in.tokens = {1500, 10};
  in.tokenized_on = {0, 1};
  in.ranks = 4;
  in.budget_tokens = 1000;
  in.sp_for_speed = false;
  const std::vector<DocPlan> p = schedule_documents(in);
  EXPECT_EQ(p[0].route, DocRoute::SequenceParallel);
  EXPECT_EQ(p[0].group_size, 4);  // the other ranks would only wait
  EXPECT_EQ(p[1].route, DocRoute::DataParallel);
  in.tokens = {900, 10};  // fits one rank: without the speed rule it stays there
  EXPECT_EQ(schedule_documents(in)[0].route, DocRoute::DataParallel);
}

}  // namespace
}  // namespace ringscan
