// The memory this node's ranks may use: the smallest of the limits that apply
// to this process. On a shared node the cgroup (or Slurm's --mem) is far below
// physical memory, and planning from the latter gets the job OOM-killed.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace ringscan {

struct MemoryLimit {
  uint64_t bytes = 0;
  std::string source;  // "cgroup v2 memory.max", "SLURM_MEM_PER_NODE", "physical memory", ...
};

// Where the lookup reads from: the real system, or a fake tree in tests.
struct MemoryLimitSources {
  std::string proc_root = "/proc";
  std::string sys_root = "/sys";
  std::function<const char*(const char*)> getenv;  // null: std::getenv
  uint64_t physical_bytes = 0;                     // 0: sysconf
};

// The smallest of: the cgroup v2 memory.max and the cgroup v1
// memory.limit_in_bytes of this process's cgroup and its ancestors,
// SLURM_MEM_PER_NODE, SLURM_MEM_PER_CPU x the node's CPUs, physical memory.
// A Slurm variable that is not a number throws ringscan::Error.
MemoryLimit node_memory_limit(const MemoryLimitSources& from = {});

}  // namespace ringscan
