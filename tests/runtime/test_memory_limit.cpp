// The node's memory limit read from a fake /proc and /sys tree: cgroup v2 (unified
// and the hybrid .../unified mount), cgroup v1, ancestors' limits, a container's
// own subtree at the mount's root, Slurm's variables, and bad Slurm values.
// tests/runtime/memory_limit_e2e.sh checks `ringscan info` in a real cgroup.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "runtime/memory_limit.h"
#include "util/error.h"

namespace ringscan {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kGiB = 1ull << 30, kMiB = 1ull << 20;

class MemoryLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("ringscan_memlimit_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "proc/self");
    fs::create_directories(root_ / "sys/fs/cgroup");
  }
  void TearDown() override { fs::remove_all(root_); }

  void write(const std::string& rel, const std::string& text) {
    const fs::path p = root_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text << "\n";
  }
  MemoryLimit lookup() {
    MemoryLimitSources s;
    s.proc_root = (root_ / "proc").string();
    s.sys_root = (root_ / "sys").string();
    s.getenv = [this](const char* n) -> const char* {
      auto it = env_.find(n);
      return it == env_.end() ? nullptr : it->second.c_str();
    };
    s.physical_bytes = 64 * kGiB;
    return node_memory_limit(s);
  }

  fs::path root_;
  std::map<std::string, std::string> env_;
};

TEST_F(MemoryLimitTest, NoLimitIsPhysicalMemory) {
  write("proc/self/cgroup", "0::/user.slice/job");
  write("sys/fs/cgroup/user.slice/job/memory.max", "max");
  const MemoryLimit m = lookup();
  EXPECT_EQ(m.bytes, 64 * kGiB);
  EXPECT_EQ(m.source, "physical memory");
}

TEST_F(MemoryLimitTest, CgroupV2OwnLimit) {
  write("proc/self/cgroup", "0::/user.slice/job");
  write("sys/fs/cgroup/user.slice/memory.max", "max");
  write("sys/fs/cgroup/user.slice/job/memory.max", std::to_string(2 * kGiB));
  const MemoryLimit m = lookup();
  EXPECT_EQ(m.bytes, 2 * kGiB);
  EXPECT_EQ(m.source, "cgroup v2 memory.max");
}

TEST_F(MemoryLimitTest, CgroupV2AncestorLimitApplies) {
  write("proc/self/cgroup", "0::/slurm/uid_0/job_7/step_0");
  write("sys/fs/cgroup/slurm/uid_0/job_7/memory.max", std::to_string(3 * kGiB));
  write("sys/fs/cgroup/slurm/uid_0/job_7/step_0/memory.max", "max");
  EXPECT_EQ(lookup().bytes, 3 * kGiB);
}

TEST_F(MemoryLimitTest, CgroupV2InContainerAtMountRoot) {
  // No cgroup namespace: /proc names the host's path, the mount holds only our subtree.
  write("proc/self/cgroup", "0::/docker/0123abcd");
  write("sys/fs/cgroup/memory.max", std::to_string(5 * kGiB));
  EXPECT_EQ(lookup().bytes, 5 * kGiB);
}

TEST_F(MemoryLimitTest, CgroupV2HybridUnifiedMount) {
  write("proc/self/cgroup", "1:name=systemd:/job\n0::/job");
  write("sys/fs/cgroup/unified/job/memory.max", std::to_string(6 * kGiB));
  EXPECT_EQ(lookup().bytes, 6 * kGiB);
}

TEST_F(MemoryLimitTest, CgroupV1HugeMeansNoLimitAncestorCounts) {
  write("proc/self/cgroup", "5:cpu,cpuacct:/a/b\n4:memory:/a/b\n0::/");
  write("sys/fs/cgroup/memory/a/b/memory.limit_in_bytes", "9223372036854771712");
  write("sys/fs/cgroup/memory/a/memory.limit_in_bytes", std::to_string(7 * kGiB));
  const MemoryLimit m = lookup();
  EXPECT_EQ(m.bytes, 7 * kGiB);
  EXPECT_EQ(m.source, "cgroup v1 memory.limit_in_bytes");

  write("sys/fs/cgroup/memory/a/memory.limit_in_bytes", "9223372036854771712");
  EXPECT_EQ(lookup().source, "physical memory");
}

TEST_F(MemoryLimitTest, SlurmPerNodeBelowCgroup) {
  write("proc/self/cgroup", "0::/job");
  write("sys/fs/cgroup/job/memory.max", std::to_string(8 * kGiB));
  env_["SLURM_MEM_PER_NODE"] = "4096";
  MemoryLimit m = lookup();
  EXPECT_EQ(m.bytes, 4 * kGiB);
  EXPECT_EQ(m.source, "SLURM_MEM_PER_NODE");

  env_["SLURM_MEM_PER_NODE"] = "16384";  // the cgroup is smaller: it wins
  EXPECT_EQ(lookup().source, "cgroup v2 memory.max");
  env_["SLURM_MEM_PER_NODE"] = "0";  // --mem=0: the whole node
  EXPECT_EQ(lookup().bytes, 8 * kGiB);
}

TEST_F(MemoryLimitTest, SlurmPerCpuTimesTheNodesCpus) {
  env_["SLURM_MEM_PER_CPU"] = "1000";
  env_["SLURM_CPUS_PER_TASK"] = "2";
  MemoryLimit m = lookup();
  EXPECT_EQ(m.bytes, 2000 * kMiB);
  EXPECT_EQ(m.source, "SLURM_MEM_PER_CPU x 2 CPUs");

  env_["SLURM_CPUS_ON_NODE"] = "4";  // preferred: all CPUs the job holds on this node
  EXPECT_EQ(lookup().bytes, 4000 * kMiB);
  env_.erase("SLURM_CPUS_ON_NODE");
  env_.erase("SLURM_CPUS_PER_TASK");
  EXPECT_EQ(lookup().bytes, 1000 * kMiB);
}

TEST_F(MemoryLimitTest, BadSlurmValueIsOneSentence) {
  env_["SLURM_MEM_PER_NODE"] = "4G";
  try {
    lookup();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("SLURM_MEM_PER_NODE=\"4G\""), std::string::npos) << e.what();
  }
  env_.erase("SLURM_MEM_PER_NODE");
  env_["SLURM_MEM_PER_CPU"] = "100";
  env_["SLURM_CPUS_ON_NODE"] = "x";
  EXPECT_THROW(lookup(), Error);
}

}  // namespace
}  // namespace ringscan
