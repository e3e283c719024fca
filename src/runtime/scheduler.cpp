#include "runtime/scheduler.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/memory_plan.h"

namespace ringscan {

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
      const double gib = static_cast<double>(in.per_token_bytes) * ((n + in.ranks - 1) / in.ranks) / (1 << 30);
      p.error = "document of " + std::to_string(n) + " tokens needs " + std::to_string((n + budget - 1) / budget) +
                " ranks at " + std::to_string(budget) + " tokens per rank (" + std::to_string(in.ranks) +
                " available), or about " + std::to_string(static_cast<int>(std::ceil(gib))) +
                " GiB per rank over all ranks; use more ranks, --memory-per-rank, or --max-tokens to truncate";
      continue;
    }
    p.route = in.ranks == 1 ? DocRoute::DataParallel : DocRoute::SequenceParallel;
    p.rank = 0;
    p.group_size = static_cast<int>(std::max<int64_t>(need, in.ranks == 1 ? 1 : 2));
  }
  return plans;
}

int64_t token_budget(const ModelConfig& c, uint64_t weight_bytes, uint64_t memory_bytes, uint64_t* per_token_bytes) {
  // Two plans of a sequence-parallel segment differ only by the per-token costs.
  MemoryPlan a = plan_memory(c, weight_bytes, 1024, 2, 1 << 30), b = plan_memory(c, weight_bytes, 2048, 2, 1 << 30);
  const uint64_t per_token = (b.total_private() - a.total_private()) / 1024;
  const uint64_t fixed = a.total_private() - per_token * 1024;
  if (per_token_bytes) *per_token_bytes = per_token;
  // Weights are mmapped and shared by the node's ranks; count them once per rank as a bound.
  const uint64_t used = weight_bytes + fixed;
  if (memory_bytes <= used) return 1;
  return static_cast<int64_t>((memory_bytes - used) / std::max<uint64_t>(per_token, 1));
}

uint64_t default_memory_per_rank(int ranks_on_node) {
  const uint64_t phys = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
  return phys / std::max(1, ranks_on_node) * 7 / 10;
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
