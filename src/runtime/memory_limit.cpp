#include "runtime/memory_limit.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include "util/error.h"

namespace ringscan {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
// cgroup v1 writes "no limit" as the largest page-aligned counter (0x7FFFFFFFFFFFF000 on
// 4 KiB pages, other values on other page sizes): anything this large is no limit.
constexpr uint64_t kUnlimitedV1 = 1ull << 60;

std::optional<std::string> read_first_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  if (!f || !std::getline(f, line)) return std::nullopt;
  return line;
}

std::optional<uint64_t> parse_u64(const std::string& s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
  if (errno == ERANGE) return std::nullopt;
  return v;
}

// The cgroup paths of this process from /proc/self/cgroup: the v2 one ("0::/path")
// and the v1 one of the memory controller ("N:...memory...:/path").
struct CgroupPaths {
  std::optional<std::string> v2, v1_memory;
};

CgroupPaths own_cgroups(const std::string& proc_root) {
  CgroupPaths p;
  std::ifstream f(proc_root + "/self/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (line.compare(0, a, "0") == 0 && controllers.empty()) {
      p.v2 = path;
    } else {
      std::stringstream list(controllers);
      for (std::string c; std::getline(list, c, ',');)
        if (c == "memory") p.v1_memory = path;
    }
  }
  return p;
}

// The smallest limit in `file` of the cgroup at `path` under `mount` and its ancestors
// (every level's limit applies). Levels missing from this mount are skipped: in a
// container the mount holds only the container's own subtree, at its root.
std::optional<uint64_t> smallest_up_the_tree(const std::string& mount, std::string path, const std::string& file,
                                             bool v1) {
  std::optional<uint64_t> best;
  while (true) {
    if (auto text = read_first_line(mount + (path == "/" ? "" : path) + "/" + file)) {
      std::optional<uint64_t> v = *text == "max" ? std::nullopt : parse_u64(*text);
      if (v && v1 && *v >= kUnlimitedV1) v.reset();
      if (v && (!best || *v < *best)) best = v;
    }
    if (path.empty() || path == "/") break;
    const size_t slash = path.rfind('/');
    path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }
  return best;
}

// A Slurm memory variable in MB (Slurm's MB are MiB); unset, empty or 0 (--mem=0:
// the whole node) is no limit.
std::optional<uint64_t> slurm_megabytes(const char* name, const char* value) {
  if (!value || !*value) return std::nullopt;
  auto v = parse_u64(value);
  if (!v) throw Error(std::string("environment variable ") + name + "=\"" + value + "\" is not a whole number of MB");
  if (*v == 0) return std::nullopt;
  return *v * kMiB;
}

uint64_t slurm_cpus(const std::function<const char*(const char*)>& env) {
  for (const char* name : {"SLURM_CPUS_ON_NODE", "SLURM_CPUS_PER_TASK"}) {
    const char* value = env(name);
    if (!value || !*value) continue;
    auto v = parse_u64(value);
    if (!v || *v == 0)
      throw Error(std::string("environment variable ") + name + "=\"" + value + "\" is not a positive whole number");
    return *v;
  }
  return 1;
}

}  // namespace

MemoryLimit node_memory_limit(const MemoryLimitSources& from) {
  const std::function<const char*(const char*)> env =
      from.getenv ? from.getenv : [](const char* n) -> const char* { return std::getenv(n); };
  MemoryLimit best;
  best.bytes = from.physical_bytes ? from.physical_bytes
                                   : static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  best.source = "physical memory";
  auto consider = [&](std::optional<uint64_t> bytes, std::string source) {
    if (bytes && *bytes < best.bytes) best = {*bytes, std::move(source)};
  };

  const CgroupPaths cg = own_cgroups(from.proc_root);
  const std::string fs = from.sys_root + "/fs/cgroup";
  if (cg.v2) {
    // Unified hierarchy at /sys/fs/cgroup, or (hybrid systemd layout) at /sys/fs/cgroup/unified.
    for (const std::string& mount : {fs, fs + "/unified"})
      consider(smallest_up_the_tree(mount, *cg.v2, "memory.max", false), "cgroup v2 memory.max");
  }
  if (cg.v1_memory)
    consider(smallest_up_the_tree(fs + "/memory", *cg.v1_memory, "memory.limit_in_bytes", true),
             "cgroup v1 memory.limit_in_bytes");

  consider(slurm_megabytes("SLURM_MEM_PER_NODE", env("SLURM_MEM_PER_NODE")), "SLURM_MEM_PER_NODE");
  if (auto per_cpu = slurm_megabytes("SLURM_MEM_PER_CPU", env("SLURM_MEM_PER_CPU"))) {
    const uint64_t cpus = slurm_cpus(env);
    consider(*per_cpu * cpus, "SLURM_MEM_PER_CPU x " + std::to_string(cpus) + " CPUs");
  }
  return best;
}

}  // namespace ringscan
