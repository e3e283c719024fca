// Which rank(s) run each document (DESIGN.md §3): documents run data-parallel
// on the rank that tokenized them (files were spread over ranks by size, so no
// tokens move), except those that do not fit one rank's token budget and those
// that finish sooner sequence-parallel (the speed rule below); sequence-parallel
// documents run over every rank (or --sp N), one after another, before the
// data-parallel ones. One that would not fit even across every rank fails with
// a message saying what it would need, and the rest still run.
//
// The speed rule. Time is counted in units of one token's prefill on one rank:
// a rank's data-parallel time is the sum of its documents' tokens; a document of
// n tokens sequence-parallel over P ranks takes n / (P * kSequenceParallelEfficiency)
// + kSequenceParallelFixedTokens on every rank (the exchanges' share of the work,
// and their latency per layer). The run takes the sequence-parallel documents' time
// plus the busiest rank's data-parallel time; the longest data-parallel document
// moves to sequence parallel while that lowers the estimate. So one large document
// on P ranks uses all P, and many similar documents stay data-parallel.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace ringscan {

enum class DocRoute { DataParallel, SequenceParallel, TooLong };

struct DocPlan {
  DocRoute route = DocRoute::DataParallel;
  int rank = 0;        // DataParallel: the rank that runs it
  int group_size = 1;  // SequenceParallel: ranks 0..group_size-1 run it
  std::string error;   // TooLong: why
};

// What one rank needs to hold `t` tokens of a document: fixed + per_token * t bytes
// (the backend's memory plan; on the CPU the fixed part includes the weights).
struct MemoryCost {
  uint64_t fixed_bytes = 0;
  uint64_t per_token_bytes = 0;
};

struct ScheduleInput {
  std::vector<int64_t> tokens;        // per document
  std::vector<int> tokenized_on;      // per document: the rank holding its tokens
  int ranks = 1;
  int64_t budget_tokens = 0;          // max tokens one rank may hold
  int forced_sp = 0;                  // --sp N: every document over N ranks (0: the rules here; 1: no speed rule)
  MemoryCost cost;                    // for the message of a document that cannot fit
  bool sp_for_speed = true;           // the speed rule; false: sequence parallel only when memory needs it
};

// The cost model of the speed rule (see above).
inline constexpr double kSequenceParallelEfficiency = 0.8;
inline constexpr int64_t kSequenceParallelFixedTokens = 512;
// Estimated time of one document sequence-parallel over `ranks` ranks, in tokens of one rank's prefill.
double sequence_parallel_cost(int64_t tokens, int ranks);

std::vector<DocPlan> schedule_documents(const ScheduleInput& in);

// Tokens one rank can hold in `memory_bytes` besides the weights, from the
// memory plan's per-token and fixed costs (sequence-parallel runner: whole
// segments in flight); `cost` receives those costs.
int64_t token_budget(const ModelConfig& c, uint64_t weight_bytes, uint64_t memory_bytes, MemoryCost* cost);

// The smallest --memory-per-rank (GiB, as the option takes it) that covers `bytes`:
// two significant digits, rounded up ("0.074", "1.3", "13").
std::string memory_gib_option(uint64_t bytes);

// Memory one rank may use by default: the node's memory limit (node_memory_limit:
// cgroup, Slurm or physical) shared by the ranks on this node, less a safety margin.
uint64_t default_memory_per_rank(int ranks_on_node);

// Longest-processing-time assignment of items (e.g. file sizes) to ranks:
// deterministic, every rank computes the same answer.
std::vector<int> balance_by_size(const std::vector<uint64_t>& sizes, int ranks);

}  // namespace ringscan
