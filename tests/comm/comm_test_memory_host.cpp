// Host memory for the MPI communicator tests.
#include <cstdlib>
#include <cstring>

#include "comm_test_env.h"

namespace ringscan::comm::test {

void* space_alloc(std::size_t bytes) { return std::malloc(bytes); }
void space_free(void* p) { std::free(p); }
void space_upload(void* dst, const void* src, std::size_t bytes) { std::memcpy(dst, src, bytes); }
void space_download(void* dst, const void* src, std::size_t bytes) { std::memcpy(dst, src, bytes); }

}  // namespace ringscan::comm::test
