// Tiny random models shared by the multi-rank runtime tests: the tiny preset
// and two variants that exercise the edges of sequence parallelism.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "util/json_util.h"

namespace ringscan::test {

struct Variant {
  std::string name;
  Json overrides;  // config.json keys on top of the tiny preset
};

inline std::vector<Variant> sp_variants() {
  return {
      {"tiny", Json::object()},
      // Attention first, SwiGLU + partial RoPE, one B/C group, chunk 5, conv kernel 2.
      {"rope_swiglu", {{"hybrid_override_pattern", "*M-M*"}, {"mlp_hidden_act", "silu"},
                       {"position_embedding_type", "rope"}, {"rope_theta", 500.0}, {"partial_rotary_factor", 0.5},
                       {"n_groups", 1}, {"chunk_size", 5}, {"conv_kernel", 2}}},
      // Conv kernel 4 with segments shorter than its halo; MLP first; MHA.
      {"mlp_first", {{"hybrid_override_pattern", "-MM*-"}, {"num_key_value_heads", 4}, {"chunk_size", 3}}},
  };
}

// Writes the variant's f32 checkpoint (the tiny preset plus its overrides) into dir.
inline void write_variant_model(const std::string& name, const Json& overrides, const std::string& dir, uint64_t seed) {
  Json j = model_config_to_json(preset_config("tiny"));
  for (auto it = overrides.begin(); it != overrides.end(); ++it) j[it.key()] = it.value();
  RandomCheckpointOptions o;
  o.seed = seed;
  o.dtype = DType::F32;
  std::filesystem::remove_all(dir);
  write_random_checkpoint(parse_model_config(j, name), dir, o);
}

// Rank 0 writes the variant's checkpoint under a name of `tag` and the rank
// count (ctest runs the np1..np4 tests at the same time); all ranks get its folder.
inline std::string sp_model_dir(comm::Communicator& world, const Variant& v, const std::string& tag, uint64_t seed) {
  std::string dir = std::filesystem::temp_directory_path().string() + "/ringscan-test-" + tag + "-np" +
                    std::to_string(world.size()) + "-" + v.name;
  if (world.rank() == 0) write_variant_model(v.name, v.overrides, dir, seed);
  world.barrier();
  return dir;
}

}  // namespace ringscan::test
