#include "runtime/scheduler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>

#include "model/memory_plan.h"
#include "runtime/memory_limit.h"

namespace ringscan {

double sequence_parallel_cost(int64_t tokens, int ranks) {
  return static_cast<double>(tokens) / (std::max(ranks, 1) * kSequenceParallelEfficiency) +
         static_cast<double>(kSequenceParallelFixedTokens);
}

namespace {

// The speed rule (scheduler.h): moves the longest data-parallel documents to sequence
// parallel over every rank while the estimated time of the run goes down.
void move_to_sequence_parallel_when_faster(const ScheduleInput& in, std::vector<DocPlan>& plans) {
  if (in.ranks < 2) return;
  std::vector<double> load(in.ranks, 0);  // data-parallel tokens per rank
  double sp_time = 0;
  std::vector<size_t> dp;
  for (size_t d = 0; d < plans.size(); ++d) {
    if (in.tokens[d] < 0) continue;  // not to run
    if (plans[d].route == DocRoute::SequenceParallel) sp_time += sequence_parallel_cost(in.tokens[d], in.ranks);
    if (plans[d].route != DocRoute::DataParallel) continue;
    load[plans[d].rank] += static_cast<double>(in.tokens[d]);
    dp.push_back(d);
  }
  std::stable_sort(dp.begin(), dp.end(), [&](size_t a, size_t b) { return in.tokens[a] > in.tokens[b]; });
  auto estimate = [&]() { return sp_time + *std::max_element(load.begin(), load.end()); };
  for (size_t d : dp) {
    const double before = estimate();
    const double n = static_cast<double>(in.tokens[d]);
    load[plans[d].rank] -= n;
    sp_time += sequence_parallel_cost(in.tokens[d], in.ranks);
    if (estimate() >= before) return;  // longest first: a shorter one gains less
    plans[d].route = DocRoute::SequenceParallel;
    plans[d].group_size = in.ranks;
    plans[d].rank = 0;
  }
}

}  // namespace

std::vector<DocPlan> schedule_documents(const ScheduleInput& in) {
  std::vector<DocPlan> plans(in.tokens.size());
  const int64_t budget = std::max<int64_t>(1, in.budget_tokens);
  for (size_t d = 0; d < in.tokens.size(); ++d) {
    const int64_t n = in.tokens[d];
    DocPlan& p = plans[d];
    if (in.forced_sp <= 1 && n <= budget) {
      p.route = DocRoute::DataParallel;
      p.rank = in.tokenized_on[d];
      continue;
    }
    const int64_t need = in.forced_sp > 1 ? in.forced_sp : (n + budget - 1) / budget;
    if (need > in.ranks || (in.forced_sp > 1 && (n + in.forced_sp - 1) / in.forced_sp > budget)) {
      p.route = DocRoute::TooLong;
      // The memory that would fit it on the ranks it may use: the advice must work when followed.
      const int64_t group = in.forced_sp > 1 ? std::min<int64_t>(in.forced_sp, in.ranks) : in.ranks;
      const uint64_t per_rank = in.cost.fixed_bytes + in.cost.per_token_bytes * static_cast<uint64_t>((n + group - 1) / group);
      p.error = "document of " + std::to_string(n) + " tokens needs " + std::to_string((n + budget - 1) / budget) +
                " ranks at " + std::to_string(budget) + " tokens per rank (" + std::to_string(in.ranks) +
                " available), or --memory-per-rank " + memory_gib_option(per_rank) + " (GiB) over " +
                (group == in.ranks ? "all " : "") + std::to_string(group) +
                " rank(s); use more ranks, more memory per rank, or --max-tokens to truncate";
      continue;
    }
    p.route = in.ranks == 1 ? DocRoute::DataParallel : DocRoute::SequenceParallel;
    p.rank = 0;
    // --sp N: that group; otherwise every rank, since the others would wait meanwhile.
    p.group_size = in.ranks == 1 ? 1 : in.forced_sp > 1 ? in.forced_sp : in.ranks;
  }
  if (in.forced_sp == 0 && in.sp_for_speed) move_to_sequence_parallel_when_faster(in, plans);
  return plans;
}

int64_t token_budget(const ModelConfig& c, uint64_t weight_bytes, uint64_t memory_bytes, MemoryCost* cost) {
  // Two plans of a sequence-parallel segment differ only by the per-token costs.
  MemoryPlan a = plan_memory(c, weight_bytes, 1024, 2, 1 << 30), b = plan_memory(c, weight_bytes, 2048, 2, 1 << 30);
  const uint64_t per_token = (b.total_private() - a.total_private()) / 1024;
  const uint64_t fixed = a.total_private() - per_token * 1024;
  // Weights are mmapped and shared by the node's ranks; count them once per rank as a bound.
  const uint64_t used = weight_bytes + fixed;
  if (cost) *cost = MemoryCost{used, per_token};
  if (memory_bytes <= used) return 1;
  return static_cast<int64_t>((memory_bytes - used) / std::max<uint64_t>(per_token, 1));
}

std::string memory_gib_option(uint64_t bytes) {
  constexpr double kGiB = double(1ull << 30);
  if (bytes == 0) return "0";
  const double gib = bytes / kGiB;
  const double step = std::pow(10.0, 1 - std::floor(std::log10(gib)));  // 1 / (the second digit's unit)
  double rounded = std::ceil(gib * step) / step;
  // Digits of the rounded value (0.0999 rounds up to 0.10, not 0.100).
  const int decimals = std::max(0, 1 - static_cast<int>(std::floor(std::log10(rounded) + 1e-9)));
  char text[64];
  while (true) {
    std::snprintf(text, sizeof text, "%.*f", decimals, rounded);
    // The job turns the option back into bytes by truncation: what is printed must cover `bytes`.
    if (static_cast<uint64_t>(std::strtod(text, nullptr) * kGiB) >= bytes) return text;
    rounded += std::pow(10.0, -decimals);
  }
}

uint64_t default_memory_per_rank(int ranks_on_node) {
  return node_memory_limit().bytes / std::max(1, ranks_on_node) * 7 / 10;
}

std::vector<int> balance_by_size(const std::vector<uint64_t>& sizes, int ranks) {
  std::vector<size_t> order(sizes.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return sizes[a] > sizes[b]; });
  std::vector<uint64_t> load(ranks, 0);
  std::vector<int> owner(sizes.size(), 0);
  for (size_t i : order) {
    int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[i] = r;
    load[r] += sizes[i] + 1;  // +1: empty items still spread
  }
  return owner;
}

}  // namespace ringscan
