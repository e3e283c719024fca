// libFuzzer target: the part-file reader (io/part_file.h). The input is decoded as
// one record, then read as a whole part file twice: as given, and with its
// checksums made right, so that mutations get past them to the index and records.
#include <cstring>

#include "fuzz_util.h"
#include "io/fs_util.h"
#include "io/part_file.h"

using namespace ringscan;

namespace {

void read_part(const std::string& path) {
  fuzz::only_ringscan_errors([&] {
    for (const io::PartEntry& e : io::read_part_index(path)) io::read_part_record(path, e);
  });
}

uint64_t u64_at(const std::string& s, size_t at) {
  uint64_t v;
  std::memcpy(&v, s.data() + at, 8);
  return v;
}

// The bytes with every checksum that can be computed set right (header at 0, index at 32).
std::string with_checksums(std::string bytes) {
  if (bytes.size() < 32) return bytes;
  const uint64_t n = u64_at(bytes, 8);
  if (n > (bytes.size() - 32) / 32) return bytes;
  for (uint64_t i = 0; i < n; ++i) {
    const size_t entry = 32 + 32 * i;
    const uint64_t offset = u64_at(bytes, entry + 8), length = u64_at(bytes, entry + 16);
    if (offset <= bytes.size() && length <= bytes.size() - offset) {
      const uint64_t sum = io::fnv1a64(std::string_view(bytes).substr(offset, length));
      std::memcpy(bytes.data() + entry + 24, &sum, 8);
    }
  }
  const uint64_t index_sum = io::fnv1a64(std::string_view(bytes).substr(32, 32 * n));
  std::memcpy(bytes.data() + 24, &index_sum, 8);
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = fuzz::scratch_dir("part-file");
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  fuzz::only_ringscan_errors([&] { io::decode_result(bytes, "fuzz record"); });
  const std::string path = dir + "/part.bin";
  fuzz::write_file(path, data, size);
  read_part(path);
  const std::string fixed = with_checksums(bytes);
  if (fixed != bytes) {
    fuzz::write_file(path, reinterpret_cast<const uint8_t*>(fixed.data()), fixed.size());
    read_part(path);
  }
  return 0;
}
