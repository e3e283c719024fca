// libFuzzer target: the safetensors header and data section (input: a whole
// model.safetensors), or, when the input starts with '{', a
// model.safetensors.index.json over two fixed shards (fuzz_util.h kShardTensors).
#include <cstring>
#include <map>

#include "fuzz_util.h"
#include "model/safetensors.h"

using namespace ringscan;

namespace {

std::string make_sharded(const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::map<std::string, std::vector<TensorToWrite>> shards;
  for (const auto& [name, shard] : fuzz::kShardTensors)
    shards[shard].push_back({name, DType::BF16, {4, 2}, [](void* dst, int64_t n) { std::memset(dst, 0, n * 2); }});
  for (const auto& [shard, tensors] : shards) write_safetensors(dir + "/" + shard, tensors);
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string root = fuzz::scratch_dir("safetensors");
  static const std::string single = (std::filesystem::create_directories(root + "/single"), root + "/single");
  static const std::string sharded = make_sharded(root + "/sharded");
  const bool index = size > 0 && data[0] == '{';
  const std::string dir = index ? sharded : single;
  fuzz::write_file(dir + (index ? "/model.safetensors.index.json" : "/model.safetensors"), data, size);
  fuzz::only_ringscan_errors([&] {
    const Checkpoint c = Checkpoint::open(dir);
    // Every tensor accepted lies inside its mapping: touching its ends must not fault.
    unsigned sum = 0;
    for (const auto& [name, t] : c.tensors()) {
      uint64_t bytes = dtype_size(t.dtype);
      for (int64_t d : t.shape) bytes *= uint64_t(d);
      if (bytes) sum += static_cast<const uint8_t*>(t.data)[0] + static_cast<const uint8_t*>(t.data)[bytes - 1];
    }
    volatile unsigned sink = sum;
    (void)sink;
  });
  return 0;
}
