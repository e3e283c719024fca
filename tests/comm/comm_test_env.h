// Shared pieces of the communicator tests. The same test sources build two
// executables: one over MpiCommunicator (host buffers) and, in CUDA builds,
// one over NcclCommunicator (device buffers); SpaceBuffer hides the difference.
//
// Rules for multi-rank tests: every rank runs every test and must reach the
// same collectives, so checks use EXPECT_* (never return early); ASSERT_*
// and exceptions abort all ranks (see comm_test_main.cpp).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "comm/communicator.h"

namespace ringscan::comm::test {

// The communicator under test, over all ranks (created in main).
Communicator& world();
bool is_nccl();

// Memory in the communicator's space (host or device) and host<->space copies.
void* space_alloc(std::size_t bytes);
void space_free(void* p);
void space_upload(void* dst, const void* src, std::size_t bytes);
void space_download(void* dst, const void* src, std::size_t bytes);

// A buffer in the communicator's memory space with a host mirror. Always a
// separate allocation, even for host communicators, so a backend writing the
// wrong buffer cannot go unnoticed.
template <class T>
class SpaceBuffer {
 public:
  explicit SpaceBuffer(std::size_t n, T fill = T{}) : host(n, fill) { allocate(); upload(); }
  explicit SpaceBuffer(std::vector<T> init) : host(std::move(init)) { allocate(); upload(); }
  ~SpaceBuffer() { space_free(space_); }
  SpaceBuffer(const SpaceBuffer&) = delete;
  SpaceBuffer& operator=(const SpaceBuffer&) = delete;

  T* data() { return static_cast<T*>(space_); }
  std::size_t size() const { return host.size(); }
  void upload() { space_upload(space_, host.data(), host.size() * sizeof(T)); }
  std::vector<T>& download() {
    space_download(host.data(), space_, host.size() * sizeof(T));
    return host;
  }

  std::vector<T> host;

 private:
  void allocate() { space_ = space_alloc(std::max<std::size_t>(host.size(), 1) * sizeof(T)); }
  void* space_ = nullptr;
};

// Sum over all ranks of MPI_COMM_WORLD, through plain MPI (independent of the code under test).
long long world_sum(long long x);
// Every rank's value, through plain MPI.
std::vector<long long> world_gather(long long x);

}  // namespace ringscan::comm::test
